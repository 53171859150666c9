"""RobustnessEvaluation: run attack suites at test time (and every N validation epochs)."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from torchmetrics import MeanMetric

from advlit.attacks import Attack


class RobustnessEvaluation(Callback):
    """Evaluate clean and robust accuracy of the module under named attacks.

    ``attacks`` maps a name to an attack object; ``eps_grid`` maps a norm ("linf", "l2")
    to the eps values at which every attack of that norm is run (an attack whose norm has
    no grid runs at its own eps). Logs ``{stage}/clean_acc`` and
    ``{stage}/robust_acc/{name}/eps={eps}``; a point is robust if it is classified
    correctly both clean and under the attack. Counts are torchmetrics objects, so the
    numbers reduce exactly across DDP processes. Attacks get gradients even though Lightning
    evaluates under inference mode (the attack switches it off itself).

    ``every_n_val_epochs`` > 0 also runs it on the validation set every N epochs, so that
    ``ModelCheckpoint(monitor="val/robust_acc/...", mode="max")`` keeps the most robust
    checkpoint (robust-overfitting early stopping, Rice et al. 2020).
    """

    def __init__(self, attacks: dict[str, Attack], eps_grid: dict[str, list[float]] | None = None,
                 on_test: bool = True, every_n_val_epochs: int = 0) -> None:
        if not attacks:
            raise ValueError("RobustnessEvaluation needs at least one attack")
        if every_n_val_epochs < 0:
            raise ValueError(f"every_n_val_epochs must be >= 0, got {every_n_val_epochs}")
        self.attacks = attacks
        self.eps_grid = {k.lower(): sorted(v) for k, v in (eps_grid or {}).items()}
        for norm, grid in self.eps_grid.items():
            if any(e < 0 for e in grid):
                raise ValueError(f"eps_grid[{norm!r}] has a negative eps: {grid}")
        self.on_test = on_test
        self.every_n_val_epochs = every_n_val_epochs
        self.suite = [(name, eps, attack.replace(eps=eps)) for name, attack in attacks.items()
                      for eps in self.eps_grid.get(getattr(attack, "norm", None), [attack.eps])]
        self.metrics: dict[str, MeanMetric] = {}
        self.results: dict[str, float] = {}

    def _active(self, trainer: Trainer, stage: str) -> bool:
        if stage == "test":
            return self.on_test
        return (self.every_n_val_epochs > 0 and not trainer.sanity_checking
                and (trainer.current_epoch + 1) % self.every_n_val_epochs == 0)

    def _metric(self, name: str, device: torch.device) -> MeanMetric:
        if name not in self.metrics:
            self.metrics[name] = MeanMetric().to(device)
        return self.metrics[name]

    def _update(self, pl_module: LightningModule, batch, stage: str) -> None:
        x, y = batch
        with torch.no_grad():
            correct = pl_module(x).argmax(dim=1) == y
        self._metric(f"{stage}/clean_acc", x.device).update(correct.float())
        for name, eps, attack in self.suite:
            x_adv = attack(pl_module, x, y)
            with torch.no_grad():
                robust = correct & (pl_module(x_adv).argmax(dim=1) == y)
            self._metric(f"{stage}/robust_acc/{name}/eps={eps:g}", x.device).update(robust.float())

    def _log(self, pl_module: LightningModule, stage: str) -> None:
        for name, metric in self.metrics.items():
            if name.startswith(f"{stage}/"):
                value = metric.compute()  # synchronizes across processes
                metric.reset()
                self.results[name] = float(value)
                # already reduced over processes; sync_dist averages identical values (exact)
                pl_module.log(name, value, sync_dist=True)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self._active(trainer, "test"):
            self._update(pl_module, batch, "test")

    def on_test_epoch_end(self, trainer, pl_module):
        if self._active(trainer, "test"):
            self._log(pl_module, "test")

    def on_test_end(self, trainer, pl_module):
        if self._active(trainer, "test"):
            self.print_table("test")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0):
        if self._active(trainer, "val"):
            self._update(pl_module, batch, "val")

    def on_validation_epoch_end(self, trainer, pl_module):
        if self._active(trainer, "val"):
            self._log(pl_module, "val")

    @rank_zero_only
    def print_table(self, stage: str) -> None:
        """Print robust accuracy per attack (rows) and eps (columns)."""
        from rich.console import Console
        from rich.table import Table

        grid: dict[str, dict[str, float]] = {}
        for key, value in self.results.items():
            parts = key.split("/")
            if parts[0] == stage and parts[1] == "robust_acc":
                grid.setdefault(parts[2], {})[parts[3]] = value
        table = Table(title=f"{stage} robustness (clean acc "
                            f"{self.results.get(f'{stage}/clean_acc', float('nan')):.4f})")
        table.add_column("attack")
        columns = sorted({c for row in grid.values() for c in row}, key=lambda c: float(c[4:]))
        for column in columns:
            table.add_column(column, justify="right")
        for name, row in grid.items():
            table.add_row(name, *(f"{row[c]:.4f}" if c in row else "" for c in columns))
        Console().print(table)
