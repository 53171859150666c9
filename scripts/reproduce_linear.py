"""Reproduce the adversarial-training lecture's MNIST 0-vs-1 logistic regression table:
plain vs robustly trained (exact inner maximization, Linf eps 0.2), test error clean and
under the optimal attack delta* = -y~ eps sign(theta) (unclipped, as in the lecture, and
clipped to the [0, 1] image box, as advlit's attacks are).

    python scripts/reproduce_linear.py
"""

from __future__ import annotations

import torch

from advlit.cli import build_cli

PAPER = {"linear_01": (0.0004, 0.845), "linear_01_robust": (None, 0.025)}
EPS = 0.2


def errors(cli) -> tuple[float, float, float]:
    model = cli.model.model.eval()
    dm = cli.datamodule
    x = dm.test_set.images.float() / 255
    y = dm.test_set.labels
    signed = y.float() * 2 - 1
    with torch.no_grad():
        z = model.score(x)
        delta = -signed[:, None] * EPS * model.linear.weight.sign()
        z_free = model.score(x + delta.view_as(x))
        z_box = model.score((x + delta.view_as(x)).clamp(0, 1))
    err = lambda s: ((s > 0).long() != y).float().mean().item()  # noqa: E731
    return err(z), err(z_free), err(z_box)


def main() -> None:
    print(f"{'model':<20}{'clean error':>12}{'paper':>8}{'optimal attack':>16}{'paper':>8}"
          f"{'box-clipped':>13}")
    for name, (paper_clean, paper_adv) in PAPER.items():
        config = f"configs/mnist/{name}.yaml"
        cli = build_cli(["fit", "--config", config, "--trainer.logger=false",
                         "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"])
        clean, free, box = errors(cli)
        pc = f"{paper_clean:.4f}" if paper_clean is not None else "-"
        print(f"{name:<20}{clean:>12.4f}{pc:>8}{free:>16.4f}{paper_adv:>8.3f}{box:>13.4f}")


if __name__ == "__main__":
    main()
