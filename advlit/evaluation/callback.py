"""RobustnessEvaluation: a thin Lightning adapter over the evaluation engine
(:class:`~advlit.evaluation.suite.AttackSuite`): which samples, gathering the per-sample
results of every process, logging, W&B media and the summary table."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DistributedSampler, RandomSampler

import advlit.attacks
from advlit.attacks import Attack
from advlit.evaluation.checks import FLAGS_GUIDE
from advlit.evaluation.media import log_wandb_media
from advlit.evaluation.result import SuiteResult
from advlit.evaluation.standard import standard_suite
from advlit.evaluation.suite import AttackSuite


def targetable_attacks() -> list[str]:
    """The attack classes of :mod:`advlit.attacks` with a targeted mode."""
    return [name for name in advlit.attacks.__all__
            if isinstance(cls := getattr(advlit.attacks, name), type) and issubclass(cls, Attack)
            and cls.supports_targeted and "perturb" in vars(cls)]


class RobustnessEvaluation(Callback):
    """Evaluate clean and robust accuracy under a suite of named attacks.

    ``attacks`` maps names to attack objects (``class_path``/``init_args`` in YAML), run in
    order. ``standard`` appends the AutoAttack-grade suite (:func:`standard_suite`), e.g.
    ``standard: {norm: linf, eps: 0.3}`` (``version: fast`` for validation screening,
    ``rand`` for randomized models), whose attacks ``apgd_ce``, ``apgd_t`` and ``square`` run
    at its eps only. ``eps_grid`` maps a norm (or an attack's name) to eps values: fixed-budget
    attacks run at each (or at their own eps if neither is given); min-norm attacks run once
    and give robust accuracy at every eps of their norm (robust iff correct and the smallest
    adversarial perturbation found is larger than eps), plus median/mean norm, success rate
    and ``rho_adv``. The pointwise worst case over all attacks of a norm is logged as
    ``robust_acc/worst_{norm}``. With ``cascade`` (the default
    with ``standard``) an attack only attacks points still robust at its eps, and its logged
    number is the worst case so far. ``max_samples`` evaluates the first N points of the
    (ordered) evaluation set. ``eot_samples`` = n > 1 attacks and predicts through an
    expectation over n passes, and its metric names carry ``_eot{n}``. ``tag`` is appended
    to every attack's metric names, so a second suite (``configs/eval/*.yaml``) can sit beside
    an experiment's own.

    Targeted evaluation: ``source_class`` restricts the evaluation to points of that class
    and ``target_class`` makes every attack targeted to that class; a point stays robust
    while it is still classified correctly.

    Every sample is attacked with randomness keyed by its index in the dataset (``seed``), so
    under DDP every process attacks its own shard and the reduced numbers equal those of one
    process exactly, and evaluating during validation leaves training untouched. Costs
    (gradient evaluations and forward passes per image, seconds) are logged per attack.

    Parameters
    ----------
    attacks : dict of str to Attack, optional
        Named attacks, run in order.
    standard : dict, optional
        Keyword arguments of :func:`standard_suite` (``norm``, ``eps``, ``version``), appended.
    eps_grid : dict of str to list of float, optional
        Budgets per norm or per attack name, in [0, 1] pixel scale.
    on_test : bool, default True
        Evaluate in ``trainer.test``.
    every_n_val_epochs : int, default 0
        Also evaluate every N validation epochs (0: never).
    max_samples : int, optional
        Evaluate only the first N images of the (ordered) evaluation set.
    cascade : bool, optional
        Attack only the points still robust (default: True with ``standard``, else False).
    eot_samples : int, default 1
        Passes of expectation over transformation for randomized models.
    sanity_checks : bool, default True
        Run the honesty checks (``docs/flags.md``).
    log_examples : int, default 16
        Adversarial examples per attack sent to W&B (0: none).
    source_class, target_class : int, optional
        Targeted evaluation: only images of ``source_class``, attacked towards ``target_class``.
    seed : int, default 0
        Keys the per-sample attack randomness with each image's dataset index.
    progress : bool, default False
        A progress bar over the attacks of each batch.
    tag : str, default ""
        Appended to the metric names (a second suite beside an experiment's own).
    results_dir : str, optional
        Resumable evaluation: every evaluated batch's per-sample results are kept in this folder
        and a rerun of the same evaluation (suite, model weights, data) loads them instead of
        attacking again (:mod:`advlit.evaluation.resume`).
    threads : int, optional
        On CPU, torch's intra-op threads while the attacks run (default: torch's setting).
    """

    def __init__(self, attacks: dict[str, Attack] | None = None, standard: dict[str, Any] | None = None,
                 eps_grid: dict[str, list[float]] | None = None, on_test: bool = True,
                 every_n_val_epochs: int = 0, max_samples: int | None = None, cascade: bool | None = None,
                 eot_samples: int = 1, sanity_checks: bool = True, log_examples: int = 16,
                 source_class: int | None = None, target_class: int | None = None, seed: int = 0,
                 progress: bool = False, tag: str = "", results_dir: str | None = None,
                 threads: int | None = None) -> None:
        attacks = dict(attacks or {})
        eps_grid = dict(eps_grid or {})
        deployed_passes = None
        if standard is not None:  # after the configured attacks, at its own eps unless gridded
            built = standard_suite(**standard)
            attacks = {**attacks, **built.attacks}
            for name in built.attacks:
                eps_grid.setdefault(name, built.grid(name))
            eot_samples = max(eot_samples, built.eot_samples)  # the ``rand`` version uses EOT
            deployed_passes = max(eot_samples, built.deployed_passes)
        if not attacks:
            raise ValueError("RobustnessEvaluation needs at least one attack (attacks: or standard:)")
        if every_n_val_epochs < 0:
            raise ValueError(f"every_n_val_epochs must be >= 0, got {every_n_val_epochs}")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
        if target_class is not None:
            untargetable = [n for n, a in attacks.items() if not a.supports_targeted]
            if untargetable:
                raise ValueError(f"target_class needs attacks with a targeted mode; {untargetable} "
                                 f"have none (use one of {', '.join(targetable_attacks())})")
        cascade = standard is not None if cascade is None else cascade
        self.suite = AttackSuite(attacks, eps_grid, cascade=cascade, seed=seed, eot_samples=eot_samples,
                                 checks=sanity_checks, progress=progress, results_dir=results_dir,
                                 threads=threads, deployed_passes=deployed_passes)
        self.on_test, self.every_n_val_epochs = on_test, every_n_val_epochs
        self.max_samples, self.log_examples, self.sanity_checks = max_samples, log_examples, sanity_checks
        self.tag = tag + (f"_eot{eot_samples}" if eot_samples > 1 else "")
        self.source_class, self.target_class = source_class, target_class
        self.batches: dict[str, list[SuiteResult]] = {}  # per stage, this process's results so far
        self.result: SuiteResult | None = None  # of the last finished stage, every process's samples
        self.flags: dict[str, str] = {}  # its honesty-check messages
        self.results: dict[str, float] = {}  # metric name -> value, as logged

    # -- when ---------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        num_classes = getattr(trainer.datamodule, "num_classes", None)
        for name, value in (("source_class", self.source_class), ("target_class", self.target_class)):
            if value is not None and num_classes is not None and not 0 <= value < num_classes:
                raise ValueError(f"{name} {value} is not a class of the data (0..{num_classes - 1})")

    def _active(self, trainer: Trainer, stage: str) -> bool:
        if stage == "test":
            return self.on_test
        return (self.every_n_val_epochs > 0 and not trainer.sanity_checking
                and (trainer.current_epoch + 1) % self.every_n_val_epochs == 0)

    # -- which samples ------------------------------------------------------------------
    def _index(self, trainer: Trainer, stage: str, batch_idx: int, dataloader_idx: int,
               n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(each batch sample's index in the dataset, mask of samples to evaluate): drops
        DistributedSampler padding and everything past ``max_samples``."""
        loaders = trainer.test_dataloaders if stage == "test" else trainer.val_dataloaders
        loader = loaders[dataloader_idx] if isinstance(loaders, (list, tuple)) else loaders
        sampler, size = loader.sampler, len(loader.dataset)
        if isinstance(sampler, RandomSampler) or getattr(sampler, "shuffle", False):
            raise ValueError("RobustnessEvaluation needs an unshuffled evaluation dataloader "
                             "(randomness and max_samples follow each sample's dataset index)")
        world, rank = ((sampler.num_replicas, sampler.rank)
                       if isinstance(sampler, DistributedSampler) else (1, 0))
        position = batch_idx * loader.batch_size + torch.arange(n, device=device)
        index = rank + position * world
        limit = size if self.max_samples is None else min(size, self.max_samples)
        return index, index < limit

    # -- evaluation -----------------------------------------------------------------------
    def _update(self, trainer: Trainer, pl_module: LightningModule, batch, stage: str,
                batch_idx: int, dataloader_idx: int) -> None:
        batches = self.batches.setdefault(stage, [])
        x, y = batch
        index, keep = self._index(trainer, stage, batch_idx, dataloader_idx, x.shape[0], x.device)
        if self.source_class is not None:
            keep = keep & (y == self.source_class)
        if not keep.any():
            return
        x, y, index = x[keep], y[keep], index[keep]
        first = not batches
        wandb = any(isinstance(logger, WandbLogger) for logger in trainer.loggers)
        # the model-probing checks cost a few attacks: once per test, never during training;
        # the attacks run under the trainer's precision (autocast), as the training step does
        with trainer.precision_plugin.forward_context():
            result = self.suite.run(pl_module, x, y, index=index, target=self.target_class,
                                    checks=self.sanity_checks and first and stage == "test",
                                    examples=self.log_examples if first and wandb else 0)
        batches.append(result.to("cpu"))

    def _gather(self, trainer: Trainer, stage: str) -> SuiteResult | None:
        """Every process's results, in dataset order: exactly one process's result on all of them."""
        local = self.batches.pop(stage, [])
        parts = [SuiteResult.cat(local)] if local else []
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[list[SuiteResult]] = [[] for _ in range(trainer.world_size)]
            torch.distributed.all_gather_object(gathered, parts)
            parts = [part for rank in gathered for part in rank]
        if not parts:
            return None
        result = SuiteResult.cat(parts)
        return result.select(result.index.argsort())

    def _finish(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        result = self._gather(trainer, stage)
        if result is None:
            return
        metrics = result.metrics()
        values = {}
        for key, value in metrics.items():  # the same on every process
            values[name := key.name(f"{stage}/", self.tag)] = value
            pl_module.log(name, value, sync_dist=True, reduce_fx="max" if key.metric == "sanity" else "mean")
        self.result, self.flags, self.results = result, result.flags, {**self.results, **values}
        if trainer.is_global_zero:
            for message in self.flags.values():
                rank_zero_warn(f"RobustnessEvaluation sanity check: {message} (see {FLAGS_GUIDE})")
            rows = [[key.subject + self.tag, key.norm, key.eps, value] for key, value in metrics.items()
                    if key.metric == "robust_acc"]
            log_wandb_media(trainer.loggers, stage, rows, result, self.tag, FLAGS_GUIDE)
        if stage == "test" and trainer.is_global_zero:
            print(result.table(f"{stage} robustness{self.tag}"))

    # -- Lightning hooks ----------------------------------------------------------------
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self._active(trainer, "test"):
            self._update(trainer, pl_module, batch, "test", batch_idx, dataloader_idx)

    def on_test_epoch_end(self, trainer, pl_module):
        if self._active(trainer, "test"):
            self._finish(trainer, pl_module, "test")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0):
        if self._active(trainer, "val"):
            self._update(trainer, pl_module, batch, "val", batch_idx, dataloader_idx)

    def on_validation_epoch_end(self, trainer, pl_module):
        if self._active(trainer, "val"):
            self._finish(trainer, pl_module, "val")
