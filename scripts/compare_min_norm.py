"""Min-norm attacks at equal gradient budgets (in the manner of AttackBench, Cinà et al.
2025): per norm and budget (input gradients per image), advlit's min-norm attacks and the
installed peers' on the same model and its correctly classified test images. Prints every
attack's success rate, mean norm over the points it broke and measured gradients per image
(the engine's counter), then advlit's best against the best peer: success rates, mean norm
over the points both broke, and the ratio (< 1: advlit's perturbations are smaller).

A budget B gives PDGD/PDPGD, FMN, DDN, Foolbox's FMN and DDN B steps, advlit's FAB-T B / 3 steps
towards each of 3 classes, and torchattacks' FAB B / 10 steps (each FAB step takes the input
gradient of all 10 logits). The best attack of a side is
the one with the highest success rate, then the smallest mean norm on the points every attack
of the row broke. ``--plot PATH`` draws, per model and norm, each attack's median radius over
the correctly classified points (unbroken points count as infinite) against its measured
gradients per image, one point per budget: AttackBench's norm-vs-budget curve.

    pip install --no-deps torchattacks foolbox eagerpy GitPython gitdb smmap   # peers; never dependencies
    python scripts/bench_eval.py --export --models erm pgd_at   # trains (once) and saves the MNIST zoo
    python scripts/compare_min_norm.py --models logs/bench_zoo/erm.ts logs/bench_zoo/pgd_at.ts \\
        --samples 1000 --budgets 100 200 1000 [--plot min_norm.png]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

from advlit.atomic import atomic_write
from advlit.attacks import DDN, FABT, FMN, PDGD, PDPGD, FoolboxMinNorm, TorchattacksMinNorm
from advlit.data import MNISTDataModule
from advlit.data.root import data_root
from advlit.evaluation import AttackSuite
from advlit.models import Pretrained

FOOLBOX_FMN = {"linf": "LInfFMNAttack", "l2": "L2FMNAttack", "l1": "L1FMNAttack", "l0": "L0FMNAttack"}


def ours(norm: str, budget: int) -> dict:
    attacks = {f"PDPGD-{norm}": PDPGD(norm=norm, steps=budget)}
    if norm in FMN.norms:
        attacks[f"FMN-{norm}"] = FMN(norm=norm, steps=budget)
    if norm in FABT.norms:  # FAB-T towards the 3 most likely other classes, budget / 3 steps each
        attacks[f"FABT-{norm}"] = FABT(norm=norm, steps=max(1, budget // 3), target_classes=3)
    if norm == "l2":
        attacks["PDGD-l2"] = PDGD(steps=budget)
        attacks["DDN-l2"] = DDN(steps=budget)
    return attacks


def peers(norm: str, budget: int) -> dict:
    attacks = {}
    if importlib.util.find_spec("foolbox"):
        attacks[f"foolbox FMN-{norm}"] = FoolboxMinNorm(name=FOOLBOX_FMN[norm], norm=norm,
                                                        options={"steps": budget})
        if norm == "l2":
            attacks["foolbox DDN"] = FoolboxMinNorm(name="DDNAttack", norm="l2", options={"steps": budget})
    if importlib.util.find_spec("torchattacks") and norm in ("linf", "l2"):
        attacks[f"torchattacks FAB-{norm}"] = TorchattacksMinNorm(
            name="FAB", norm=norm, options={"norm": {"linf": "Linf", "l2": "L2"}[norm], "eps": 1e6,
                                            "steps": max(1, budget // 10), "n_classes": 10})
    return attacks


def best(names: list[str], result, common: torch.Tensor) -> str:
    """Highest success rate, then smallest mean norm on ``common``."""
    return min(names, key=lambda n: (-result.norm_statistics(n)["success_rate"],
                                     result.radius[n][common].double().mean().item()))


def compare(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str,
            budget: int) -> dict[str, tuple[float, float]]:
    """Prints the row; returns attack -> (gradients per image, median radius)."""
    mine, theirs = ours(norm, budget), peers(norm, budget)
    result = AttackSuite({**mine, **theirs}, checks=False).run(model, x, y, index=torch.arange(len(y)))
    curve = {n: (result.backward[n] / len(y), result.radius[n].median().item()) for n in (*mine, *theirs)}
    for name in (*mine, *theirs):
        stats = result.norm_statistics(name)
        mean = stats.get("mean_norm", float("nan"))
        print(f"  {norm:<5}{budget:>6}  {name:<22}{stats['success_rate']:>8.3f}{mean:>11.4f}"
              f"{result.backward[name] / len(y):>10.0f}{result.seconds[name]:>8.1f}", flush=True)
    if not theirs:
        return curve
    broken = [result.radius[n].isfinite() & (result.radius[n] > 0) for n in (*mine, *theirs)]
    common = torch.stack(broken).all(0)
    a, b = best(list(mine), result, common), best(list(theirs), result, common)
    ra, rb = result.radius[a][common].double().mean().item(), result.radius[b][common].double().mean().item()
    print(f"  {norm:<5}{budget:>6}  best: {a} {result.norm_statistics(a)['success_rate']:.3f} vs {b} "
          f"{result.norm_statistics(b)['success_rate']:.3f}; mean norm on {int(common.sum())} common points "
          f"{ra:.4f} vs {rb:.4f}, ratio {ra / rb:.3f}", flush=True)
    return curve


def plot(curves: dict[tuple[str, str], dict[str, list[tuple[float, float]]]], path: str) -> None:
    """One panel per (model, norm): median radius against gradients per image, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    for ax, ((model, norm), attacks) in zip(axes[0], curves.items()):
        for name, points in attacks.items():
            ax.plot(*zip(*sorted(points)), marker="o", label=name)
        ax.set(xscale="log", xlabel="gradients per image", ylabel=f"median {norm} radius",
               title=f"{Path(model).stem}, {norm}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True,
                        help="TorchScript files ([0, 1] images to logits)")
    parser.add_argument("--root", default=str(data_root()))
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 1000])
    parser.add_argument("--norms", nargs="+", default=["linf", "l2", "l1"], choices=tuple(FOOLBOX_FMN))
    parser.add_argument("--plot", default=None, help="save the norm-vs-budget curves here (needs matplotlib)")
    args = parser.parse_args()
    curves = {}
    x, y = MNISTDataModule(root=args.root).split_tensors("test", args.samples)
    for path in args.models:
        model = Pretrained(path).eval()
        with torch.no_grad():
            keep = model(x).argmax(1) == y
        print(f"{path}: {int(keep.sum())} correctly classified of the first {args.samples} MNIST test images")
        print(f"  {'norm':<5}{'budget':>6}  {'attack':<22}{'success':>8}{'mean norm':>11}"
              f"{'grads/img':>10}{'s':>8}")
        for norm in args.norms:
            curve = curves.setdefault((path, norm), {})
            for budget in args.budgets:
                for name, point in compare(model, x[keep], y[keep], norm, budget).items():
                    curve.setdefault(name.replace(f"-{norm}", ""), []).append(point)
    if args.plot:
        plot(curves, args.plot)


if __name__ == "__main__":
    main()
