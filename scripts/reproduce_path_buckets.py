"""Crafting Label Noise (seed Figures 15, 17), reduced budget: on MNIST 0-vs-1, flip 100 of 4000
training labels chosen from one adversarial-path-length bucket (quartiles of the number of
targeted L2 gradient-ascent steps a clean LeNet-5 needs to flip a point), train LeNet-5 to
memorize them, and compare robust accuracy with random flips, over seeds.

    python scripts/reproduce_path_buckets.py --seeds 3
"""

from __future__ import annotations

import argparse
import os

import torch

from advlit.attacks import FlipSteps
from advlit.checkpoints import latest_checkpoint
from advlit.cli import build_cli
from advlit.data.root import data_root
from advlit.models import LeNet5
from advlit.runs import SeedTable

CLEAN, POISON = "configs/mnist/lenet_01.yaml", "configs/mnist/poison_path_01.yaml"
CHECKPOINTS = "logs/mnist/lenet_01/checkpoints"
METRICS = ["test/clean_acc", "test/robust_acc/pgd20/eps=0.02", "test/robust_acc/pgd20/eps=0.05",
           "test/robust_acc/pgd20_l2/eps=0.25", "test/robust_acc/pgd20_l2/eps=0.5"]
QUIET = ["--trainer.logger=false", "--trainer.enable_progress_bar=false"]


def flip_steps(data_root: str) -> torch.Tensor:
    """Targeted path length of every training point on the clean model (as the strategy sees it)."""
    cli = build_cli(["--config", POISON, *QUIET, f"--data.init_args.datamodule.init_args.root={data_root}"],
                    run=False)
    x, y = cli.datamodule.datamodule.split_tensors("train")
    return FlipSteps(LeNet5(num_classes=2), CHECKPOINTS, steps=100, step_size=0.1).scores(x, y, 1 - y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-root", default=str(data_root()))
    args = parser.parse_args()
    if not latest_checkpoint(CHECKPOINTS).is_file():
        build_cli(["fit", "--config", CLEAN, *QUIET, f"--data.init_args.root={args.data_root}"])
    steps = flip_steps(args.data_root)
    edges = torch.quantile(steps.double(), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.double))
    edges = edges.round().long().tolist()
    print(f"path lengths of the 4000 training points: quartile edges {edges}", flush=True)
    buckets = {f"steps {lo}-{hi}": [f"--data.init_args.strategy.init_args.min_score={lo}",
                                    f"--data.init_args.strategy.init_args.max_score={hi}"]
               for lo, hi in zip([edges[0]] + [e + 1 for e in edges[1:-1]], edges[1:])}
    random = ["--data.init_args.strategy=advlit.data.RandomSelection"]
    settings = {"no flips": ["--data.init_args.count=0", *random], "random": random, **buckets}
    table = SeedTable()
    for name, extra in settings.items():
        for seed in range(args.seeds):
            cli = build_cli(["fit", "--config", POISON, *QUIET, f"--seed_everything={seed}",
                             f"--data.init_args.seed={seed}",
                             f"--data.init_args.datamodule.init_args.root={args.data_root}", *extra])
            cli.trainer.test(cli.model, cli.datamodule, verbose=False)
            table.record(name, seed, {key: float(cli.trainer.callback_metrics[key]) for key in METRICS})
    table.print(f"MNIST 0-vs-1, LeNet-5, 100 of 4000 labels flipped, mean +- std over {args.seeds} seeds",
                "poisons", METRICS, digits=4)


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "offline")
    main()
