"""advlit PGD against torchattacks' and Foolbox's PGD (random start) on the same trained
model, data and budget, in Linf or L2: robust accuracy (mean over seeds) and time per step.

    pip install --no-deps torchattacks      # its torchvision requirement would replace torch
    pip install --no-deps foolbox eagerpy GitPython gitdb smmap   # optional, also compared
    python scripts/compare_torchattacks.py --config configs/quickstart.yaml \
        --ckpt logs/quickstart/checkpoints --eps 0.2 --steps 20 --alpha 0.02
    python scripts/compare_torchattacks.py --config configs/mnist/lenet_erm.yaml \
        --ckpt logs/mnist/lenet_erm/checkpoints --samples 1000 --norm l2 --eps 1.5 \
        --steps 20 --alpha 0.1875
"""

from __future__ import annotations

import argparse
import time

import torch

from advlit.attacks import PGD
from advlit.runs import add_run_arguments, load_run


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
    add_run_arguments(parser, samples=10000)
    parser.add_argument("--norm", choices=["linf", "l2"], default="linf")
    parser.add_argument("--eps", type=float, default=0.2)
    parser.add_argument("--alpha", type=float, default=0.02)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args()

    import torchattacks

    run = load_run(args.config, args.ckpt)
    model, (x, y) = run.module, run.test_tensors(args.samples)

    ours = PGD(norm=args.norm, eps=args.eps, steps=args.steps, step_size=args.alpha)
    peer = torchattacks.PGD if args.norm == "linf" else torchattacks.PGDL2
    theirs = peer(model, eps=args.eps, alpha=args.alpha, steps=args.steps, random_start=True)
    attacks = {"advlit": lambda a, b: ours(model, a, b), "torchattacks": theirs}
    try:
        import foolbox

        fmodel = foolbox.PyTorchModel(model, bounds=(0, 1))
        fb = (foolbox.attacks.LinfPGD if args.norm == "linf" else foolbox.attacks.L2PGD)(
            abs_stepsize=args.alpha, steps=args.steps, random_start=True)
        attacks["foolbox"] = lambda a, b: fb(fmodel, a, b, epsilons=args.eps)[1]
    except ImportError:
        print("foolbox not installed: compared with torchattacks only")
    rows = {name: [] for name in attacks}
    for seed in range(args.seeds):
        for name, attack in attacks.items():
            torch.manual_seed(seed)  # without an index, advlit draws its per-sample keys from it
            rows[name].append(robust_accuracy(attack, model, x, y, args.chunk))

    with torch.no_grad():
        clean = sum((model(a).argmax(1) == b).sum().item()
                    for a, b in zip(x.split(args.chunk), y.split(args.chunk))) / len(y)
    n_steps = args.steps * -(-len(y) // args.chunk)
    print(f"{args.config}: {len(y)} test images, clean accuracy {clean:.4f}, "
          f"{args.norm} eps={args.eps} steps={args.steps} alpha={args.alpha}, {args.seeds} seeds")
    print(f"{'library':<14}{'robust acc (mean)':>18}{'min':>8}{'max':>8}{'ms/step':>10}")
    for name, results in rows.items():
        accs = [a for a, _ in results]
        ms = 1e3 * min(t for _, t in results) / n_steps
        print(f"{name:<14}{sum(accs) / len(accs):>18.4f}{min(accs):>8.4f}{max(accs):>8.4f}{ms:>10.2f}")


if __name__ == "__main__":
    main()
