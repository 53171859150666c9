"""Evaluation throughput (images/s per attack) and the wall time of ``advlit test`` with 1
and 2 processes (CPU, DDP/gloo) on the same checkpoint.

    python scripts/bench_eval.py --config configs/quickstart.yaml \
        --ckpt logs/quickstart/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch
from checkpoint_data import add_checkpoint_arguments, load_model_and_test_data

from advlit.attacks import FGSM, PDGD, PDPGD, PGD, CarliniWagnerL2, DeepFool

SUITE = {
    "fgsm": FGSM(eps=0.1),
    "pgd20": PGD(eps=0.1, steps=20),
    "deepfool_l2": DeepFool(norm="l2"),
    "cw_l2": CarliniWagnerL2(steps=100, binary_search_steps=5),
    "pdgd_l2": PDGD(steps=100),
    "pdpgd_linf": PDPGD(norm="linf", steps=100),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_checkpoint_arguments(parser, samples=256)
    args = parser.parse_args()

    model, x, y = load_model_and_test_data(args)
    print(f"{args.config}: {len(y)} images, {torch.get_num_threads()} threads")
    for name, attack in SUITE.items():
        start = time.perf_counter()
        attack(model, x, y)
        elapsed = time.perf_counter() - start
        print(f"  {name:<12} {len(y) / elapsed:9.1f} images/s")

    base = [sys.executable, "-m", "advlit.cli", "test", "--config", args.config,
            "--ckpt_path", args.ckpt, "--trainer.logger=false", "--trainer.accelerator=cpu"]
    walls = {}
    for devices in (1, 2):
        extra = ["--trainer.devices=2", "--trainer.strategy=ddp"] if devices == 2 else ["--trainer.devices=1"]
        start = time.perf_counter()
        subprocess.run(base + extra, check=True, capture_output=True)
        walls[devices] = time.perf_counter() - start
        print(f"advlit test with {devices} process(es): {walls[devices]:.1f} s wall")
    print(f"speed-up 1 -> 2 processes: {walls[1] / walls[2]:.2f}x")


if __name__ == "__main__":
    main()
