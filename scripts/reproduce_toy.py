"""Crafting Label Noise sections 4.2-4.5 on the Gaussian toy: adversarial accuracy of a 4-layer
ReLU MLP trained to 100% training accuracy, against the poison distance r (in units of the
data radius sigma * sqrt(d)), for poisons labelled with the opposite class or a third class,
with and without spectral normalization, for d = 16 and 64, over several seeds. Prints the
table and writes a plot (pip install 'advlit[plots]').

    python scripts/reproduce_toy.py --seeds 3 --plot docs/toy_poison.png
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

from advlit.cli import build_cli

CONFIG = "configs/toy/gaussian_poison.yaml"
MU, SIGMA = 0.05, 0.02


def run(dim: int, r: float, label: str, spectral: bool, seed: int, poisons: int) -> tuple[float, float]:
    """(final training accuracy, L2 PGD test accuracy at eps = half the margin mu * sqrt(d))."""
    eps = 0.5 * MU * math.sqrt(dim)
    cli = build_cli(["fit", "--config", CONFIG, f"--seed_everything={seed}",
                     f"--data.init_args.dim={dim}", f"--data.init_args.seed={seed}",
                     f"--data.init_args.poison_distance={r}", f"--data.init_args.poison_label={label}",
                     f"--data.init_args.poisons_per_class={poisons}",
                     f"--model.init_args.model.init_args.input_shape=[1, 1, {dim}]",
                     f"--model.init_args.model.init_args.spectral_norm={spectral}",
                     f"--trainer.callbacks.init_args.eps_grid={{l2: [{eps}]}}"])
    train_acc = float(cli.trainer.callback_metrics["train/acc"])
    cli.trainer.test(cli.model, cli.datamodule, verbose=False)
    return train_acc, float(cli.trainer.callback_metrics[f"test/robust_acc/pgd_l2/eps={eps:g}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--radii", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0, 3.0],
                        help="poison distance in units of sigma * sqrt(d)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--poisons", type=int, default=10, help="poisons per class")
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    settings = [("opposite", False), ("third", False), ("opposite", True)]
    results: dict[tuple, tuple[float, float]] = {}
    for dim in args.dims:
        scale = SIGMA * math.sqrt(dim)
        clean = [run(dim, 0.0, "opposite", False, s, 0)[1] for s in range(args.seeds)]
        results[(dim, "no poison", None)] = (statistics.mean(clean), statistics.pstdev(clean))
        for label, spectral in settings:
            for r in args.radii:
                runs = [run(dim, r * scale, label, spectral, s, args.poisons) for s in range(args.seeds)]
                accs = [acc for _, acc in runs]
                name = label + (" + spectral norm" if spectral else "")
                results[(dim, name, r)] = (statistics.mean(accs), statistics.pstdev(accs))
                print(f"d={dim} {name} r={r:g}: adversarial accuracy {results[(dim, name, r)][0]:.3f}, "
                      f"training accuracy {min(t for t, _ in runs):.4f} (lowest seed)", flush=True)
    print(f"\nadversarial accuracy (L2 PGD-20, eps = mu sqrt(d) / 2), mean +- std over {args.seeds} seeds")
    print(f"{'d':>4} {'poison label':<28}" + "".join(f"{'r=' + format(r, 'g'):>14}" for r in args.radii))
    for dim in args.dims:
        mean, std = results[(dim, "no poison", None)]
        print(f"{dim:>4} {'no poison':<28}{mean:>8.3f} +-{std:.3f}")
        for label, spectral in settings:
            name = label + (" + spectral norm" if spectral else "")
            cells = "".join(f"{results[(dim, name, r)][0]:>8.3f} +-{results[(dim, name, r)][1]:.3f}"
                            for r in args.radii)
            print(f"{dim:>4} {name:<28}{cells}")
    if args.plot:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(args.dims), figsize=(5 * len(args.dims), 3.5), squeeze=False)
        for ax, dim in zip(axes[0], args.dims):
            for label, spectral in settings:
                name = label + (" + spectral norm" if spectral else "")
                means = [results[(dim, name, r)][0] for r in args.radii]
                stds = [results[(dim, name, r)][1] for r in args.radii]
                ax.errorbar(args.radii, means, yerr=stds, marker="o", capsize=3, label=name)
            ax.axhline(results[(dim, "no poison", None)][0], color="grey", ls="--", label="no poison")
            ax.set(title=f"d = {dim}", xlabel="poison distance r / (sigma sqrt(d))",
                   ylabel="adversarial accuracy", ylim=(0, 1.02))
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "offline")
    main()
