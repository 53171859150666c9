"""``advlit fit|validate|test``: LightningCLI over any defense and datamodule."""

from __future__ import annotations

import importlib
import os
import sys
from argparse import ArgumentError
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from advlit.atomic import atomic_write
from advlit.checkpoints import RUN_PREFIX, CheckpointError, latest_checkpoint, load_checkpoint, run_folders
from advlit.config_errors import one_line
from advlit.defenses import RobustClassifier

RUN_ENV = "ADVLIT_RUN"  # the run number, shared with DDP worker processes
DESCRIPTION = ("advlit: train adversarially robust classifiers and evaluate their robustness "
               "(attacks, defenses, datasets and the standard suite) from YAML configs")
CKPT_HELP = ("Checkpoint to load: a file, 'last' (last.ckpt of the newest run_N folder under the "
             "config's checkpoint folder) or 'best' (the best checkpoint that last.ckpt records for "
             "the monitored metric). Loaded with weights_only=True; it must come from the same model "
             "and architecture as the config.")


def checkpoint_callback(trainer) -> ModelCheckpoint | None:
    """The first ModelCheckpoint with a dirpath: where ``--ckpt_path last|best`` look and a fit writes."""
    return next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.dirpath), None)


def experiment_name(config_files) -> tuple[str, str]:
    """(group, name) of the experiment a run belongs to, from its first ``--config`` file:
    ``configs/mnist/pgd_at.yaml`` -> ("mnist", "pgd_at"), ``configs/quickstart.yaml`` ->
    ("", "quickstart"); a file outside ``configs/`` is named by its folder and stem."""
    if not config_files:
        return "", "advlit"
    path = Path(str(config_files[0])).with_suffix("")
    parts = path.parts
    if "configs" in parts:
        rest = parts[len(parts) - parts[::-1].index("configs"):]
        return "/".join(rest[:-1]), rest[-1]
    return path.parent.name, path.name


def _is_checkpoint(entry) -> bool:
    """Whether a parsed callback entry (class_path, init_args) is a ModelCheckpoint."""
    module, _, name = str(entry.get("class_path", "")).rpartition(".")
    try:
        return issubclass(getattr(importlib.import_module(module), name), ModelCheckpoint)
    except (ImportError, AttributeError, TypeError, ValueError):
        return False


def add_experiment_defaults(config: Namespace) -> None:
    """What every experiment shares, filled in where its config is silent, so an experiment
    file holds only what is particular to it. For the experiment (group, name) of
    :func:`experiment_name`: loggers W&B (offline; project ``advlit``, run ``group-name``) and
    CSV (``logs/<group>/<name>``) unless ``trainer.logger`` is set (``false``: none); a
    ``ModelCheckpoint`` (``save_last``) writing to ``logs/<group>/<name>/checkpoints`` unless
    ``trainer.enable_checkpointing`` is false, and that folder for a ModelCheckpoint without
    a ``dirpath``; one device where ``trainer.devices`` is ``auto`` (give a number for more)."""
    group, name = experiment_name(config.get("config"))
    folder = Path("logs", group, name).as_posix()
    trainer = config["trainer"]
    if trainer.get("logger") in (None, True):
        trainer["logger"] = [
            Namespace(class_path="lightning.pytorch.loggers.WandbLogger", init_args=Namespace(
                project="advlit", name="-".join(filter(None, (group.replace("/", "-"), name))),
                save_dir="logs", offline=True)),
            Namespace(class_path="lightning.pytorch.loggers.CSVLogger",
                      init_args=Namespace(save_dir=Path("logs", group).as_posix(), name=name))]
    if trainer.get("devices") in (None, "auto"):
        trainer["devices"] = 1
    if trainer.get("enable_checkpointing") is False:
        return
    callbacks = trainer.get("callbacks") or []
    checkpoints = [c for c in callbacks if isinstance(c, Namespace) and _is_checkpoint(c)]
    if not checkpoints:
        default = Namespace(class_path="lightning.pytorch.callbacks.ModelCheckpoint",
                            init_args=Namespace(save_last=True, enable_version_counter=False))
        checkpoints, trainer["callbacks"] = [default], [default, *callbacks]
    for each in checkpoints:
        if each.get("init_args") is None:
            each["init_args"] = Namespace()
        if each["init_args"].get("dirpath") is None:
            each["init_args"]["dirpath"] = f"{folder}/checkpoints"


