"""The package API behind the scripts: a trained run's model and data from its config and
checkpoint, a quiet trainer for benchmarks, an epoch timer, TorchScript export, a hand-written
PGD baseline and tables of metrics over seeds. Scripts hold their arguments, calls into the
package and a printed table, nothing a second script would import."""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningDataModule
from torch import nn

from advlit.atomic import atomic_write
from advlit.checkpoints import load_network
from advlit.cli import build_cli
from advlit.defenses import RobustClassifier


@dataclass
class Run:
    """A config's LightningModule (eval mode, the checkpoint's weights) and datamodule."""

    module: RobustClassifier
    datamodule: LightningDataModule

    def test_tensors(self, samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``samples`` test images (float in [0, 1]) and their labels."""
        return self.datamodule.split_tensors("test", samples)


QUIET = ("--trainer.logger=false", "--trainer.limit_val_batches=0", "--trainer.enable_checkpointing=false",
         "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false",
         "--trainer.enable_model_summary=false")


def quiet_cli(config: str, overrides: list[str] | tuple = ()):
    """The config's trainer, model and data (built, not run) without loggers, validation,
    checkpoints, callbacks or progress output: for timing and benchmark training."""
    return build_cli(["--config", config, *QUIET, *overrides], run=False)


class EpochTimer(Callback):
    """Wall time of each training epoch, in ``times``."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self.start)


def export_torchscript(net: nn.Module, path: str | Path, input_shape=(1, 28, 28)) -> None:
    """TorchScript (traced) of the fp32 eval-mode network, written atomically."""
    net = net.float().eval().cpu()
    traced = torch.jit.trace(net, torch.rand(2, *input_shape))
    atomic_write(path, lambda tmp: torch.jit.save(traced, str(tmp)))


def hand_written_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
                     steps: int) -> torch.Tensor:
    """The baseline of the speed benchmarks: Linf PGD from a random start as a researcher writes
    it by hand (global RNG, no guard, no early stop)."""
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


BENCH_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "bench"  # in a clone of advlit


def bench_network(name: str, root: str, cache: str | Path) -> nn.Module:
    """The benchmark zoo's network ``name`` (``configs/bench/<name>.yaml``), in eval mode: its
    weights from ``<cache>/<name>.pt``, else trained once with a quiet trainer and cached."""
    path = Path(cache) / f"{name}.pt"
    cli = quiet_cli(str(BENCH_CONFIGS / f"{name}.yaml"), [f"--data.init_args.root={root}"])
    if path.exists():
        cli.model.model.load_state_dict(torch.load(path, weights_only=True))
    else:
        start = time.perf_counter()
        cli.trainer.fit(cli.model, cli.datamodule)
        atomic_write(path, lambda tmp: torch.save(cli.model.model.state_dict(), tmp))
        print(f"trained {name} in {time.perf_counter() - start:.0f} s", flush=True)
    return cli.model.model.eval()


def load_run(config: str, checkpoint: str | None = None, overrides: list[str] | tuple = ()) -> Run:
    """Build ``config`` (plus ``overrides``, e.g. ``--data.init_args.root=...``) without loggers
    and load ``checkpoint`` (a file, or a checkpoint folder: its newest run's last.ckpt)
    safely into the network."""
    cli = build_cli(["--config", config, "--trainer.logger=false", *overrides], run=False)
    if checkpoint is not None:
        load_network(cli.model.model, checkpoint)
    return Run(cli.model.eval(), cli.datamodule)


def add_run_arguments(parser: argparse.ArgumentParser, samples: int, config: str = "configs/quickstart.yaml",
                      checkpoint: str = "logs/quickstart/checkpoints") -> None:
    """``--config``, ``--ckpt`` and ``--samples`` for a script that evaluates a trained run."""
    parser.add_argument("--config", default=config)
    parser.add_argument("--ckpt", default=checkpoint,
                        help="a checkpoint file, or a checkpoint folder (its newest run's last.ckpt)")
    parser.add_argument("--samples", type=int, default=samples)


@dataclass
class SeedTable:
    """Metrics per setting over seeds, printed as mean +- (population) std."""

    rows: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def record(self, name: str, seed: int, values: dict[str, float]) -> None:
        """Add one seed's ``values`` to the row ``name`` and print them."""
        row = self.rows.setdefault(name, {})
        for key, value in values.items():
            row.setdefault(key, []).append(value)
        print(name, seed, {k: round(v, 4) for k, v in values.items()}, flush=True)

    def print(self, title: str, first_column: str, columns: list[str], digits: int = 3) -> None:
        width = max(len(first_column), *(len(name) for name in self.rows)) + 2
        print(f"\n{title}")
        print(f"{first_column:<{width}}" + "".join(f"{c:>30}" for c in columns))
        for name, row in self.rows.items():
            mean_std = [(statistics.mean(row[c]), statistics.pstdev(row[c])) for c in columns]
            cells = (f"{m:>{25 - digits}.{digits}f} +-{s:.{digits}f}" for m, s in mean_std)
            print(f"{name:<{width}}" + "".join(cells))
