"""Cost of a deep-margin-maximization training step relative to an ERM step (same model,
batch), against the bound of (k + 2) forward+backward passes for k competitor classes.

    python scripts/bench_margin.py [--model lenet|cwcnn] [--batch 128]
"""

from __future__ import annotations

import argparse
import time

import torch

from advlit.defenses import MarginMaximization, RobustClassifier
from advlit.models import CWCNN, LeNet5


def step_time(module, x, y, repeats: int) -> float:
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        module.training_loss(x, y)[0].backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed run: robust to other load on the machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["lenet", "cwcnn"], default="lenet")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    make = LeNet5 if args.model == "lenet" else CWCNN
    torch.manual_seed(0)
    x, y = torch.rand(args.batch, 1, 28, 28), torch.randint(0, 10, (args.batch,))
    erm = step_time(RobustClassifier(make()).train(), x, y, args.repeats)
    print(f"model={args.model} batch={args.batch} ERM step {1e3 * erm:.1f} ms")
    for k in (1, 3, 9):
        module = MarginMaximization(make(), C=0.1, competitors=k).train()
        t = step_time(module, x, y, args.repeats)
        print(f"margin, k={k}: {1e3 * t:7.1f} ms = {t / erm:5.2f} x ERM   (bound k + 2 = {k + 2})")


if __name__ == "__main__":
    main()
