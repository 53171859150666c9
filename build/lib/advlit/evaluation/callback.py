"""RobustnessEvaluation: a thin Lightning adapter over the evaluation engine
(:class:`~advlit.evaluation.suite.AttackSuite`): which samples, torchmetrics reduction,
logging, W&B media and the summary table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch.utils.data import DistributedSampler, RandomSampler
from torchmetrics import MeanMetric, SumMetric

from advlit.attacks import Attack, MinNormAttack
from advlit.evaluation.checks import (
    CHECKS,
    FLAGS_GUIDE,
    INDICATORS,
    curve_checks,
    explain_by_randomness,
    indicator_flags,
)
from advlit.evaluation.media import log_wandb_media
from advlit.evaluation.metrics import RadiusStatistics
from advlit.evaluation.standard import standard_suite
from advlit.evaluation.suite import AttackSuite


@dataclass
class _StageState:
    means: dict[str, MeanMetric] = field(default_factory=dict)
    sums: dict[str, SumMetric] = field(default_factory=dict)
    radii: dict[str, RadiusStatistics] = field(default_factory=dict)
    examples: dict[str, tuple] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)
    first_batch: bool = True


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
    """

    def __init__(self, attacks: dict[str, Attack] | None = None, standard: dict[str, Any] | None = None,
                 eps_grid: dict[str, list[float]] | None = None, on_test: bool = True,
                 every_n_val_epochs: int = 0, max_samples: int | None = None, cascade: bool | None = None,
                 eot_samples: int = 1, sanity_checks: bool = True, log_examples: int = 16,
                 source_class: int | None = None, target_class: int | None = None, seed: int = 0,
                 progress: bool = False, tag: str = "") -> None:
        attacks = dict(attacks or {})
        eps_grid = dict(eps_grid or {})
        if standard is not None:  # after the configured attacks, at its own eps unless gridded
            built = standard_suite(**standard)
            attacks = {**attacks, **built.attacks}
            for name in built.attacks:
                eps_grid.setdefault(name, built.grid(name))
            eot_samples = max(eot_samples, built.eot_samples)  # the ``rand`` version uses EOT
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
                                 "have none (use PGD, APGD, FGSM, Square, CarliniWagnerL2, PDGD or PDPGD)")
        cascade = standard is not None if cascade is None else cascade
        self.suite = AttackSuite(attacks, eps_grid, cascade=cascade, seed=seed, eot_samples=eot_samples,
                                 checks=sanity_checks, progress=progress)
        self.on_test, self.every_n_val_epochs = on_test, every_n_val_epochs
        self.max_samples, self.log_examples = max_samples, log_examples
        self.eot_samples, self.sanity_checks = eot_samples, sanity_checks
        self.tag = tag + (f"_eot{eot_samples}" if eot_samples > 1 else "")
        self.source_class, self.target_class = source_class, target_class
        self.states: dict[str, _StageState] = {}
        self.flags: dict[str, str] = {}  # honesty-check messages of the last finished stage
        self.results: dict[str, float] = {}

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

    # -- metrics ------------------------------------------------------------------------
    def _mean(self, state: _StageState, key: str, device) -> MeanMetric:
        if key not in state.means:
            state.means[key] = MeanMetric().to(device)
        return state.means[key]

    def _sum(self, state: _StageState, key: str, device) -> SumMetric:
        if key not in state.sums:
            state.sums[key] = SumMetric().to(device)
        return state.sums[key]

    def _update(self, trainer: Trainer, pl_module: LightningModule, batch, stage: str,
                batch_idx: int, dataloader_idx: int) -> None:
        state = self.states.setdefault(stage, _StageState())
        x, y = batch
        index, keep = self._index(trainer, stage, batch_idx, dataloader_idx, x.shape[0], x.device)
        if self.source_class is not None:
            keep = keep & (y == self.source_class)
        if not keep.any():
            return
        x, y, index = x[keep], y[keep], index[keep]
        # the model-probing checks cost a few attacks: once per test, never during training;
        # the attacks run under the trainer's precision (autocast), as the training step does
        with trainer.precision_plugin.forward_context():
            result = self.suite.run(pl_module, x, y, index=index, target=self.target_class,
                                    checks=self.sanity_checks and state.first_batch and stage == "test")
        for key, values in result.per_sample(f"{stage}/", self.tag).items():
            self._mean(state, key, x.device).update(values)
        for name in result.order:
            self._sum(state, f"{stage}/grads/{name}{self.tag}", x.device).update(result.backward[name])
            self._sum(state, f"{stage}/forwards/{name}{self.tag}", x.device).update(result.forward[name])
            self._sum(state, f"{stage}/seconds/{name}{self.tag}", x.device).update(result.seconds[name])
        self._sum(state, f"{stage}/images", x.device).update(x.shape[0])
        for name, radius in result.radius.items():
            key = name + self.tag
            if key not in state.radii:
                state.radii[key] = RadiusStatistics(result.grids[name]).to(x.device)
            state.radii[key].update(radius, result.relative[name])
        state.flags.update({k: v for k, v in result.flags.items() if k not in INDICATORS})
        if state.first_batch:
            state.first_batch = False
            self._examples(trainer, pl_module, state, x, y, index)

    def _examples(self, trainer, pl_module, state: _StageState, x, y, index) -> None:
        """Adversarial examples of each attack on the first batch, for the W&B grid."""
        if self.log_examples <= 0 or not trainer.is_global_zero or not any(
                isinstance(logger, WandbLogger) for logger in trainer.loggers):
            return
        k = self.log_examples
        goal = y[:k] if self.target_class is None else torch.full_like(y[:k], self.target_class)
        for name, attack in self.suite.attacks.items():
            if not isinstance(attack, MinNormAttack):
                attack = attack.replace(eps=max(self.suite.grid(name)))
            if self.target_class is not None:
                attack = attack.replace(targeted=True)
            x_adv = attack(pl_module, x[:k], goal, index=index[:k], seed=self.suite.seed)
            with torch.no_grad():
                pred = pl_module(x_adv).argmax(dim=1)
            state.examples[name + self.tag] = (x_adv, pred, y[:k])

    # -- reduction and reporting ----------------------------------------------------------
    def _finish(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        state = self.states.pop(stage, None)
        if state is None:
            return
        values: dict[str, float] = {}
        for key, metric in state.means.items():
            values[key] = float(metric.compute())  # synchronizes across processes
        sums = {key: float(metric.compute()) for key, metric in state.sums.items()}
        images = max(1.0, sums.pop(f"{stage}/images", 1.0))
        for key, total in sums.items():
            kind, _, name = key.partition("/")[2].partition("/")
            values[f"{stage}/{kind if kind == 'seconds' else kind + '_per_image'}/{name}"] = (
                total if kind == "seconds" else total / images)
        radii_values: dict[str, torch.Tensor] = {}
        unbounded: dict[str, float] = {}
        for name, metric in state.radii.items():
            for key, value in metric.compute().items():
                prefix, _, rest = key.partition("/")
                if prefix == "robust_acc":
                    continue  # already logged from the per-sample results
                values[f"{stage}/{prefix}/{name}"] = value
            radius = torch.as_tensor(metric.radius.compute()).flatten()
            radii_values[name] = radius
            unbounded[name] = radius.isinf().float().mean().item()
        flags = dict(state.flags)
        flags.update(indicator_flags(values))
        if self.sanity_checks:
            flags.update(self._curve_flags(values, unbounded))
        flags = explain_by_randomness(flags)
        # every process logs every flag (0 or 1), reduced with max: the same keys everywhere
        for name in CHECKS:
            values[f"{stage}/sanity/{name}{self.tag}"] = float(name in flags)
        for key, value in values.items():
            reduce = "max" if "/sanity/" in key else "mean"
            pl_module.log(key, value, sync_dist=True, reduce_fx=reduce)
        self.results.update(values)
        self.flags = flags

        rows = []
        for key, value in values.items():
            parts = key.split("/")
            if parts[1] == "robust_acc":
                name = parts[2].removesuffix(self.tag)
                norm = self.suite.attacks[name].norm if name in self.suite.attacks else name[6:]
                rows.append([parts[2], norm, float(parts[-1][4:]), value])
        if trainer.is_global_zero:
            for message in flags.values():
                rank_zero_warn(f"RobustnessEvaluation sanity check: {message} (see {FLAGS_GUIDE})")
            log_wandb_media(trainer.loggers, stage, rows, state.examples, radii_values, self.tag, flags,
                            FLAGS_GUIDE)
        if stage == "test":
            self.print_table(stage)

    def _curve_flags(self, values: dict[str, float], unbounded: dict[str, float]) -> dict[str, str]:
        """Curve checks on per-attack numbers (cumulative in a cascade, so only without it)."""
        curves: dict[str, dict[float, float]] = {}
        for key, value in values.items():
            parts = key.split("/")
            if parts[1] == "robust_acc" and not parts[2].startswith("worst_"):
                curves.setdefault(parts[2].removesuffix(self.tag), {})[float(parts[-1][4:])] = value
        attacks = self.suite.attacks
        if self.suite.cascade:
            curves = {n: c for n, c in curves.items() if isinstance(attacks[n], MinNormAttack)}
        single = {n for n in curves if attacks[n].single_step and not self.suite.cascade}
        return curve_checks(curves, single, {n: attacks[n].norm for n in curves},
                            {n.removesuffix(self.tag): v for n, v in unbounded.items()})

    @rank_zero_only
    def print_table(self, stage: str) -> None:
        """One table per norm: robust accuracy per attack (rows) and eps (columns), the cost
        per attack, min-norm statistics where there are any; then the flags."""
        from rich.console import Console
        from rich.table import Table

        results = {k.removeprefix(f"{stage}/"): v for k, v in self.results.items()
                   if k.startswith(f"{stage}/")}
        clean = results.get(f"clean_acc{self.tag}", float("nan"))
        console = Console()
        names = [n + self.tag for n in self.suite.attacks]
        norms = dict.fromkeys(a.norm for a in self.suite.attacks.values())
        for norm in norms:
            rows = [n for n, a in zip(names, self.suite.attacks.values()) if a.norm == norm]
            rows.append(f"worst_{norm}{self.tag}")
            grid = sorted({float(k.rpartition("eps=")[2]) for k in results
                           if k.startswith("robust_acc/") and k.split("/")[1] in rows})
            stats = [c for c in ("median_norm", "rho_adv") if any(f"{c}/{r}" in results for r in rows)]
            table = Table(title=f"{stage} robustness, {norm}{self.tag} (clean accuracy {clean:.4f})")
            table.add_column("attack")
            for eps in grid:
                table.add_column(f"{norm} {eps:g}", justify="right")
            for column in stats + ["grads/img", "s"]:
                table.add_column(column, justify="right")
            for name in rows:
                cells = [results.get(f"robust_acc/{name}/eps={eps:g}") for eps in grid]
                extra = [results.get(f"{c}/{name}") for c in stats]
                cost = [results.get(f"grads_per_image/{name}"), results.get(f"seconds/{name}")]
                table.add_row(name, *(f"{v:.4f}" if v is not None else "" for v in cells + extra),
                              *(f"{v:.0f}" if v is not None else "" for v in cost[:1]),
                              *(f"{v:.1f}" if v is not None else "" for v in cost[1:]))
            console.print(table)
        if self.suite.cascade:
            console.print("cascade: each row is robust against that attack and every one above it")
        if f"deployed/robust_acc{self.tag}" in results:
            console.print(f"randomized model: the tables show the EOT-averaged classifier the attacks "
                          f"used; the deployed model ({self.suite.eot_samples} single passes per image) "
                          f"has expected clean accuracy {results[f'deployed/clean_acc{self.tag}']:.4f} "
                          f"and robust accuracy {results[f'deployed/robust_acc{self.tag}']:.4f}")
        for message in self.flags.values():
            console.print(f"[yellow]sanity check:[/yellow] {message}")
        if self.flags:
            console.print(f"what each flag means and what to do next: {FLAGS_GUIDE}")

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
