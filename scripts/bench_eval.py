"""advlit's ``standard`` suite against the AutoAttack reference (``pyautoattack``), side by
side on the same MNIST images: robust accuracy, wall time and gradient evaluations per image.

Trains (once, cached under ``--zoo``) a benchmark zoo with advlit's own defenses and
Lightning's trainer: an ERM LeNet-5, a plain BatchNorm CNN, a plain and a PGD-AT MLP, a PGD-AT
BatchNorm CNN (Linf 0.3, eps warm-up), and gradient-masked models (a BatchNorm CNN trained
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
from lightning.pytorch import Trainer, seed_everything
from torch import nn

from advlit.attacks import FGSM, PGD
from advlit.attacks.peers import autoattack_adversarial, autoattack_robust
from advlit.data import MNISTDataModule
from advlit.data.root import data_root
from advlit.defenses import AdversarialTraining, RobustClassifier
from advlit.evaluation import standard_suite
from advlit.evaluation.eot import deployed_accuracy
from advlit.models import MLP, BatchNormCNN, InputQuantization, LeNet5, NoisyInput, ScrambledGradient

EPS = {"linf": {"erm": (0.05, 0.1), "robust": (0.2, 0.3)}, "l2": {"erm": (1.0, 1.5), "robust": (1.5, 2.0)},
       "l1": {"erm": (2.5, 5.0), "robust": (5.0, 10.0)}}


def train(module, data, epochs: int, seed: int = 0, warmup: tuple[float, ...] = ()) -> nn.Module:
    """Lightning's trainer for ``epochs`` epochs; with ``warmup`` the attack's eps takes those
    values in the first epochs (eps curriculum, so a small CNN learns at Linf 0.3)."""
    seed_everything(seed, verbose=False)
    final_eps = getattr(getattr(module, "attack", None), "eps", None)
    for epoch in range(epochs):
        if final_eps is not None:
            module.attack = module.attack.replace(eps=warmup[epoch] if epoch < len(warmup) else final_eps)
        trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, accelerator="cpu", limit_val_batches=0)
        trainer.fit(module, datamodule=data)
    return module.model.eval()


def zoo(root: str, cache: Path) -> dict[str, tuple[nn.Module, str]]:
    """name -> (trained model, "erm" or "robust", its key in ``EPS``); each network is trained
    once and cached."""
    cache.mkdir(parents=True, exist_ok=True)
    recipes = {  # architecture, defense, epochs, eps warm-up
        "erm": (LeNet5, lambda m: RobustClassifier(m), 1, ()),
        "pgd_at": (BatchNormCNN, lambda m: AdversarialTraining(m, PGD(eps=0.3, steps=10)), 4, (0.1, 0.2)),
        "fgsm_rs_bn": (BatchNormCNN, lambda m: AdversarialTraining(
            m, FGSM(eps=0.3, random_start=True)), 2, ()),
        "bn_erm": (BatchNormCNN, lambda m: RobustClassifier(m), 1, ()),
        "mlp_erm": (MLP, lambda m: RobustClassifier(m), 2, ()),
        "mlp_pgd_at": (MLP, lambda m: AdversarialTraining(m, PGD(eps=0.1, steps=10)), 3, ()),
        "noisy_lenet": (lambda: NoisyInput(10, LeNet5, sigma=0.3), lambda m: RobustClassifier(m), 2, ()),
    }
    nets = {}
    for name, (arch, defense, epochs, warmup) in recipes.items():
        path = cache / f"{name}.pt"
        net = arch()
        if path.exists():
            net.load_state_dict(torch.load(path, weights_only=True))
        else:
            start = time.perf_counter()
            train(defense(net), MNISTDataModule(root=root, batch_size=128), epochs, warmup=warmup)
            torch.save(net.state_dict(), path)
            print(f"trained {name} in {time.perf_counter() - start:.0f} s", flush=True)
        nets[name] = net.eval()
    return {
        "erm": (nets["erm"], "erm"),
        "bn_erm": (nets["bn_erm"], "erm"),
        "mlp_erm": (nets["mlp_erm"], "erm"),
        "mlp_pgd_at": (nets["mlp_pgd_at"], "erm"),
        "pgd_at": (nets["pgd_at"], "robust"),
        "fgsm_rs_bn": (nets["fgsm_rs_bn"], "robust"),
        "quantized_erm": (InputQuantization(nets["erm"]).eval(), "erm"),
        "scrambled_erm": (ScrambledGradient(nets["erm"], (1, 28, 28)).eval(), "erm"),
        "noisy_lenet": (nets["noisy_lenet"], "erm"),  # randomized: only with --version rand
    }


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
            traced = torch.jit.trace(models[name][0], torch.rand(2, 1, 28, 28))
            torch.jit.save(traced, str(Path(args.zoo) / f"{name}.ts"))
        return
    data = MNISTDataModule(root=args.root)
    x, y = data.split_tensors("test", args.samples)
    print(f"{args.samples} MNIST test images, {args.norm}, batches of {args.batch_size}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'model':<14}{'eps':>5}{'clean':>7} | {'advlit':>7}{'time s':>8}{'grads':>6} |"
          f" {'AA':>7}{'time s':>8} | {'only advlit':>11}{'only AA':>8}{'time x':>7}")
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
            grads = sum(result.backward.values()) / len(y)
            line = (f"{name:<14}{eps:>5g}{result.clean_accuracy:>7.3f} | {result.robust_accuracy:>7.3f}"
                    f"{ours_time:>8.1f}{grads:>6.0f} |")
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
                start = time.perf_counter()
                aa = autoattack_robust(model, x, y, norm=args.norm, eps=eps, batch_size=args.batch_size)
                aa_time = time.perf_counter() - start
                only_ours, only_aa = int((~result.robust & aa).sum()), int((result.robust & ~aa).sum())
                line += (f" {aa.float().mean().item():>7.3f}{aa_time:>8.1f} | {only_ours:>11}{only_aa:>8}"
                         f"{ours_time / aa_time:>7.2f}")
            print(line, flush=True)
            if args.verbose:
                print(result.table())

if __name__ == "__main__":
    main()
