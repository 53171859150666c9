"""Sanyal et al. 2021 / Crafting Label Noise (seed Figure 10), reduced budget: LeNet-5 (--model)
memorizes 5000 MNIST images (--train-size) with 20% (--fraction) of the labels flipped either
to random existing classes or to a new 11th class; robust accuracy (first 1000 test images)
against the clean-label model, mean +- std over seeds; for the 11th-class model also the share
of broken points that the attack sends into the new class, the robust accuracy when the
11th output is ignored, and robust accuracy against Linf eps with the 11th class read as an
error or as a reject option (only a wrong digit counts as an error), optionally plotted.

    python scripts/reproduce_label_noise.py --seeds 2 --plot docs/label_noise.png
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

from advlit.attacks import PGD
from advlit.cli import build_cli
from advlit.data.root import data_root
from advlit.runs import SeedTable

SETTINGS = {
    "clean labels": ("configs/mnist/poison_random.yaml", ["--data.init_args.fraction=0.0"]),
    "flipped to existing classes": ("configs/mnist/poison_random.yaml", []),
    "flipped to an 11th class": ("configs/mnist/poison_new_class.yaml", []),
}
METRICS = ["test/clean_acc", "test/robust_acc/pgd20/eps=0.05", "test/robust_acc/pgd20/eps=0.1",
           "test/robust_acc/pgd20_l2/eps=0.5", "test/robust_acc/pgd20_l2/eps=1"]
CURVE_EPS = (0.0, 0.025, 0.05, 0.075, 0.1)
DETAIL_EPS = 0.05  # the point of the curve that also gets the 11th-class breakdown
NEW_CLASS = f"broken into 11th, Linf {DETAIL_EPS}"
DIGITS_ONLY = f"ten digits only, Linf {DETAIL_EPS}"
ERROR_READING, REJECT_READING = "11th = error, Linf ", "11th = reject, Linf "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-root", default=str(data_root()))
    parser.add_argument("--train-size", type=int, default=5000, help="training images (seeded subset)")
    parser.add_argument("--fraction", type=float, default=0.2, help="fraction of labels flipped")
    parser.add_argument("--model", default="LeNet5", help="an advlit.models class, e.g. CWCNN")
    parser.add_argument("--plot", default=None, help="write robust accuracy against eps here "
                                                    "(pip install 'advlit[plots]')")
    args = parser.parse_args()
    table = SeedTable()
    for name, (config, extra) in SETTINGS.items():
        for seed in range(args.seeds):
            cli = build_cli(["fit", "--config", config, "--trainer.logger=false",
                             "--trainer.enable_progress_bar=false",
                             f"--seed_everything={seed}", f"--data.init_args.seed={seed}",
                             f"--data.init_args.datamodule.init_args.root={args.data_root}",
                             f"--data.init_args.datamodule.init_args.train_size={args.train_size}",
                             f"--data.init_args.fraction={args.fraction}",
                             f"--model.init_args.model=advlit.models.{args.model}", *extra])
            train_acc = float(cli.trainer.callback_metrics["train/acc"])
            cli.trainer.test(cli.model, cli.datamodule, verbose=False)
            table.record(name, seed, {"train/acc": train_acc, **new_class_analysis(cli), **{
                key: float(cli.trainer.callback_metrics[key]) for key in METRICS}})
    table.print(f"{args.model}, {args.train_size} MNIST training images, {args.fraction:.0%} flipped, "
                f"mean +- std over {args.seeds} seeds",
                "training labels", ["train/acc", *METRICS, NEW_CLASS, DIGITS_ONLY,
                                    *(f"{r}{eps}" for r in (ERROR_READING, REJECT_READING)
                                      for eps in CURVE_EPS[1:])])
    if args.plot:
        plot(table.rows, args.plot, f"{args.model}, {args.train_size} images, {args.fraction:.0%} flipped, "
                               f"{args.seeds} seeds")


def new_class_analysis(cli) -> dict[str, float]:
    """Linf robust accuracy on the first 1000 test images at each of CURVE_EPS, in two readings
    of an 11th output: an error like any wrong label, or a reject option (only a wrong digit is
    an error). A point is robust if x is classified right and its predictions under PGD-20 and
    under a margin PGD-20 adapted to the reject reading (``RejectAsTrue``) are acceptable. At
    DETAIL_EPS also the share of points broken by PGD whose prediction is the 11th class (0 for
    a 10-class model) and the robust accuracy of the ten-digit classifier (argmax over the
    digit logits only, attacked as such)."""
    model = cli.model.eval()
    x, y = cli.datamodule.datamodule.split_tensors("test", 1000)
    torch.manual_seed(0)
    with torch.no_grad():
        clean = model(x).argmax(dim=1)
    results = {}
    for eps in CURVE_EPS:
        predictions = [clean]
        if eps > 0:
            attack = PGD(norm="linf", eps=eps, steps=20)
            adapted = attack.replace(loss="margin")
            with torch.no_grad():
                predictions.append(model(attack(model, x, y)).argmax(dim=1))
                predictions.append(model(adapted(RejectAsTrue(model, y), x, y)).argmax(dim=1))
        predictions = torch.stack(predictions)
        results[f"{ERROR_READING}{eps}"] = float((predictions == y).all(dim=0).float().mean())
        accepted = (predictions == y) | (predictions == 10)
        accepted[0] = predictions[0] == y  # the clean input itself must be classified right
        results[f"{REJECT_READING}{eps}"] = float(accepted.all(dim=0).float().mean())
        if eps == DETAIL_EPS:
            broken = predictions[1] != y
            into_new_class = (predictions[1][broken] == 10).float().mean() if broken.any() else 0.0
            digits = DigitLogits(model)
            with torch.no_grad():
                digits_only = (digits(attack(digits, x, y)).argmax(dim=1) == y).float().mean()
            results.update({NEW_CLASS: float(into_new_class), DIGITS_ONLY: float(digits_only)})
    return results


def plot(table: dict[str, dict[str, list[float]]], path: str, title: str) -> None:
    """Robust accuracy against Linf eps, mean +- std over seeds; the 11th-class model in both
    readings."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in table.items():
        readings = [(ERROR_READING, "-")] + ([(REJECT_READING, "--")] if "11th" in name else [])
        for reading, style in readings:
            means = [statistics.mean(row[f"{reading}{eps}"]) for eps in CURVE_EPS]
            stds = [statistics.pstdev(row[f"{reading}{eps}"]) for eps in CURVE_EPS]
            label = name + (f", {reading.removesuffix(', Linf ')}" if "11th" in name else "")
            ax.errorbar(CURVE_EPS, means, yerr=stds, ls=style, marker="o", capsize=3, label=label)
    ax.set(title=title, xlabel="Linf eps (PGD-20 and adapted margin PGD-20)",
           ylabel="robust accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


class DigitLogits(torch.nn.Module):
    """The first ten logits of ``model``: the classifier with the 11th output ignored."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, :10]


class RejectAsTrue(torch.nn.Module):
    """Digit logits for the batch labelled ``y`` with the 11th output folded into the true
    class, z_y <- logsumexp(z_y, z_10): a margin attack on it must make a wrong digit beat both
    the true class and the reject class. A 10-output model passes through unchanged."""

    def __init__(self, model: torch.nn.Module, y: torch.Tensor) -> None:
        super().__init__()
        self.model, self.y = model, y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if logits.shape[1] == 10:
            return logits
        digits = logits[:, :10]
        true_or_reject = torch.logsumexp(torch.stack([digits.gather(1, self.y[:, None]).squeeze(1),
                                                      logits[:, 10]], dim=1), dim=1)
        return digits.scatter(1, self.y[:, None], true_or_reject[:, None])


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "offline")
    main()
