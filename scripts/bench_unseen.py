"""advlit's ``standard`` suite against AutoAttack on a model trained outside advlit, the way a
user would: a plain BatchNorm CNN (conv 32 - conv 64 - 128 - 10), Adam, 2 epochs on the first
20000 MNIST training images, a plain torch loop (no advlit defense, no Lightning). Prints robust
accuracy, seconds and the points only one suite broke, on the first ``--samples`` test images.
``--noise SIGMA``: the CNN with Gaussian input noise at training and at every pass (a
randomized model), both suites' ``rand`` versions, judged by the deployed model's expected
accuracy over 20 single passes.

    pip install --no-deps pyautoattack
    python scripts/bench_unseen.py --samples 1000 --eps 0.1
    python scripts/bench_unseen.py --samples 500 --norm l2 --eps 1.5 --seed 1
    python scripts/bench_unseen.py --samples 200 --eps 0.1 --seed 1 --noise 0.3
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.peers import autoattack_adversarial, autoattack_robust
from advlit.data import MNISTDataModule
from advlit.evaluation import standard_suite
from advlit.evaluation.eot import deployed_accuracy
from advlit.models import NoisyInput


def plain_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def train(data: MNISTDataModule, seed: int, noise: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    x, y = data.split_tensors("train", 20000)
    model = NoisyInput(10, lambda _: plain_cnn(), sigma=noise) if noise else plain_cnn()
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
    parser.add_argument("--norm", choices=("linf", "l2", "l1"), default="linf")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="the training seed (another seed, another model)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="Gaussian input noise at every pass (a randomized model): the rand suites")
    args = parser.parse_args()
    data = MNISTDataModule()
    model = train(data, args.seed, args.noise)
    x, y = data.split_tensors("test", args.samples)
    version = "rand" if args.noise else "standard"
    start = time.perf_counter()
    result = standard_suite(norm=args.norm, eps=args.eps, version=version, batch_size=250).run(model, x, y)
    ours_time = time.perf_counter() - start
    start = time.perf_counter()
    if args.noise:
        x_adv = autoattack_adversarial(model, x, y, norm=args.norm, eps=args.eps, version="rand", batch_size=250)
        aa_time = time.perf_counter() - start
        with torch.random.fork_rng():  # the model's own noise, seeded
            torch.manual_seed(0)
            aa = deployed_accuracy(model, x_adv, y, 20, 250)
        print(f"deployed (20 passes): clean {result.clean_accuracy:.3f} | advlit {result.robust_accuracy:.3f} "
              f"({ours_time:.0f} s) | AutoAttack rand {aa.mean().item():.3f} ({aa_time:.0f} s) | "
              f"time ratio {ours_time / aa_time:.2f}")
        return
    aa = autoattack_robust(model, x, y, norm=args.norm, eps=args.eps, batch_size=250)
    aa_time = time.perf_counter() - start
    print(f"clean {result.clean_accuracy:.3f} | advlit {result.robust_accuracy:.3f} ({ours_time:.0f} s) | "
          f"AutoAttack {aa.float().mean().item():.3f} ({aa_time:.0f} s) | only advlit broke "
          f"{int((~result.robust & aa).sum())} | only AutoAttack broke {int((result.robust & ~aa).sum())} | "
          f"time ratio {ours_time / aa_time:.2f}")


if __name__ == "__main__":
    main()
