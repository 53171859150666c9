"""advlit PGD against torchattacks' PGD on the same trained model, data and budget:
robust accuracy (mean over seeds) and time per attack step.

    pip install --no-deps torchattacks      # its torchvision requirement would replace torch
    python scripts/compare_torchattacks.py --config configs/quickstart.yaml \
        --ckpt logs/quickstart/checkpoints/last.ckpt --eps 0.2 --steps 20 --alpha 0.02
"""

from __future__ import annotations

import argparse
import time

import torch
from checkpoint_data import add_checkpoint_arguments, load_model_and_test_data

from advlit.attacks import PGD


def robust_accuracy(attack_fn, model, x, y, chunk: int) -> tuple[float, float]:
    correct, elapsed = 0, 0.0
    for xs, ys in zip(x.split(chunk), y.split(chunk)):
        start = time.perf_counter()
        x_adv = attack_fn(xs, ys)
        elapsed += time.perf_counter() - start
        with torch.no_grad():
            correct += (model(x_adv).argmax(1) == ys).sum().item()
    return correct / len(y), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_checkpoint_arguments(parser, samples=10000)
    parser.add_argument("--eps", type=float, default=0.2)
    parser.add_argument("--alpha", type=float, default=0.02)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args()

    import torchattacks

    model, x, y = load_model_and_test_data(args)

    ours = PGD(norm="linf", eps=args.eps, steps=args.steps, step_size=args.alpha)
    theirs = torchattacks.PGD(model, eps=args.eps, alpha=args.alpha, steps=args.steps,
                              random_start=True)
    rows = {"advlit": [], "torchattacks": []}
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        rows["advlit"].append(robust_accuracy(lambda a, b: ours(model, a, b), model, x, y, args.chunk))
        torch.manual_seed(seed)
        rows["torchattacks"].append(robust_accuracy(theirs, model, x, y, args.chunk))

    with torch.no_grad():
        clean = sum((model(a).argmax(1) == b).sum().item()
                    for a, b in zip(x.split(args.chunk), y.split(args.chunk))) / len(y)
    n_steps = args.steps * -(-len(y) // args.chunk)
    print(f"{args.config}: {len(y)} test images, clean accuracy {clean:.4f}, "
          f"Linf eps={args.eps} steps={args.steps} alpha={args.alpha}, {args.seeds} seeds")
    print(f"{'library':<14}{'robust acc (mean)':>18}{'min':>8}{'max':>8}{'ms/step':>10}")
    for name, results in rows.items():
        accs = [a for a, _ in results]
        ms = 1e3 * min(t for _, t in results) / n_steps
        print(f"{name:<14}{sum(accs) / len(accs):>18.4f}{min(accs):>8.4f}{max(accs):>8.4f}{ms:>10.2f}")


if __name__ == "__main__":
    main()
