"""advlit's APGD-CE against the AutoAttack reference's (``pyautoattack``), one attack side by
side on the same MNIST images and TorchScript models: robust accuracy and seconds, with PGD of
the same budget beside them. For L1 this checks advlit's "Mind the box" L1-APGD.

    pip install --no-deps pyautoattack     # the reference; never a dependency of advlit
    python scripts/bench_eval.py --export --models erm pgd_at
    python scripts/compare_apgd.py --norm l1 --eps 5 10 --models logs/bench_zoo/erm.ts logs/bench_zoo/pgd_at.ts
"""

from __future__ import annotations

import argparse
import time

import torch

from advlit.attacks import APGD, PGD
from advlit.attacks.peers import AUTOATTACK_NORMS
from advlit.data import MNISTDataModule
from advlit.data.root import data_root


def robust(model, x_adv, y) -> float:
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="TorchScript files")
    parser.add_argument("--eps", nargs="+", type=float, required=True, help="one per model")
    parser.add_argument("--norm", choices=("linf", "l2", "l1"), default="l1")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--root", default=str(data_root()))
    args = parser.parse_args()
    from pyautoattack.autopgd_base import APGDAttack

    x, y = MNISTDataModule(root=args.root).split_tensors("test", args.samples)
    index = torch.arange(len(y))
    print(f"{args.samples} MNIST test images, {args.norm}, {args.steps} steps, 1 restart")
    print(f"{'model':<28}{'eps':>6} | {'advlit APGD':>11}{'s':>6} | {'AA APGD':>8}{'s':>6} | {'advlit PGD':>10}{'s':>6}")
    for path, eps in zip(args.models, args.eps, strict=True):
        model = torch.jit.load(path).eval()
        row = []
        for attack in (APGD(norm=args.norm, eps=eps, steps=args.steps),
                       APGDAttack(model, norm=AUTOATTACK_NORMS[args.norm], eps=eps,
                                  n_iter=args.steps, n_restarts=1, loss="ce", device="cpu", seed=0),
                       PGD(norm=args.norm, eps=eps, steps=args.steps)):
            start = time.perf_counter()
            x_adv = attack.perturb(x, y) if isinstance(attack, APGDAttack) else attack(model, x, y, index=index)
            row.append((robust(model, x_adv, y), time.perf_counter() - start))
        (ours, t1), (ref, t2), (pgd, t3) = row
        print(f"{path:<28}{eps:>6g} | {ours:>11.3f}{t1:>6.0f} | {ref:>8.3f}{t2:>6.0f} | {pgd:>10.3f}{t3:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
