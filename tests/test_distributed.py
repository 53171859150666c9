"""Two CPU processes (DDP, gloo) evaluate exactly the numbers of one process, on a test set
whose size does not divide by 2 (no padded duplicates, no lost samples), with an evaluation
subset (the first 15 of 23 test images), random-start attacks (randomness keyed by each
sample's dataset index) and a min-norm attack (gathered radii, median)."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advlit.cli import build_cli
from tests.test_data import write_idx

CONFIG = """
seed_everything: 0
trainer:
  max_epochs: 1
  accelerator: cpu
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args: {{save_dir: {logs}, name: run}}
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{dirpath: {logs}/ckpt, save_last: true}}
    - class_path: advlit.evaluation.RobustnessEvaluation
      init_args:
        attacks:
          fgsm: {{class_path: advlit.attacks.FGSM, init_args: {{eps: 0.1}}}}
          pgd: {{class_path: advlit.attacks.PGD, init_args: {{eps: 0.1, steps: 3}}}}
          apgd: {{class_path: advlit.attacks.APGD, init_args: {{eps: 0.1, steps: 5}}}}
          square: {{class_path: advlit.attacks.Square, init_args: {{eps: 0.1, queries: 20}}}}
          deepfool: {{class_path: advlit.attacks.DeepFool, init_args: {{norm: linf}}}}
        eps_grid: {{linf: [0.02, 0.1]}}
        max_samples: 15
model:
  class_path: advlit.defenses.RobustClassifier
  init_args:
    model: {{class_path: advlit.models.MLP, init_args: {{hidden_sizes: [32]}}}}
data:
  class_path: advlit.data.FashionMNISTDataModule
  init_args: {{root: {root}, val_size: 8, batch_size: 8, eval_batch_size: 4}}
"""


def read_test_metrics(logs: Path) -> dict[str, float]:
    rows = list(csv.DictReader((sorted(logs.glob("run/version_*"))[-1] / "metrics.csv").open()))
    return {k: float(v) for row in rows for k, v in row.items() if k.startswith("test/") and v}


def test_two_processes_give_the_same_counts_as_one(tmp_path):
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    # a learnable toy: the label is the brightest of 10 horizontal bands
    def make(n):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 * label + 4: 2 * label + 6] = 250
        return images, labels
    for prefix, n in (("train", 64), ("t10k", 23)):
        images, labels = make(n)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, gz=True)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, gz=True)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(logs=tmp_path / "logs", root=tmp_path / "data"))

    build_cli(["fit", "--config", str(config), "--trainer.max_epochs=5"])
    build_cli(["test", "--config", str(config), "--ckpt_path", "last", "--trainer.devices=1"])
    single = read_test_metrics(tmp_path / "logs")
    subprocess.run([sys.executable, "-m", "advlit.cli", "test", "--config", str(config),
                    "--ckpt_path", "last", "--trainer.devices=2", "--trainer.strategy=ddp"],
                   check=True, cwd=tmp_path, capture_output=True, timeout=300)
    double = read_test_metrics(tmp_path / "logs")

    assert set(single) == set(double)
    for key in ("test/robust_acc/pgd/eps=0.1", "test/robust_acc/apgd/eps=0.1",
                "test/robust_acc/square/eps=0.1", "test/robust_acc/worst_linf/eps=0.1",
                "test/median_norm/deepfool", "test/rho_adv/deepfool"):
        assert key in single
    counts = {k for k in single if "acc" in k or "success_rate" in k}
    assert {k: single[k] for k in counts} == {k: double[k] for k in counts}  # exact
    timings = {k for k in single if "/seconds/" in k}
    for key in set(single) - counts - timings:  # float norms: batch composition moves the last bits
        assert double[key] == pytest.approx(single[key], rel=1e-5), key
    # counts are k/15 (the evaluation subset), so a duplicated or lost sample would show
    assert 0 < single["test/clean_acc"] and round(single["test/clean_acc"] * 15, 4).is_integer()
