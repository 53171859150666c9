"""Every shipped config instantiates; the CIFAR-10 and MNIST ones train a batch end to end."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from advlit.cli import build_cli
from advlit.defenses import RobustClassifier
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
PIECES = ("base", "eval")  # shared pieces, composed into the experiments
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if p.parent.name not in PIECES)
EVAL_PIECES = sorted((ROOT / "configs" / "eval").glob("*.yaml"))
SMOKE = ["--trainer.logger=false", "--trainer.enable_progress_bar=false",
         "--trainer.enable_model_summary=false", "--trainer.max_epochs=1",
         "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
         "--trainer.limit_test_batches=1"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_instantiates(config, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cli = build_cli(["--config", str(config), "--trainer.logger=false"], run=False)
    assert isinstance(cli.model, RobustClassifier)
    logits = cli.model.model(torch.zeros(2, *cli.datamodule.input_shape))
    assert logits.shape == (2, cli.datamodule.num_classes)


@pytest.mark.parametrize("piece", EVAL_PIECES, ids=lambda p: p.name)
def test_an_eval_piece_adds_its_suite_and_keeps_the_checkpoint_callback(piece, monkeypatch):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from advlit.evaluation import RobustnessEvaluation

    monkeypatch.chdir(ROOT)
    experiment = ROOT / "configs" / "mnist" / "pgd_at.yaml"
    cli = build_cli(["--config", str(experiment), "--config", str(piece), "--trainer.logger=false"], run=False)
    alone = build_cli(["--config", str(experiment), "--trainer.logger=false"], run=False)
    evaluations = [c for c in cli.trainer.callbacks if isinstance(c, RobustnessEvaluation)]
    assert len(evaluations) == 1 + sum(isinstance(c, RobustnessEvaluation) for c in alone.trainer.callbacks)
    assert any(isinstance(c, ModelCheckpoint) for c in cli.trainer.callbacks)
    assert evaluations[-1].tag == "_standard" and "apgd_ce" in evaluations[-1].suite.attacks


def write_fake_cifar(root: Path) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with (folder / name).open("wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                         b"labels": rng.integers(0, 10, 4).tolist()}, f)


@pytest.mark.parametrize("config", sorted((ROOT / "configs/cifar10").glob("*.yaml")), ids=lambda p: p.stem)
def test_cifar10_config_trains_and_tests_on_tiny_files(config, tmp_path, monkeypatch):
    write_fake_cifar(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADVLIT_DATA")  # the default root, ./data
    small = ["--data.init_args.batch_size=4", "--data.init_args.eval_batch_size=4",
             "--data.init_args.val_size=4"]
    cli = build_cli(["fit", "--config", str(config), *SMOKE, *small])
    assert cli.trainer.global_step == 1
    assert any(k.startswith("val/robust_acc/pgd10/") for k in cli.trainer.callback_metrics)
    cli = build_cli(["test", "--config", str(config), *SMOKE, *small, "--ckpt_path", "best"])
    metrics = cli.trainer.callback_metrics
    assert any(k.startswith("test/robust_acc/pgd20/") for k in metrics)
    if "noise" in config.stem:   # randomized models are evaluated naively and with EOT
        assert "test/robust_acc/pgd20_eot8/eps=0.03" in metrics and "test/sanity/randomized_model" in metrics


def test_mnist_config_trains_a_batch(tmp_path, monkeypatch):
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"MNIST not found at {SHARED_DATA / 'MNIST' / 'raw'}")
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["fit", "--config", str(ROOT / "configs/mnist/mat_max.yaml"), *SMOKE,
                     f"--data.init_args.root={SHARED_DATA}", "--data.init_args.eval_batch_size=64"])
    assert cli.trainer.global_step == 1
    assert (tmp_path / "logs/mnist/mat_max/checkpoints/run_0/last.ckpt").is_file()
