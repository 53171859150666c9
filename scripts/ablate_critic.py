"""Short adversary-critic ablation on MNIST (LeNet-5): each setting trains ``--steps`` batches
of plain cross-entropy, then ``--steps`` batches of the critic game (or more cross-entropy
for the ERM row), and reports clean accuracy and rho_adv under DeepFool (50 iterations,
clip 0.5) on the first ``--samples`` test images. Same seed, data order and budget per row.

    python scripts/ablate_critic.py --steps 300 --samples 300
"""

from __future__ import annotations

import argparse

import lightning as L
import torch

from advlit.attacks import DeepFool, HighConfidenceAttack
from advlit.data import MNISTDataModule
from advlit.data.root import data_root
from advlit.defenses import AdversaryCritic
from advlit.evaluation import min_norm_statistics
from advlit.models import Critic, LeNet5

SETTINGS = {  # label: AdversaryCritic overrides (the class defaults are the thesis's values)
    "ERM (no critic)": {"pretrain_epochs": 2},
    "thesis: lambda 0.1, rec 1e-2, grad 10": {},
    "rec 0": {"cycle_weight": 0.0},
    "rec 0, grad 0.1 (config)": {"cycle_weight": 0.0, "gradient_penalty": 0.1},
    "lambda 0.5, rec 1e-2, grad 0.1": {"adv_weight": 0.5, "gradient_penalty": 0.1},
    "lambda 0.5, rec 0, grad 0.1": {"adv_weight": 0.5, "cycle_weight": 0.0, "gradient_penalty": 0.1},
}


def train(overrides: dict, steps: int, root: str) -> AdversaryCritic:
    L.seed_everything(0, verbose=False)
    module = AdversaryCritic(LeNet5(), Critic(num_classes=10, input_shape=[1, 28, 28], hidden=1200),
                             HighConfidenceAttack(steps=5, differentiable=True), **overrides)
    trainer = L.Trainer(max_epochs=2, limit_train_batches=steps, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu")
    trainer.fit(module, MNISTDataModule(root=root, batch_size=128))
    return module.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--root", default=str(data_root()))
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        metavar="SETTING", help="rows to run, by label")
    args = parser.parse_args()
    x, y = MNISTDataModule(root=args.root).split_tensors("test", args.samples)
    print(f"{'setting':<40}{'clean acc':>10}{'rho_adv DeepFool':>18}")
    for label in args.only:
        module = train(SETTINGS[label], args.steps, args.root)
        with torch.no_grad():
            accuracy = (module(x).argmax(1) == y).float().mean().item()
        torch.manual_seed(0)
        rho = min_norm_statistics(DeepFool(norm="l2", steps=50, step_clip=0.5), module, x, y).get(
            "rho_adv", float("nan"))
        print(f"{label:<40}{accuracy:>10.3f}{rho:>18.3f}", flush=True)


if __name__ == "__main__":
    main()
