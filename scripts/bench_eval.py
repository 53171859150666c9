"""advlit's ``standard`` suite against the AutoAttack reference (``pyautoattack``), side by
side on the same MNIST images: robust accuracy, wall time and gradient evaluations per image.

Trains (once, from ``configs/bench/*.yaml``, cached under ``--zoo``) a benchmark zoo with
advlit's own models, defenses and Lightning's trainer: an ERM LeNet-5, a plain BatchNorm CNN,
a plain and a PGD-AT MLP, a PGD-AT BatchNorm CNN (Linf 0.3, eps warm-up), and gradient-masked
models (a BatchNorm CNN trained
with FGSM from a random start, the ERM LeNet-5 behind input quantization, and the ERM LeNet-5
with its input gradients scrambled by a fixed sign mask). Every row is the same images for
both suites, run one after the other; "only advlit" / "only AA" count the points one suite
broke and the other left standing. Each model is evaluated at the two budgets of its kind in
``EPS`` (``--eps`` picks one of them).

    pip install --no-deps pyautoattack     # the reference; never a dependency of advlit
    python scripts/bench_eval.py --samples 1000 [--norm l2] [--models erm ...] [--eps 0.1 ...]
    python scripts/bench_eval.py --samples 200 --version rand --eps 0.1   # the randomized model
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from advlit.attacks.peers import autoattack_adversarial, autoattack_robust
from advlit.data import MNISTDataModule
from advlit.data.root import data_root
from advlit.evaluation import standard_suite
from advlit.evaluation.eot import deployed_accuracy
from advlit.evaluation.suite import CountingModel
from advlit.models import InputQuantization, ScrambledGradient
from advlit.runs import bench_network, export_torchscript

EPS = {"linf": {"erm": (0.05, 0.1), "robust": (0.2, 0.3)}, "l2": {"erm": (1.0, 1.5), "robust": (1.5, 2.0)},
       "l1": {"erm": (2.5, 5.0), "robust": (5.0, 10.0)}}


ZOO = ("erm", "bn_erm", "mlp_erm", "mlp_pgd_at", "pgd_at", "fgsm_rs_bn", "noisy_lenet")  # configs/bench


def zoo(root: str, cache: Path) -> dict[str, tuple[nn.Module, str]]:
    """name -> (trained network, its key in ``EPS``: "erm" or "robust"): each network from
    ``configs/bench/<name>.yaml``, trained once and cached (:func:`advlit.runs.bench_network`);
    the masked models wrap the ERM LeNet-5."""
    nets = {name: bench_network(name, root, cache) for name in ZOO}
    kinds = {name: "robust" if name in ("pgd_at", "fgsm_rs_bn") else "erm" for name in ZOO}
    models = {name: (nets[name], kinds[name]) for name in ZOO if name != "noisy_lenet"}
    models["quantized_erm"] = (InputQuantization(nets["erm"]).eval(), "erm")
    models["scrambled_erm"] = (ScrambledGradient(nets["erm"], (1, 28, 28)).eval(), "erm")
    models["noisy_lenet"] = (nets["noisy_lenet"], "erm")  # randomized: only with --version rand
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(data_root()))
    parser.add_argument("--zoo", default="logs/bench_zoo")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--norm", choices=tuple(EPS), default="linf")
    parser.add_argument("--version", choices=("standard", "rand"), default="standard",
                        help="rand: the randomized model (noisy_lenet), advlit's and AutoAttack's rand "
                             "suites, both judged by the deployed model's expected accuracy over 20 "
                             "single passes")
    parser.add_argument("--eps", type=float, nargs="*", default=None,
                        help="only these of each model's two budgets (EPS)")
    parser.add_argument("--batch-size", type=int, default=250,
                        help="images per batch for both suites (AutoAttack's default, 250)")
    parser.add_argument("--no-reference", action="store_true", help="skip the AutoAttack reference")
    parser.add_argument("--verbose", action="store_true",
                        help="print advlit's table (costs, flags) per model")
    parser.add_argument("--export", action="store_true",
                        help="only save the --models as TorchScript, <zoo>/<name>.ts "
                             "(for compare_min_norm.py)")
    args = parser.parse_args()

    models = zoo(args.root, Path(args.zoo))
    if args.export:
        for name in args.models or models:
            export_torchscript(models[name][0], Path(args.zoo) / f"{name}.ts")
        return
    data = MNISTDataModule(root=args.root)
    x, y = data.split_tensors("test", args.samples)
    print(f"{args.samples} MNIST test images, {args.norm}, batches of {args.batch_size}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'model':<14}{'eps':>5}{'clean':>7} | {'advlit':>7}{'time s':>8}{'grads':>6}{'fwds':>6} |"
          f" {'AA':>7}{'time s':>8}{'grads':>6}{'fwds':>6} | {'only advlit':>11}{'only AA':>8}{'time x':>7}")
    for name, (model, kind) in models.items():
        if (args.models and name not in args.models) or ((name == "noisy_lenet") != (args.version == "rand")):
            continue
        for eps in EPS[args.norm][kind]:
            if args.eps and eps not in args.eps:
                continue
            start = time.perf_counter()
            suite = standard_suite(norm=args.norm, eps=eps, version=args.version, batch_size=args.batch_size)
            result = suite.run(model, x, y)
            ours_time = time.perf_counter() - start
            grads, forwards = sum(result.backward.values()) / len(y), sum(result.forward.values()) / len(y)
            line = (f"{name:<14}{eps:>5g}{result.clean_accuracy:>7.3f} | {result.robust_accuracy:>7.3f}"
                    f"{ours_time:>8.1f}{grads:>6.0f}{forwards:>6.0f} |")
            if not args.no_reference and args.version == "rand":
                start = time.perf_counter()
                x_adv = autoattack_adversarial(model, x, y, norm=args.norm, eps=eps, version="rand",
                                               batch_size=args.batch_size)
                aa_time = time.perf_counter() - start
                with torch.random.fork_rng():  # the model's own noise, seeded: the same in every run
                    torch.manual_seed(0)
                    aa_deployed = deployed_accuracy(model, x_adv, y, 20, args.batch_size)
                line += (f" {aa_deployed.mean().item():>7.3f}{aa_time:>8.1f} | deployed (20 passes), "
                         f"clean {result.clean_accuracy:.3f}, averaged classifier "
                         f"{result.averaged_robust_accuracy:.3f}{ours_time / aa_time:>7.2f}")
            elif not args.no_reference:
                counted = CountingModel(model).eval()  # AutoAttack's passes, per image
                start = time.perf_counter()
                aa = autoattack_robust(counted, x, y, norm=args.norm, eps=eps, batch_size=args.batch_size)
                aa_time = time.perf_counter() - start
                aa_passes = f"{counted.backward_count / len(y):>6.0f}{counted.forward_count / len(y):>6.0f}"
                only_ours, only_aa = int((~result.robust & aa).sum()), int((result.robust & ~aa).sum())
                line += (f" {aa.float().mean().item():>7.3f}{aa_time:>8.1f}{aa_passes} | {only_ours:>11}"
                         f"{only_aa:>8}{ours_time / aa_time:>7.2f}")
            print(line, flush=True)
            if args.verbose:
                print(result.table())

if __name__ == "__main__":
    main()
