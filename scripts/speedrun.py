"""Time to robustness on MNIST Linf 0.3: train ``configs/mnist/speedrun.yaml``, time the
training alone, then evaluate the network with ``standard_suite(norm="linf", eps=0.3)`` on the
full test set (and, if installed, the AutoAttack reference on the first ``--reference`` images).

    python scripts/speedrun.py [--seed 0] [--export speedrun.pt]
    pip install --no-deps pyautoattack     # optional cross-check; never a dependency

The last line is ``speedrun: train_minutes=.. clean=.. robust=..``. ``--export`` saves the plain
network ([0, 1] images to logits, normalization inside) as TorchScript, for any other tool.
"""

from __future__ import annotations

import argparse
import time

from advlit.attacks.peers import autoattack_robust
from advlit.data.root import data_root
from advlit.evaluation import standard_suite
from advlit.runs import export_torchscript, quiet_cli


def train(config: str, seed: int, root: str, overrides: list[str]):
    """Build the config's trainer, model and data quietly and time ``fit``."""
    cli = quiet_cli(config, [f"--seed_everything={seed}", f"--data.init_args.root={root}", *overrides])
    start = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    return cli.model.model, cli.datamodule, (time.perf_counter() - start) / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/mnist/speedrun.yaml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=str(data_root()))
    parser.add_argument("--samples", type=int, default=10000, help="test images for the standard suite")
    parser.add_argument("--reference", type=int, default=1000, help="images for AutoAttack (0: skip)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per suite batch")
    parser.add_argument("--export", default=None, help="save the trained network as TorchScript here")
    parser.add_argument("overrides", nargs="*", help="extra config options, e.g. --trainer.max_epochs=1")
    args, extra = parser.parse_known_args()
    net, data, minutes = train(args.config, args.seed, args.root, args.overrides + extra)
    print(f"training: {minutes:.2f} minutes", flush=True)
    net.eval()
    device = next(net.parameters()).device
    x, y = (t.to(device) for t in data.split_tensors("test", args.samples))
    start = time.perf_counter()
    result = standard_suite(norm="linf", eps=0.3, batch_size=args.batch_size).run(net, x, y)
    print(result.table())
    print(f"standard suite: {len(y)} images in {time.perf_counter() - start:.0f} s", flush=True)
    if args.reference:
        try:
            n = min(args.reference, len(y))
            reference = autoattack_robust(net, x[:n], y[:n], eps=0.3).float().mean().item()
            ours = result.robust[:n].float().mean().item()
            print(f"first {n} images: standard suite {ours:.4f}, AutoAttack reference {reference:.4f}")
        except ImportError as err:
            print(f"AutoAttack cross-check skipped: {err}")
    if args.export:
        export_torchscript(net, args.export)
        print(f"exported TorchScript to {args.export}")
    print(f"speedrun: train_minutes={minutes:.1f} clean={result.clean_accuracy:.4f} "
          f"robust={result.robust_accuracy:.4f}")


if __name__ == "__main__":
    main()
