"""``advlit fit|validate|test|predict``: LightningCLI over any defense and datamodule."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from advlit.defenses import RobustClassifier


class LoggedSaveConfigCallback(SaveConfigCallback):
    """Save the resolved config next to the logs and send it to the logger (W&B config)."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams(self.config.as_dict())


class AdvlitCLI(LightningCLI):
    """LightningCLI in subclass mode for the model (a RobustClassifier) and the data.

    The datamodule's ``num_classes`` is linked into the classifier network. In a new
    process, ``--ckpt_path last`` finds ``last.ckpt`` of the config's ModelCheckpoint, and
    ``--ckpt_path best`` the best checkpoint recorded in that ``last.ckpt``.
    """

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.model.init_args.num_classes",
                              apply_on="instantiate")

    def _resolve_last_checkpoint(self) -> None:
        if self.config_init[self.subcommand].get("ckpt_path") not in ("last", "best"):
            return
        for callback in self.trainer.checkpoint_callbacks:
            if not isinstance(callback, ModelCheckpoint) or not callback.dirpath:
                continue
            last = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
            if not last.is_file():
                continue
            callback.last_model_path = callback.last_model_path or str(last)
            if not callback.best_model_path:
                state = torch.load(last, map_location="cpu", weights_only=False)["callbacks"]
                for key, value in state.items():
                    if key.startswith("ModelCheckpoint") and value.get("dirpath") == callback.dirpath:
                        callback.best_model_path = value.get("best_model_path", "")

    def _finish_wandb(self) -> None:
        """End the W&B run so the next subcommand in this process starts its own."""
        if any(isinstance(logger, WandbLogger) for logger in self.trainer.loggers):
            import wandb

            wandb.finish()

    def before_fit(self) -> None:
        self._resolve_last_checkpoint()

    def before_validate(self) -> None:
        self._resolve_last_checkpoint()

    def before_test(self) -> None:
        self._resolve_last_checkpoint()

    def after_fit(self) -> None:
        self._finish_wandb()

    def after_validate(self) -> None:
        self._finish_wandb()

    def after_test(self) -> None:
        self._finish_wandb()


def build_cli(args=None, run: bool = True) -> AdvlitCLI:
    """Parse ``args`` (default: sys.argv) and run the subcommand; returns the CLI object."""
    return AdvlitCLI(RobustClassifier, LightningDataModule, subclass_mode_model=True,
                     subclass_mode_data=True, save_config_callback=LoggedSaveConfigCallback,
                     save_config_kwargs={"overwrite": True}, args=args, run=run)


def main() -> None:
    build_cli()


if __name__ == "__main__":
    main()
