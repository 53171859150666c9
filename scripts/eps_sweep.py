"""Training-eps sweep (BIPARO report Figure 1): adversarially train one config at each eps of
a list (PGD step eps/4; eps 0 = natural training) and report test robust accuracy at one
fixed evaluation attack. Each run lives in its own folder under --out.

    python scripts/eps_sweep.py --config configs/cifar10/resnet20_pgd_linf.yaml \
        --eps 0 0.01 0.02 0.03 0.04 --metric "test/robust_acc/pgd20/eps=0.03"
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from advlit.cli import build_cli
from advlit.data.root import data_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/cifar10/resnet20_pgd_linf.yaml")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.0, 0.01, 0.02, 0.03, 0.04])
    parser.add_argument("--metric", default="test/robust_acc/pgd20/eps=0.03")
    parser.add_argument("--data-root", default=str(data_root()))
    parser.add_argument("--out", default="runs/eps_sweep")
    parser.add_argument("overrides", nargs="*", help="extra CLI arguments, e.g. --trainer.max_epochs=5")
    args = parser.parse_args()
    config, root = str(Path(args.config).resolve()), str(Path(args.data_root).resolve())
    rows = []
    for eps in args.eps:
        folder = Path(args.out) / f"eps={eps:g}"
        folder.mkdir(parents=True, exist_ok=True)
        train = (["--model.init_args.natural_ratio=1.0"] if eps == 0 else
                 [f"--model.init_args.attack.init_args.eps={eps}",
                  f"--model.init_args.attack.init_args.step_size={eps / 4}"])
        common = ["--config", config, f"--data.init_args.root={root}", *args.overrides]
        with contextlib.chdir(folder):
            build_cli(["fit", *common, *train])
            cli = build_cli(["test", *common, "--ckpt_path", "best"])
            metrics = cli.trainer.callback_metrics
            rows.append((eps, float(metrics["test/acc"]), float(metrics[args.metric])))
    print(f"{'train eps':>10}{'clean':>8}  {args.metric}")
    for eps, clean, robust in rows:
        print(f"{eps:>10g}{clean:>8.4f}  {robust:.4f}")


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "offline")
    main()
