"""Reproduce Matyasko's thesis Table 3.1(B), LeNet-5 on MNIST: test error (%), error under
FGSM Linf 0.2 (%) and rho_adv under DeepFool-L2 (50 iterations, step clip 0.5), for ERM,
FGSM adversarial training, VAT and deep margin maximization (l1: C = 0.01, l2: C = 0.1), for
the model after the last epoch. README's table (VAT left out, about 90 CPU minutes):

    python scripts/reproduce_table31b.py --epochs 8 --seeds 2 \
        --only lenet_margin_l1 lenet_margin_l2 lenet_fgsm_at lenet_erm
"""

from __future__ import annotations

import argparse
import statistics

from advlit.cli import build_cli

PAPER = {  # test error %, FGSM error %, rho_adv
    "lenet_erm": (0.72, 72.1, 0.154),
    "lenet_fgsm_at": (0.73, 4.95, 0.200),
    "lenet_vat": (None, None, None),
    "lenet_margin_l1": (0.64, 20.5, 0.222),
    "lenet_margin_l2": (0.62, 28.3, 0.217),
}
QUIET = ["--trainer.logger=false", "--trainer.enable_progress_bar=false",
         "--trainer.enable_model_summary=false"]


def run(name: str, epochs: int, seed: int) -> tuple[float, float, float]:
    cli = build_cli(["fit", "--config", f"configs/mnist/{name}.yaml", f"--seed_everything={seed}",
                     f"--trainer.max_epochs={epochs}", *QUIET])
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    m = cli.trainer.callback_metrics
    return (100 * (1 - float(m["test/acc"])), 100 * (1 - float(m["test/robust_acc/fgsm/eps=0.2"])),
            float(m["test/rho_adv/deepfool"]))


def fmt(values: list[float], digits: int) -> str:
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=list(PAPER))
    args = parser.parse_args()
    rows = {}
    for name in args.only:
        rows[name] = []
        for seed in range(args.seeds):
            rows[name].append(run(name, args.epochs, seed))
            print(f"{name} seed {seed}: " + " / ".join(f"{v:.3f}" for v in rows[name][-1]), flush=True)
    print(f"\nLeNet-5, MNIST, {args.epochs} epochs, {args.seeds} seeds (mean ± std); paper in brackets")
    print(f"{'model':<18}{'test error %':>22}{'FGSM 0.2 error %':>26}{'rho_adv DeepFool':>28}")
    for name, results in rows.items():
        paper = PAPER[name]
        cells = []
        for i, digits in enumerate((2, 1, 3)):
            ref = f" [{paper[i]}]" if paper[i] is not None else " [-]"
            cells.append(fmt([r[i] for r in results], digits) + ref)
        print(f"{name:<18}{cells[0]:>22}{cells[1]:>26}{cells[2]:>28}")


if __name__ == "__main__":
    main()
