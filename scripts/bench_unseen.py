"""advlit's ``standard`` suite against AutoAttack on a model trained outside advlit, the way a
user would: a plain BatchNorm CNN (conv 32 - conv 64 - 128 - 10), Adam, 2 epochs on the first
20000 MNIST training images, a plain torch loop (no advlit defense, no Lightning). Prints robust
accuracy, seconds and the points only one suite broke, on the first ``--samples`` test images.

    pip install --no-deps pyautoattack
    python scripts/bench_unseen.py --samples 1000 --eps 0.1
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.peers import autoattack_robust
from advlit.data import MNISTDataModule
from advlit.evaluation import standard_suite


def plain_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def train(data: MNISTDataModule, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    x, y = data.split_tensors("train", 20000)
    model = plain_cnn()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(2):
        for batch in torch.randperm(len(y)).split(128):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="the training seed (another seed, another model)")
    args = parser.parse_args()
    data = MNISTDataModule()
    model = train(data, args.seed)
    x, y = data.split_tensors("test", args.samples)
    start = time.perf_counter()
    result = standard_suite(norm="linf", eps=args.eps, batch_size=250).run(model, x, y)
    ours_time = time.perf_counter() - start
    start = time.perf_counter()
    aa = autoattack_robust(model, x, y, eps=args.eps, batch_size=250)
    aa_time = time.perf_counter() - start
    print(f"clean {result.clean_accuracy:.3f} | advlit {result.robust_accuracy:.3f} ({ours_time:.0f} s) | "
          f"AutoAttack {aa.float().mean().item():.3f} ({aa_time:.0f} s) | only advlit broke "
          f"{int((~result.robust & aa).sum())} | only AutoAttack broke {int((result.robust & ~aa).sum())} | "
          f"time ratio {ours_time / aa_time:.2f}")


if __name__ == "__main__":
    main()
