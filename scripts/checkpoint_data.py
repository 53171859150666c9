"""Shared by the comparison and benchmark scripts: a trained model and its test images."""

from __future__ import annotations

import argparse

from advlit.checkpoints import load_network
from advlit.cli import build_cli


def add_checkpoint_arguments(parser: argparse.ArgumentParser, samples: int) -> None:
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--ckpt", default="logs/quickstart/checkpoints",
                        help="a checkpoint file, or a checkpoint folder (its newest run's last.ckpt)")
    parser.add_argument("--samples", type=int, default=samples)


def load_model_and_test_data(args: argparse.Namespace):
    """(eval-mode LightningModule with the checkpoint's weights, first ``samples`` test images
    as float [0, 1], their labels), all from the config's model and datamodule."""
    cli = build_cli(["--config", args.config, "--trainer.logger=false"], run=False)
    model = cli.model
    load_network(model.model, args.ckpt)
    model.eval()
    cli.datamodule.setup("test")
    x = cli.datamodule.test_set.images[: args.samples].float() / 255
    y = cli.datamodule.test_set.labels[: args.samples]
    return model, x, y
