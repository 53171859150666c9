"""Cost of one advlit PGD step, relative to (a) one forward+backward pass of the model on the
same batch and (b) one step of a minimal hand-written PGD loop in plain torch.

    python scripts/bench_attacks.py [--model cwcnn|lenet] [--batch 128] [--steps 20]

Targets (issue #2): (a) <= 1.15, (b) <= 1.05. Times are medians over repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from advlit.attacks import PGD
from advlit.models import CWCNN, LeNet5
from advlit.runs import hand_written_pgd


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["cwcnn", "lenet"], default="cwcnn")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = (CWCNN() if args.model == "cwcnn" else LeNet5()).to(device).eval()
    x = torch.rand(args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    eps, steps = 0.3, args.steps
    attack = PGD(norm="linf", eps=eps, steps=steps)

    def forward_backward():
        xr = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(xr), y), xr)

    t_fb = median_time(forward_backward, args.repeats * 3)
    t_advlit = median_time(lambda: attack(model, x, y), args.repeats) / steps
    t_plain = median_time(lambda: hand_written_pgd(model, x, y, eps, attack.alpha, steps), args.repeats) / steps

    print(f"device={device} model={args.model} batch={args.batch} steps={steps} "
          f"threads={torch.get_num_threads()}")
    print(f"forward+backward           {1e3 * t_fb:8.2f} ms")
    print(f"plain-torch PGD step       {1e3 * t_plain:8.2f} ms")
    print(f"advlit PGD step            {1e3 * t_advlit:8.2f} ms")
    print(f"advlit step / fwd+bwd      {t_advlit / t_fb:8.3f}   (target <= 1.15)")
    print(f"advlit step / plain step   {t_advlit / t_plain:8.3f}   (target <= 1.05)")


if __name__ == "__main__":
    main()
