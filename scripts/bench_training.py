"""Time of a PGD adversarial-training epoch under Lightning (advlit AdversarialTraining,
MNISTDataModule, Trainer) relative to a minimal plain-torch PGD-AT loop with the same model,
batch size, attack steps and data.

    python scripts/bench_training.py [--model cwcnn|lenet] [--batches 30] [--steps 10]
        [--data DIR]

Target (issue #2): ratio <= 1.10. Each side runs a warm-up epoch first; epochs are timed
from the first to the last training batch.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer

from advlit.attacks import PGD
from advlit.data import MNISTDataModule
from advlit.data.root import data_root
from advlit.defenses import AdversarialTraining
from advlit.models import CWCNN, LeNet5
from advlit.runs import EpochTimer, hand_written_pgd


def make_model(name: str):
    torch.manual_seed(0)
    return CWCNN() if name == "cwcnn" else LeNet5()


def plain_epoch(model, images, labels, batch: int, batches: int, eps: float, alpha: float,
                steps: int, optimizer) -> float:
    start = time.perf_counter()
    order = torch.randperm(len(labels))
    for i in range(batches):
        idx = order[i * batch:(i + 1) * batch]
        x, y = images[idx].float() / 255, labels[idx]
        model.eval()
        x_adv = hand_written_pgd(model, x, y, eps, alpha, steps)
        model.train()
        optimizer.zero_grad()
        F.cross_entropy(model(x_adv), y).backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["cwcnn", "lenet"], default="cwcnn")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--data", default=str(data_root()))
    args = parser.parse_args()
    eps = 0.3

    datamodule = MNISTDataModule(root=args.data, batch_size=args.batch)
    datamodule.setup("fit")
    attack = PGD(norm="linf", eps=eps, steps=args.steps)

    timer = EpochTimer()
    module = AdversarialTraining(make_model(args.model), attack)
    trainer = Trainer(max_epochs=2, limit_train_batches=args.batches, limit_val_batches=0,
                      logger=False, enable_checkpointing=False, enable_model_summary=False,
                      accelerator="auto", devices=1, callbacks=[timer])
    trainer.fit(module, datamodule=datamodule)
    t_lightning = min(timer.times)

    model = make_model(args.model)
    optimizer = torch.optim.Adam(model.parameters())
    images, labels = datamodule.train_set.images, datamodule.train_set.labels
    t_plain = min(plain_epoch(model, images, labels, args.batch, args.batches, eps, attack.alpha,
                              args.steps, optimizer) for _ in range(2))

    print(f"model={args.model} batch={args.batch} batches={args.batches} PGD steps={args.steps} "
          f"threads={torch.get_num_threads()}")
    print(f"plain-torch PGD-AT epoch   {t_plain:8.2f} s")
    print(f"advlit Lightning epoch     {t_lightning:8.2f} s")
    print(f"advlit / plain             {t_lightning / t_plain:8.3f}   (target <= 1.10)")


if __name__ == "__main__":
    main()
