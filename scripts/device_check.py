"""advlit on one accelerator (run by ``scripts/device_check.sh``; ``--smoke`` for a CPU check).

1. PGD-AT epoch time of ``configs/mnist/pgd_at.yaml`` (C&W CNN, PGD-10) in fp32, bf16-mixed,
   bf16 + channels_last and bf16 + channels_last + torch.compile (steady-state epoch: the
   second one, after compilation).
2. Standard-suite evaluation speed (images/s) against the AutoAttack reference on the fp32
   model of part 1, same images, same device, both robust accuracies.
3. The speedrun (``configs/mnist/speedrun.yaml``): training minutes until the standard suite
   (first ``--eval-images`` test images, evaluated after every epoch, not timed) reaches
   88.5% (Madry parity) and 92.8% (TRADES parity).
"""

from __future__ import annotations

import argparse
import time

import torch
from lightning.pytorch import Callback

from advlit.attacks.peers import autoattack_robust
from advlit.cli import build_cli
from advlit.data.root import data_root
from advlit.evaluation import standard_suite

TARGETS = (0.885, 0.928)


class EpochClock(Callback):
    """Training seconds per epoch; with ``evaluate`` (not timed) a function run after each epoch."""

    def __init__(self, evaluate=None) -> None:
        self.seconds, self.results, self.evaluate = [], [], evaluate

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self.start)
        if self.evaluate is not None:
            self.results.append(self.evaluate(pl_module.model))


def fit(config: str, args, clock: EpochClock, *overrides: str):
    cli = build_cli(["--config", config, f"--data.init_args.root={args.root}", "--trainer.logger=false",
                     "--trainer.limit_val_batches=0", "--trainer.enable_checkpointing=false",
                     "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false",
                     "--trainer.enable_model_summary=false", f"--trainer.accelerator={args.accelerator}",
                     *overrides], run=False)
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, cli.datamodule)
    return cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(data_root()))
    parser.add_argument("--smoke", action="store_true", help="a few batches of everything (CPU, < 2 min)")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--eval-images", type=int, default=1000)
    parser.add_argument("--parts", nargs="*", default=["epoch", "eval", "speedrun"])
    args = parser.parse_args()
    limit = ["--trainer.limit_train_batches=1", "--data.init_args.batch_size=16"] if args.smoke else []
    images = 16 if args.smoke else args.eval_images
    backend = "aot_eager" if args.smoke else "true"  # inductor's C++ build alone is a minute on CPU
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device check on {device}, torch {torch.__version__}", flush=True)

    model = None
    if "epoch" in args.parts:
        variants = {"fp32": [], "bf16": ["--trainer.precision=bf16-mixed"],
                    "bf16+channels_last": ["--trainer.precision=bf16-mixed", "--model.init_args.channels_last=true"],
                    "bf16+channels_last+compile": ["--trainer.precision=bf16-mixed",
                                                   "--model.init_args.channels_last=true",
                                                   f"--model.init_args.compile={backend}"]}
        for name, options in variants.items():
            clock = EpochClock()
            start = time.perf_counter()
            try:
                cli = fit("configs/mnist/pgd_at.yaml", args, clock, "--trainer.max_epochs=2", *limit, *options)
            except Exception as err:  # report and go on: one failing variant must not hide the rest
                print(f"pgd_at epoch {name:<28} failed: {type(err).__name__}: {err}", flush=True)
                continue
            print(f"pgd_at epoch {name:<28} {clock.seconds[-1]:7.1f} s  (first epoch {clock.seconds[0]:.1f} s,"
                  f" total {time.perf_counter() - start:.0f} s)", flush=True)
            if name == "fp32":
                model, data = cli.model.model.eval(), cli.datamodule

    if "eval" in args.parts and model is not None:
        dev = next(model.parameters()).device
        x, y = (t.to(dev) for t in data.split_tensors("test", images))
        timings = {}
        for name, run in {"advlit standard": lambda: standard_suite(norm="linf", eps=0.3).run(
                              model, x, y, index=torch.arange(len(y), device=dev)).robust,
                          "AutoAttack reference": lambda: autoattack_robust(model, x, y, eps=0.3)}.items():
            try:
                start = time.perf_counter()
                robust = run()
                timings[name] = time.perf_counter() - start
                print(f"eval {name:<22} robust {robust.float().mean().item():.4f}  "
                      f"{len(y) / timings[name]:8.1f} images/s", flush=True)
            except ImportError as err:
                print(f"eval {name} skipped: {err}")
        if len(timings) == 2:
            print(f"eval time ratio advlit/AutoAttack: "
                  f"{timings['advlit standard'] / timings['AutoAttack reference']:.2f}")

    if "speedrun" in args.parts:
        def robust_accuracy(net):
            net.eval()
            dev = next(net.parameters()).device
            x, y = (t.to(dev) for t in test_data.split_tensors("test", images))
            result = standard_suite(norm="linf", eps=0.3).run(net, x, y, index=torch.arange(len(y), device=dev))
            net.train()
            return result.robust_accuracy

        from advlit.data import MNISTDataModule
        test_data = MNISTDataModule(root=args.root)
        clock = EpochClock(robust_accuracy)
        fit("configs/mnist/speedrun.yaml", args, clock, *limit, *(["--trainer.max_epochs=2"] if args.smoke else []))
        elapsed = 0.0
        for epoch, (seconds, robust) in enumerate(zip(clock.seconds, clock.results)):
            elapsed += seconds
            print(f"speedrun epoch {epoch + 1:>2}: {elapsed / 60:6.2f} train minutes, standard-suite robust "
                  f"{robust:.4f} on {images} images", flush=True)
        for target in TARGETS:
            reached = [sum(clock.seconds[: i + 1]) for i, r in enumerate(clock.results) if r >= target]
            print(f"speedrun time to {target:.1%}: "
                  + (f"{reached[0] / 60:.2f} minutes" if reached else f"not reached in {len(clock.results)} epochs"))


if __name__ == "__main__":
    main()