class LoggedSaveConfigCallback(SaveConfigCallback):
    """Send the resolved config to every logger (W&B config) when the loop starts; a ``fit``
    also writes it, atomically, as ``config.yaml`` into its own checkpoint folder (``run_N``),
    so no later command overwrites the record of how a checkpoint was trained."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.already_saved:
            return
        if trainer.is_global_zero:
            callback = checkpoint_callback(trainer)
            if stage == "fit" and callback is not None:
                atomic_write(Path(callback.dirpath) / self.config_filename, lambda tmp: self.parser.save(
                    self.config, str(tmp), skip_none=False, overwrite=True, multifile=False))
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def _log(self, trainer) -> None:
        """Logged once the loop starts, so a run that fails in setup opens no W&B run."""
        if trainer.is_global_zero and not getattr(self, "_logged", False):
            for logger in trainer.loggers:
                logger.log_hyperparams(self.config.as_dict())
            self._logged = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._log(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._log(trainer)

    def on_test_start(self, trainer, pl_module) -> None:
        self._log(trainer)


class AdvlitCLI(LightningCLI):
    """LightningCLI in subclass mode for the model (a RobustClassifier) and the data, with the
    experiment's shared loggers and checkpointing filled in (:func:`add_experiment_defaults`).

    The datamodule's ``num_classes`` is linked into the classifier network. In a new
    process, ``--ckpt_path last`` finds ``last.ckpt`` of the newest run (every ``fit`` writes
    its checkpoints to ``<dirpath>/run_N``), and ``--ckpt_path best`` the best checkpoint
    recorded in that ``last.ckpt``; a missing one is an error. Checkpoints load with
    ``weights_only=True`` (advlit.checkpoints).
    """

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """fit, validate and test (advlit's datamodules have no predict split)."""
        commands = LightningCLI.subcommands()
        del commands["predict"]
        return commands

    def init_parser(self, **kwargs):
        """Parsers that raise on a bad config (:func:`main` prints one line) instead of
        printing the usage, and that describe advlit in ``--help``."""
        if not kwargs.get("description") or kwargs["description"].startswith("Lightning Trainer"):
            kwargs["description"] = DESCRIPTION
        return super().init_parser(exit_on_error=False, **kwargs)

    def _prepare_subcommand_parser(self, klass, subcommand: str, **kwargs):
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        for action in parser._actions:
            if action.dest == "ckpt_path":
                action.help = CKPT_HELP
        return parser

    def _parse_ckpt_path(self) -> None:
        """Check an explicit ``--ckpt_path FILE`` before anything reads it (missing, empty,
        truncated or unsafe: one line) and refuse a checkpoint trained with another model or
        architecture than the config's, instead of Lightning's silent swap of the config's
        model for the checkpoint's."""
        if not self.config.get("subcommand"):
            return
        config = self.config[self.config.subcommand]
        ckpt = config.get("ckpt_path")
        if ckpt is None or ckpt in ("last", "best") or config.get("weights_only") is False:
            return  # last|best: resolved and checked later; weights_only=false: the user's call
        stored = load_checkpoint(ckpt).get("hyper_parameters") or {}
        check_same_model(stored, config.get("model"), ckpt)

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.model.init_args.num_classes",
                              apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        add_experiment_defaults(self.config[self.subcommand] if self.subcommand else self.config)

    def _resolve_checkpoint(self) -> None:
        """Turn ``--ckpt_path last|best`` into the file, or fail naming the folder searched, and
        check any checkpoint is safe to load (``weights_only=True``) before anything runs."""
        config = self.config_init[self.subcommand]
        ckpt = config.get("ckpt_path")
        if ckpt is None:
            return
        if config.get("weights_only") is None:
            config["weights_only"] = True
        if ckpt in ("last", "best"):
            ckpt = self._find_checkpoint(ckpt)
            config["ckpt_path"] = str(ckpt)
            check_same_model(load_checkpoint(ckpt).get("hyper_parameters") or {},
                             self.config[self.subcommand].get("model"), ckpt)
        if config["weights_only"]:
            load_checkpoint(ckpt)

    def _find_checkpoint(self, which: str) -> Path:
        """``last.ckpt`` of the newest run under the config's checkpoint folder, or that run's best."""
        callback = checkpoint_callback(self.trainer)
        if callback is None:
            raise CheckpointError(f"--ckpt_path {which} needs a ModelCheckpoint with a dirpath in the config; "
                                  f"give the checkpoint file instead")
        folder = Path(callback.dirpath).resolve()
        name = f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
        last = latest_checkpoint(folder, name)
        if not last.is_file():
            raise CheckpointError(f"--ckpt_path {which}: no {name} in {str(folder)!r} or its {RUN_PREFIX}N "
                                  f"folders; train first ('advlit fit' from the same directory) or give the "
                                  f"checkpoint file")
        if which == "last":
            return last
        if callback.monitor is None:
            raise CheckpointError("--ckpt_path best needs a monitored metric (ModelCheckpoint monitor) in the "
                                  "config; use --ckpt_path last or the checkpoint file")
        for key, value in load_checkpoint(last).get("callbacks", {}).items():
            if key.startswith("ModelCheckpoint") and Path(value.get("dirpath") or "").resolve() == last.parent:
                best = value.get("best_model_path")
                if best and Path(best).is_file():
                    return Path(best)
        raise CheckpointError(f"--ckpt_path best: {str(last.parent)!r} records no best checkpoint for "
                              f"{callback.monitor!r}; use --ckpt_path last")

    def _new_run_folder(self) -> None:
        """Give this fit its own checkpoint folder ``<dirpath>/run_N`` (N one more than the
        newest), so no run overwrites another's checkpoints; DDP worker processes (which
        Lightning starts with LOCAL_RANK set) inherit N through the environment."""
        callback = checkpoint_callback(self.trainer)
        if callback is None:
            return
        folder = Path(callback.dirpath)
        if RUN_ENV not in os.environ or "LOCAL_RANK" not in os.environ:  # not a DDP worker: a new run
            number = max(run_folders(folder), default=-1) + 1
            while True:  # mkdir claims the number, also against a run starting beside this one
                try:
                    (folder / f"{RUN_PREFIX}{number}").mkdir(parents=True)
                    break
                except FileExistsError:
                    number += 1
            os.environ[RUN_ENV] = str(number)
        for each in self.trainer.checkpoint_callbacks:
            if isinstance(each, ModelCheckpoint) and each.dirpath:
                each.dirpath = str(Path(each.dirpath) / f"{RUN_PREFIX}{os.environ[RUN_ENV]}")

    def _finish_wandb(self) -> None:
        """End the W&B run so the next subcommand in this process starts its own."""
        if any(isinstance(logger, WandbLogger) for logger in self.trainer.loggers):
            import wandb

            wandb.finish()

    def _check(self) -> None:
        """Everything that can fail before a run opens its loggers (a W&B run) or folders."""
        if isinstance(self.model, RobustClassifier):
            self.model.check_classes(self.datamodule)
        self._resolve_checkpoint()

    def before_fit(self) -> None:
        self._check()
        self._new_run_folder()

    def before_validate(self) -> None:
        self._check()

    def before_test(self) -> None:
        self._check()

    def after_fit(self) -> None:
        self._finish_wandb()

    def after_validate(self) -> None:
        self._finish_wandb()

    def after_test(self) -> None:
        self._finish_wandb()


def _describe(class_path, init_args) -> str:
    args = ", ".join(f"{k}={v}" for k, v in sorted((init_args or {}).items())
                     if k != "num_classes" and v is not None)
    return f"{class_path}({args})"


def check_same_model(stored: dict, model, ckpt) -> None:
    """Refuse a checkpoint whose stored hyper-parameters name another defense class or another
    network (class or architecture arguments) than ``model``, the config's."""
    if not stored.get("_class_path") or model is None:
        return
    model = model.as_dict() if isinstance(model, Namespace) else dict(model)
    ours_net = dict((model.get("init_args") or {}).get("model") or {})
    theirs_net = dict(stored.get("model") or {})
    ours_args, theirs_args = ours_net.get("init_args") or {}, theirs_net.get("init_args") or {}
    differs = (stored["_class_path"] != model.get("class_path")
               or theirs_net.get("class_path") != ours_net.get("class_path")
               or any(ours_args.get(k) != v for k, v in theirs_args.items()
                      if k != "num_classes" and k in ours_args and v is not None))
    if differs:
        raise CheckpointError(
            f"checkpoint {str(ckpt)!r} was trained as {stored['_class_path']} of "
            f"{_describe(theirs_net.get('class_path'), theirs_args)}, but the config runs "
            f"{model.get('class_path')} of {_describe(ours_net.get('class_path'), ours_args)}; use the "
            f"config it was trained with (config.yaml beside the checkpoint)")


def build_cli(args=None, run: bool = True) -> AdvlitCLI:
    """Parse ``args`` (default: sys.argv) and run the subcommand; returns the CLI object."""
    return AdvlitCLI(RobustClassifier, LightningDataModule, subclass_mode_model=True,
                     subclass_mode_data=True, save_config_callback=LoggedSaveConfigCallback,
                     seed_everything_default=0, args=args, run=run,
                     parser_kwargs={"description": DESCRIPTION})


def main() -> None:
    """The ``advlit`` command: a bad value, config or file ends in one line on stderr, exit
    code 2 (``ADVLIT_TRACEBACK=1`` shows the traceback and jsonargparse's full message)."""
    try:
        build_cli()
    except (ValueError, FileNotFoundError, ArgumentError) as err:
        if os.environ.get("ADVLIT_TRACEBACK"):
            raise
        if isinstance(err, ArgumentError):
            err = f"{one_line(str(err))} (advlit <command> --help lists the options)"
        print(f"advlit: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
