"""Matyasko's thesis Table 4.1, LeNet-5 on MNIST: robustness rho_adv = mean ||r||_2 / ||x||_2
(over correctly classified points that the attack breaks) under DeepFool (50 iterations, step
clip 0.5), C&W-L2 and the high-confidence attack (step clip 0.1), on the first 1000 test
images, for the undefended, FGSM-AT, margin (l2) and adversary-critic checkpoints trained by
their configs; printed beside the thesis's numbers.

    advlit fit --config configs/mnist/critic_lenet.yaml   (and lenet_{erm,fgsm_at,margin_l2})
    python scripts/reproduce_table41.py --samples 1000 [--models critic_lenet]
"""

from __future__ import annotations

import argparse

import torch

from advlit.attacks import CarliniWagnerL2, DeepFool, HighConfidenceAttack
from advlit.evaluation import min_norm_statistics
from advlit.runs import load_run

PAPER = {  # rho_adv under DeepFool, C&W, high-confidence attack; test error %
    "no defense": ("lenet_erm", (0.157, 0.148, 0.207)),
    "FGSM AT": ("lenet_fgsm_at", (0.215, 0.191, 0.286)),
    "margin (l2)": ("lenet_margin_l2", (0.248, 0.225, 0.470)),
    "adversary critic": ("critic_lenet", (0.288, 0.278, 0.590)),
}
ATTACKS = {"DeepFool": DeepFool(norm="l2", steps=50, step_clip=0.5),
           "C&W": CarliniWagnerL2(),
           "high-confidence": HighConfidenceAttack(steps=50, step_clip=0.1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--models", nargs="+", choices=[c for c, _ in PAPER.values()],
                        default=[c for c, _ in PAPER.values()], help="rows to compute (config names)")
    args = parser.parse_args()
    print(f"{'model':<18}{'test err %':>11}" + "".join(f"{name:>24}" for name in ATTACKS))
    for label, (config, paper) in PAPER.items():
        if config not in args.models:
            continue
        run = load_run(f"configs/mnist/{config}.yaml", f"logs/mnist/{config}/checkpoints")
        model, (x, y) = run.module, run.test_tensors()
        with torch.no_grad():
            error = 100 * (model(x).argmax(1) != y).float().mean().item()
        x, y = x[: args.samples], y[: args.samples]
        ours = [min_norm_statistics(attack, model, x, y).get("rho_adv", float("nan"))
                for attack in ATTACKS.values()]
        cells = "".join(f"{o:>13.3f} (paper {p:.3f})" for o, p in zip(ours, paper))
        print(f"{label:<18}{error:>11.2f}{cells}", flush=True)


if __name__ == "__main__":
    main()
