"""RobustnessEvaluation: attack suites from the config, at test time and every N validation
epochs, exact under DDP, with min-norm curves, sanity checks, EOT and W&B media."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch.utils.data import DistributedSampler, RandomSampler
from torchmetrics import MeanMetric

from advlit.attacks import Attack, MinNormAttack
from advlit.attacks.geometry import lp_norm
from advlit.evaluation.eot import ExpectationOverTransformation
from advlit.evaluation.media import log_wandb_media
from advlit.evaluation.metrics import RadiusStatistics, min_norm_radius
from advlit.evaluation.sanity import curve_checks, gradient_check, randomness_check


@dataclass
class _StageState:
    means: dict[str, MeanMetric] = field(default_factory=dict)
    radii: dict[str, RadiusStatistics] = field(default_factory=dict)
    examples: dict[str, tuple] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)
    first_batch: bool = True


class RobustnessEvaluation(Callback):
    """Evaluate clean and robust accuracy under a suite of named attacks.

    ``attacks`` maps names to attack objects (``class_path``/``init_args`` in YAML), run in
    order. ``eps_grid`` maps a norm to the eps values for that norm: fixed-budget attacks run
    at each (or at their own eps if their norm has no grid); min-norm attacks run once and
    give robust accuracy at every eps of their norm (robust iff correct and the smallest
    adversarial perturbation found is larger than eps), plus median/mean norm, success rate
    and ``rho_adv``. The pointwise worst case over all attacks of a norm is logged as
    ``robust_acc/worst_{norm}``. With ``cascade`` (AutoAttack-style) a fixed-budget attack
    only attacks points still robust at its eps, and its logged number is the worst case so
    far. ``max_samples`` evaluates the first N points of the (ordered) evaluation set.
    ``eot_samples`` = n > 1 attacks and predicts through an expectation over n passes, and
    its metric names carry ``_eot{n}`` (``clean_acc_eot8``, ``pgd40_eot8``, ``worst_linf_eot8``)
    so a naive and an EOT suite can run side by side on a randomized model; the naive suite
    then raises the ``randomized_model`` flag (its numbers are unreliable).

    Targeted evaluation: ``source_class`` restricts the evaluation to points of that class
    and ``target_class`` makes every attack targeted to that class (e.g. 9 -> 0 for a 9 -> 0
    label-flip poison); a point stays robust while it is still classified correctly.

    Counts are torchmetrics objects: under DDP every process attacks its own shard and the
    numbers reduce exactly to those of one process (padding duplicates are dropped).
    Attacks get gradients although Lightning evaluates under inference mode.
    """

    def __init__(self, attacks: dict[str, Attack], eps_grid: dict[str, list[float]] | None = None,
                 on_test: bool = True, every_n_val_epochs: int = 0, max_samples: int | None = None,
                 cascade: bool = False, eot_samples: int = 1, sanity_checks: bool = True,
                 log_examples: int = 16, source_class: int | None = None,
                 target_class: int | None = None) -> None:
        if not attacks:
            raise ValueError("RobustnessEvaluation needs at least one attack")
        if every_n_val_epochs < 0:
            raise ValueError(f"every_n_val_epochs must be >= 0, got {every_n_val_epochs}")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
        if eot_samples < 1:
            raise ValueError(f"eot_samples must be >= 1, got {eot_samples}")
        self.eps_grid = {k.lower(): sorted(v) for k, v in (eps_grid or {}).items()}
        for norm, grid in self.eps_grid.items():
            if any(e < 0 for e in grid):
                raise ValueError(f"eps_grid[{norm!r}] has a negative eps: {grid}")
        self.on_test, self.every_n_val_epochs = on_test, every_n_val_epochs
        self.max_samples, self.cascade = max_samples, cascade
        self.eot_samples, self.sanity_checks, self.log_examples = eot_samples, sanity_checks, log_examples
        self.tag = f"_eot{eot_samples}" if eot_samples > 1 else ""
        self.source_class, self.target_class = source_class, target_class
        if target_class is not None:
            untargetable = [n for n, a in attacks.items()
                            if "targeted" not in inspect.signature(type(a)).parameters]
            if untargetable:
                raise ValueError(f"target_class needs attacks with a targeted mode; {untargetable} "
                                 "have none (use PGD, FGSM, CarliniWagnerL2, PDGD or PDPGD)")
            attacks = {name: attack.replace(targeted=True) for name, attack in attacks.items()}
        self.suite = []  # (name, attack, norm, eps list, is min-norm)
        for name, attack in attacks.items():
            name += self.tag
            norm = attack.norm
            if isinstance(attack, MinNormAttack):
                self.suite.append((name, attack, norm, self.eps_grid.get(norm, []), True))
            else:
                grid = self.eps_grid.get(norm, [attack.eps])
                self.suite.append((name, [attack.replace(eps=e) for e in grid], norm, grid, False))
        self.states: dict[str, _StageState] = {}
        self.flags: dict[str, str] = {}  # sanity-check messages of the last finished stage
        self.results: dict[str, float] = {}

    # -- when ---------------------------------------------------------------------------
    def _active(self, trainer: Trainer, stage: str) -> bool:
        if stage == "test":
            return self.on_test
        return (self.every_n_val_epochs > 0 and not trainer.sanity_checking
                and (trainer.current_epoch + 1) % self.every_n_val_epochs == 0)

    # -- which samples ------------------------------------------------------------------
    def _keep(self, trainer: Trainer, stage: str, batch_idx: int, dataloader_idx: int,
              n: int, device) -> torch.Tensor | None:
        """Mask of batch samples to evaluate: drops DistributedSampler padding and
        everything past ``max_samples`` by each sample's index in the dataset."""
        loaders = trainer.test_dataloaders if stage == "test" else trainer.val_dataloaders
        loader = loaders[dataloader_idx] if isinstance(loaders, (list, tuple)) else loaders
        sampler, size = loader.sampler, len(loader.dataset)
        if isinstance(sampler, RandomSampler) or getattr(sampler, "shuffle", False):
            if self.max_samples is not None:
                raise ValueError("max_samples needs an unshuffled evaluation dataloader")
            return None
        world, rank = ((sampler.num_replicas, sampler.rank)
                       if isinstance(sampler, DistributedSampler) else (1, 0))
        position = batch_idx * loader.batch_size + torch.arange(n, device=device)
        index = rank + position * world
        limit = size if self.max_samples is None else min(size, self.max_samples)
        return index < limit

    # -- metrics ------------------------------------------------------------------------
    def _mean(self, state: _StageState, key: str, device) -> MeanMetric:
        if key not in state.means:
            state.means[key] = MeanMetric().to(device)
        return state.means[key]

    def _update(self, trainer: Trainer, pl_module: LightningModule, batch, stage: str,
                batch_idx: int, dataloader_idx: int) -> None:
        state = self.states.setdefault(stage, _StageState())
        x, y = batch
        keep = self._keep(trainer, stage, batch_idx, dataloader_idx, x.shape[0], x.device)
        if keep is not None:
            if not keep.any():
                return
            x, y = x[keep], y[keep]
        if self.source_class is not None:
            x, y = x[y == self.source_class], y[y == self.source_class]
            if not len(y):
                return
        model = (ExpectationOverTransformation(pl_module, self.eot_samples)
                 if self.eot_samples > 1 else pl_module)
        with torch.no_grad():
            correct = model(x).argmax(dim=1) == y
        self._mean(state, f"{stage}/clean_acc{self.tag}", x.device).update(correct.float())
        if state.first_batch:
            state.first_batch = False
            self._first_batch(trainer, pl_module, model, state, x, y)

        robust: dict[tuple[str, float], torch.Tensor] = {}
        for name, attack, norm, grid, min_norm in self.suite:
            if min_norm:
                radius = min_norm_radius(model, attack, x, y, self._goal(y), correct)
                relative = radius / lp_norm(x, norm).clamp_min(1e-12)
                if name not in state.radii:
                    state.radii[name] = RadiusStatistics(grid).to(x.device)
                state.radii[name].update(radius, relative)
                for eps in grid:
                    robust[(norm, eps)] = robust.get((norm, eps), correct) & (radius > eps)
                continue
            for eps, attack_at_eps in zip(grid, attack):
                still = robust.get((norm, eps), correct) if self.cascade else correct
                flags = still.clone()
                idx = still.nonzero().squeeze(1)
                if idx.numel():
                    x_adv = attack_at_eps(model, x[idx], self._goal(y)[idx])
                    with torch.no_grad():
                        flags[idx] = model(x_adv).argmax(dim=1) == y[idx]
                robust[(norm, eps)] = robust.get((norm, eps), correct) & flags
                logged = robust[(norm, eps)] if self.cascade else flags
                self._mean(state, f"{stage}/robust_acc/{name}/eps={eps:g}", x.device).update(logged.float())
        for (norm, eps), flags in robust.items():
            key = f"{stage}/robust_acc/worst_{norm}{self.tag}/eps={eps:g}"
            self._mean(state, key, x.device).update(flags.float())

    def _goal(self, y: torch.Tensor) -> torch.Tensor:
        """What the attacks get as labels: y, or the target class when targeted."""
        return y if self.target_class is None else torch.full_like(y, self.target_class)

    def _first_batch(self, trainer, pl_module, model, state: _StageState, x, y) -> None:
        """Sanity checks on the first batch; adversarial examples for the W&B grid."""
        head_x, head_y = x[:32], y[:32]
        if self.sanity_checks:
            randomness = randomness_check(pl_module, head_x) if self.eot_samples == 1 else None
            for message, name in ((randomness, "randomized_model"),
                                  (gradient_check(model, head_x, head_y), "zero_or_nonfinite_gradients")):
                if message:
                    state.flags[name] = message
        if self.log_examples > 0 and trainer.is_global_zero and any(
                isinstance(logger, WandbLogger) for logger in trainer.loggers):
            k = self.log_examples
            for name, attack, _, _, min_norm in self.suite:
                strongest = attack if min_norm else attack[-1]
                x_adv = strongest(model, x[:k], self._goal(y)[:k])
                with torch.no_grad():
                    pred = model(x_adv).argmax(dim=1)
                state.examples[name] = (x_adv, pred, y[:k])

    # -- reduction and reporting ----------------------------------------------------------
    def _finish(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        state = self.states.pop(stage, None)
        if state is None:
            return
        values: dict[str, float] = {}
        for key, metric in state.means.items():
            values[key] = float(metric.compute())  # synchronizes across processes
        radii_values: dict[str, torch.Tensor] = {}
        unbounded: dict[str, float] = {}
        for name, metric in state.radii.items():
            for key, value in metric.compute().items():
                prefix, _, rest = key.partition("/")
                values[f"{stage}/{prefix}/{name}" + (f"/{rest}" if rest else "")] = value
            radius = torch.as_tensor(metric.radius.compute()).flatten()
            radii_values[name] = radius
            unbounded[name] = radius.isinf().float().mean().item()
        for key, value in values.items():
            # already reduced over processes; sync_dist averages identical values (exact)
            pl_module.log(key, value, sync_dist=True)
        self.results.update(values)

        curves: dict[str, dict[float, float]] = {}
        rows = []
        norms = {name: norm for name, _, norm, _, _ in self.suite}
        for key, value in values.items():
            parts = key.split("/")
            if parts[1] == "robust_acc" and parts[-1].startswith("eps="):
                eps = float(parts[-1][4:])
                curves.setdefault(parts[2], {})[eps] = value
                norm = norms.get(parts[2], parts[2].removeprefix("worst_").removesuffix(self.tag))
                rows.append([parts[2], norm, eps, value])
        if self.sanity_checks:
            # per-attack numbers are cumulative under cascade: compare them only without it
            fixed = {name for name, _, _, _, mn in self.suite if not mn}
            single = {name for name, attack, _, _, mn in self.suite
                      if not mn and getattr(attack[0], "steps", 2) == 1}
            attack_curves = {n: c for n, c in curves.items()
                             if n in norms and not (self.cascade and n in fixed)}
            state.flags.update(curve_checks(attack_curves, single if not self.cascade else set(),
                                            {n: norms[n] for n in attack_curves}, unbounded))
            for name in state.flags:
                pl_module.log(f"{stage}/sanity/{name}{self.tag}", 1.0, sync_dist=True)
        self.flags = state.flags
        if trainer.is_global_zero:
            for message in state.flags.values():
                rank_zero_warn(f"RobustnessEvaluation sanity check: {message}")
            log_wandb_media(trainer.loggers, stage, rows, state.examples, radii_values, self.tag)
        if stage == "test":
            self.print_table(stage)

    @rank_zero_only
    def print_table(self, stage: str) -> None:
        """Robust accuracy per attack (rows) and eps (columns), min-norm statistics, flags."""
        from rich.console import Console
        from rich.table import Table

        grid: dict[str, dict[float, float]] = {}
        stats: dict[str, dict[str, float]] = {}
        for key, value in self.results.items():
            parts = key.split("/")
            if parts[0] != stage:
                continue
            if parts[1] == "robust_acc":
                grid.setdefault(parts[2], {})[float(parts[3][4:])] = value
            elif parts[1] in ("median_norm", "rho_adv", "success_rate"):
                stats.setdefault(parts[2], {})[parts[1]] = value
        clean = self.results.get(f"{stage}/clean_acc{self.tag}", float("nan"))
        table = Table(title=f"{stage} robustness{self.tag} (clean accuracy {clean:.4f})")
        table.add_column("attack")
        columns = sorted({e for row in grid.values() for e in row})
        for eps in columns:
            table.add_column(f"eps={eps:g}", justify="right")
        for column in ("median_norm", "rho_adv"):
            table.add_column(column, justify="right")
        names = [name for name, *_ in self.suite] + sorted(n for n in grid if n.startswith("worst_"))
        for name in names:
            row = grid.get(name, {})
            extra = stats.get(name, {})
            table.add_row(name, *(f"{row[e]:.4f}" if e in row else "" for e in columns),
                          *(f"{extra[c]:.4f}" if c in extra else "" for c in ("median_norm", "rho_adv")))
        console = Console()
        console.print(table)
        for message in self.flags.values():
            console.print(f"[yellow]sanity check:[/yellow] {message}")

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
