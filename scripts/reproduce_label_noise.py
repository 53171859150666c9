"""Sanyal et al. 2021 / Crafting Label Noise (seed Figure 10), reduced budget: LeNet-5 (--model)
memorizes 5000 MNIST images (--train-size) with 20% (--fraction) of the labels flipped either
to random existing classes or to a new 11th class; robust accuracy (first 1000 test images)
against the clean-label model, mean +- std over seeds; for the 11th-class model also the share
of broken points that the attack sends into the new class, the robust accuracy when the
11th output is ignored, and the robust accuracy when the 11th class is a reject option (only a
wrong digit counts as an error).

    python scripts/reproduce_label_noise.py --seeds 3
"""

from __future__ import annotations

import argparse
import os

import torch
from seed_table import print_table, record

from advlit.attacks import PGD
from advlit.cli import build_cli

SETTINGS = {
    "clean labels": ("configs/mnist/poison_random.yaml", ["--data.init_args.fraction=0.0"]),
    "flipped to existing classes": ("configs/mnist/poison_random.yaml", []),
    "flipped to an 11th class": ("configs/mnist/poison_new_class.yaml", []),
}
METRICS = ["test/clean_acc", "test/robust_acc/pgd20/eps=0.05", "test/robust_acc/pgd20/eps=0.1",
           "test/robust_acc/pgd20_l2/eps=0.5", "test/robust_acc/pgd20_l2/eps=1"]
NEW_CLASS = "broken into 11th, Linf 0.05"
DIGITS_ONLY = "ten digits only, Linf 0.05"
REJECT = "11th class = reject, Linf 0.05"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--train-size", type=int, default=5000, help="training images (seeded subset)")
    parser.add_argument("--fraction", type=float, default=0.2, help="fraction of labels flipped")
    parser.add_argument("--model", default="LeNet5", help="an advlit.models class, e.g. CWCNN")
    args = parser.parse_args()
    table: dict[str, dict[str, list[float]]] = {}
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
            record(table, name, seed, {"train/acc": train_acc, **new_class_analysis(cli), **{
                key: float(cli.trainer.callback_metrics[key]) for key in METRICS}})
    print_table(f"{args.model}, {args.train_size} MNIST training images, {args.fraction:.0%} flipped, "
                f"mean +- std over {args.seeds} seeds",
                "training labels", table, ["train/acc", *METRICS, NEW_CLASS, DIGITS_ONLY, REJECT])


def new_class_analysis(cli) -> dict[str, float]:
    """PGD-20 at Linf 0.05 on the first 1000 test images, three readings of an 11th output:
    the share of broken points whose adversarial prediction is the 11th class (0 for a
    10-class model); the robust accuracy of the ten-digit classifier (argmax over the digit
    logits only, attacked as such); and the robust accuracy with the 11th class as a reject
    option: a point is robust unless the model predicts a wrong digit, on x or under either of
    plain PGD and a margin PGD adapted to that reading (``RejectAsTrue``)."""
    model = cli.model.eval()
    test_set = cli.datamodule.datamodule.test_set
    x, y = test_set.images[:1000].float() / 255, test_set.labels[:1000]
    attack = PGD(norm="linf", eps=0.05, steps=20)
    torch.manual_seed(0)
    with torch.no_grad():
        prediction = model(attack(model, x, y)).argmax(dim=1)
    broken = prediction != y
    digits = DigitLogits(model)
    with torch.no_grad():
        digits_only = (digits(attack(digits, x, y)).argmax(dim=1) == y).float().mean()
    adapted = attack.replace(loss="margin")
    with torch.no_grad():
        adapted_prediction = model(adapted(RejectAsTrue(model, y), x, y)).argmax(dim=1)
        wrong_digit = torch.zeros_like(broken)
        for p in (model(x).argmax(dim=1), prediction, adapted_prediction):
            wrong_digit |= (p != y) & (p != 10)
    return {NEW_CLASS: float((prediction[broken] == 10).float().mean()) if broken.any() else 0.0,
            DIGITS_ONLY: float(digits_only), REJECT: 1 - float(wrong_digit.float().mean())}


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
