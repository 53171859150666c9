"""Sanyal et al. 2021 / Crafting Label Noise (seed Figure 10), reduced budget: LeNet-5 memorizes
5000 MNIST images with 20% of the labels flipped either to random existing classes or to a
new 11th class; robust accuracy (first 1000 test images) against the clean-label model,
mean +- std over seeds.

    python scripts/reproduce_label_noise.py --seeds 3
"""

from __future__ import annotations

import argparse
import os

from seed_table import print_table, record

from advlit.cli import build_cli

SETTINGS = {
    "clean labels": ("configs/mnist/poison_random.yaml", ["--data.init_args.fraction=0.0"]),
    "20% flipped to existing classes": ("configs/mnist/poison_random.yaml", []),
    "20% flipped to an 11th class": ("configs/mnist/poison_new_class.yaml", []),
}
METRICS = ["test/clean_acc", "test/robust_acc/pgd20/eps=0.05", "test/robust_acc/pgd20/eps=0.1",
           "test/robust_acc/pgd20_l2/eps=0.5", "test/robust_acc/pgd20_l2/eps=1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-root", default="../shared/data")
    args = parser.parse_args()
    table: dict[str, dict[str, list[float]]] = {}
    for name, (config, extra) in SETTINGS.items():
        for seed in range(args.seeds):
            cli = build_cli(["fit", "--config", config, "--trainer.logger=false",
                             "--trainer.enable_progress_bar=false",
                             f"--seed_everything={seed}", f"--data.init_args.seed={seed}",
                             f"--data.init_args.datamodule.init_args.root={args.data_root}", *extra])
            train_acc = float(cli.trainer.callback_metrics["train/acc"])
            cli.trainer.test(cli.model, cli.datamodule, verbose=False)
            record(table, name, seed, {"train/acc": train_acc, **{
                key: float(cli.trainer.callback_metrics[key]) for key in METRICS}})
    print_table(f"LeNet-5, 5000 MNIST training images, mean +- std over {args.seeds} seeds",
                "training labels", table, ["train/acc", *METRICS])


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "offline")
    main()
