"""Cost of a deep-margin-maximization training step relative to an ERM step (same model,
batch), against the bound of (k + 2) forward+backward passes for k competitor classes.

The step is made of passes that need the input gradient, which an ERM step never computes, so
the ratio is also printed in units of one input-gradient pass (a forward plus a backward to the
input, i.e. one PGD step). On LeNet-5 on CPU the two units differ: oneDNN's backward-data of the
first convolution (1 input channel, 5x5, padding 2) costs about 10 forward passes of it.

    OMP_NUM_THREADS=1 python scripts/bench_margin.py [--model lenet|cwcnn] [--batch 128]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

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


def input_gradient_time(model, x, y, repeats: int) -> float:
    """One forward and one backward to the input (a PGD step's cost)."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        x_adv = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        if i:
            times.append(time.perf_counter() - start)
    return min(times)


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
    grad_pass = input_gradient_time(make().eval(), x, y, args.repeats)
    print(f"model={args.model} batch={args.batch} ERM step {1e3 * erm:.1f} ms, "
          f"input-gradient pass {1e3 * grad_pass:.1f} ms")
    for k in (1, 3, 9):
        module = MarginMaximization(make(), C=0.1, competitors=k).train()
        t = step_time(module, x, y, args.repeats)
        print(f"margin, k={k}: {1e3 * t:7.1f} ms = {t / erm:5.2f} x ERM = {t / grad_pass:5.2f} x "
              f"input-gradient pass   (bound k + 2 = {k + 2})")


if __name__ == "__main__":
    main()
