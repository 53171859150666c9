"""advlit's min-norm attacks against torchattacks' (DeepFool, C&W, FAB) on the same trained
model and images: success rate and mean perturbation norm over the correctly classified
images. ``--matched`` gives PDGD/PDPGD the gradient evaluations of FAB: its per-step Jacobian
costs one gradient per class, so they get 10x its steps. (torchattacks' FAB keeps only
adversarial examples within its eps, so eps is set to 1e6; its L1 version fails, so L1 is not
compared.)

    pip install --no-deps torchattacks
    python scripts/compare_min_norm.py --config configs/quickstart.yaml \
        --ckpt logs/quickstart/checkpoints --samples 1000 --steps 100
"""

from __future__ import annotations

import argparse
import json

import torch

from advlit.attacks import PDGD, PDPGD, CarliniWagnerL2, DeepFool, TorchattacksMinNorm
from advlit.evaluation import AttackSuite
from advlit.runs import add_run_arguments, load_run


def evaluate(attack, model, x, y) -> tuple[float, float, float]:
    """(success rate, mean norm of successful ones, seconds) over correctly classified x, from
    the evaluation engine."""
    result = AttackSuite({"attack": attack}, checks=False).run(model, x, y)
    stats = result.norm_statistics("attack")
    return stats["success_rate"], stats.get("mean_norm", float("nan")), result.seconds["attack"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser, samples=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--matched", action="store_true",
                        help="give PDGD/PDPGD as many gradient evaluations as FAB: FAB computes the "
                             "input gradient of every logit at each step (10 for 10 classes); they "
                             "spend them on 2 runs of 5x FAB's steps, the second from uniform noise")
    parser.add_argument("--attacks", nargs="+", default=["DeepFool", "C&W", "PDGD", "PDPGD"])
    parser.add_argument("--pdgd", type=json.loads, default={},
                        help='PDGD settings as JSON over the others, e.g. {"steps": 1000}')
    parser.add_argument("--pdpgd", type=json.loads, default={}, help="PDPGD-Linf settings as JSON, likewise")
    args = parser.parse_args()
    run = load_run(args.config, args.ckpt)
    model, (x, y) = run.module, run.test_tensors(args.samples)
    with torch.no_grad():
        keep = model(x).argmax(1) == y
    x, y = x[keep], y[keep]
    s = args.steps
    pdgd, pdpgd = PDGD(steps=s), PDPGD(norm="linf", steps=s)
    if args.matched:
        pdgd = PDGD(steps=5 * s, restarts=2)
        pdpgd = PDPGD(norm="linf", steps=5 * s, restarts=2)
    pdgd, pdpgd = pdgd.replace(**args.pdgd), pdpgd.replace(**args.pdpgd)
    budget = lambda a: f"{a.restarts} x {a.steps}" if a.restarts > 1 else f"{a.steps}"  # noqa: E731
    peer = lambda name, our_norm, **options: TorchattacksMinNorm(name=name, norm=our_norm, options=options)  # noqa: E731
    pairs = [
        ("l2", "DeepFool", DeepFool(norm="l2", steps=50),
         "DeepFool", peer("DeepFool", "l2", steps=50, overshoot=0.02)),
        ("l2", f"C&W-L2 (1 x {s})", CarliniWagnerL2(steps=s, binary_search_steps=1, initial_const=1.0,
                                                    learning_rate=0.01, abort_early=False),
         f"CW (c=1, {s} steps)", peer("CW", "l2", c=1, kappa=0, steps=s, lr=0.01)),
        ("l2", f"PDGD-L2 ({budget(pdgd)})", pdgd,
         f"FAB-L2 ({s})", peer("FAB", "l2", norm="L2", eps=1e6, steps=s, n_classes=10)),
        ("linf", f"PDPGD-Linf ({budget(pdpgd)})", pdpgd,
         f"FAB-Linf ({s})", peer("FAB", "linf", norm="Linf", eps=1e6, steps=s, n_classes=10)),
    ]
    print(f"{args.config}: {len(y)} correctly classified of the first {args.samples} test images")
    print(f"{'norm':<6}{'advlit':<22}{'success':>8}{'mean norm':>11}{'s':>7}   "
          f"{'torchattacks':<22}{'success':>8}{'mean norm':>11}{'s':>7}   ratio")
    for norm, our_name, our_fn, their_name, their_fn in pairs:
        if our_name.split(" ")[0].split("-")[0] not in args.attacks:
            continue
        torch.manual_seed(0)
        a = evaluate(our_fn, model, x, y)
        torch.manual_seed(0)
        b = evaluate(their_fn, model, x, y)
        print(f"{norm:<6}{our_name:<22}{a[0]:>8.3f}{a[1]:>11.4f}{a[2]:>7.1f}   "
              f"{their_name:<22}{b[0]:>8.3f}{b[1]:>11.4f}{b[2]:>7.1f}   {a[1] / b[1]:.3f}")


if __name__ == "__main__":
    main()
