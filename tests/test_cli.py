"""End to end through LightningCLI: fit, test, W&B offline, resumption, adversarial training
actually raising robust accuracy."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advlit.cli import build_cli
from advlit.defenses import AdversarialTraining

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
DIGITS_ERM = str(ROOT / "configs" / "digits" / "erm.yaml")
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def test_fit_then_test_with_offline_wandb(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fitted = build_cli(["fit", "--config", QUICKSTART, "--trainer.max_epochs=2", *QUIET])
    last = tmp_path / "logs/quickstart/checkpoints/run_0/last.ckpt"
    assert last.is_file()
    rebuilt = AdversarialTraining.load_from_checkpoint(last, weights_only=True).eval()  # from its hparams
    assert rebuilt.attack.eps == fitted.model.attack.eps and rebuilt.attack.steps == fitted.model.attack.steps
    probe = torch.rand(4, 1, 8, 8)
    assert torch.equal(rebuilt(probe), fitted.model.eval()(probe))
    cli = build_cli(["test", "--config", QUICKSTART, "--ckpt_path", "last", *QUIET])
    metrics = cli.trainer.callback_metrics
    for key in ["test/clean_acc", "test/robust_acc/pgd20/eps=0.05",
                "test/robust_acc/pgd20/eps=0.2", "test/robust_acc/fgsm/eps=0.1"]:
        assert key in metrics, sorted(metrics)
    assert metrics["test/clean_acc"] > 0.2  # above chance after 2 epochs
    assert metrics["test/robust_acc/pgd20/eps=0.2"] <= metrics["test/robust_acc/pgd20/eps=0.05"]
    # the quickstart cascades PGD-20, FGSM, DeepFool and the standard suite: rows are cumulative
    worst = metrics["test/robust_acc/worst_linf/eps=0.2"]
    assert worst <= metrics["test/robust_acc/square/eps=0.2"] <= metrics["test/robust_acc/fgsm/eps=0.2"]
    assert metrics["test/robust_acc/fgsm/eps=0.2"] <= metrics["test/robust_acc/pgd20/eps=0.2"]
    assert "test/median_norm/deepfool" in metrics and "test/rho_adv/deepfool" in metrics
    runs = sorted((tmp_path / "logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(list(r.glob("*.wandb")) for r in runs)
    media = runs[-1] / "files" / "media"  # the test run: table, curve plot data, example grid
    images = list((media / "images").rglob("*.png"))
    assert images and list((media / "table").rglob("*.json"))
    assert max(int(np.array(Image.open(f)).max()) for f in images) > 200  # [0, 1] scaled to bytes


def test_experiment_defaults_come_from_the_config_path(tmp_path, monkeypatch):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from advlit.cli import checkpoint_callback, experiment_name

    assert experiment_name([ROOT / "configs" / "mnist" / "pgd_at.yaml"]) == ("mnist", "pgd_at")
    assert experiment_name(["configs/quickstart.yaml"]) == ("", "quickstart")
    assert experiment_name([tmp_path / "mine" / "exp.yaml"]) == ("mine", "exp")
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["--config", DIGITS_ERM], run=False)
    loggers = {type(each).__name__: each for each in cli.trainer.loggers}
    assert set(loggers) == {"WandbLogger", "CSVLogger"}
    assert Path(loggers["CSVLogger"].log_dir).resolve().is_relative_to(tmp_path / "logs" / "digits" / "erm")
    assert Path(checkpoint_callback(cli.trainer).dirpath) == tmp_path / "logs" / "digits" / "erm" / "checkpoints"
    assert cli.trainer.num_devices == 1 and cli.config.seed_everything == 0
    bare = build_cli(["--config", DIGITS_ERM, "--trainer.logger=false", "--trainer.enable_checkpointing=false",
                      "--trainer.callbacks=[]"], run=False)
    assert not bare.trainer.loggers and not any(isinstance(c, ModelCheckpoint) for c in bare.trainer.callbacks)


def test_resumed_fit_matches_uninterrupted_fit(tmp_path, monkeypatch):
    """Every piece of state (optimizer, scheduler, data order, RNG for random starts and
    natural batches) is in the checkpoint: 1 epoch + resume == 2 epochs straight."""
    args = ["--config", QUICKSTART, "--trainer.logger=false", *QUIET,
            "--model.init_args.natural_ratio=0.3",
            "--model.init_args.scheduler=torch.optim.lr_scheduler.StepLR",
            "--model.init_args.scheduler.step_size=1"]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    straight = build_cli(["fit", *args, "--trainer.max_epochs=3"])
    monkeypatch.chdir(tmp_path / "b")
    build_cli(["fit", *args, "--trainer.max_epochs=1"])
    resumed = build_cli(["fit", *args, "--trainer.max_epochs=3", "--ckpt_path", "last"])
    assert resumed.trainer.global_step == straight.trainer.global_step
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name
    for key in ("val/acc", "val/loss", "train/acc"):
        assert resumed.trainer.callback_metrics[key] == straight.trainer.callback_metrics[key]


def test_adversarial_training_raises_robust_accuracy_over_erm(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = {}
    for name, config in [("erm", DIGITS_ERM), ("pgd_at", QUICKSTART)]:
        build_cli(["fit", "--config", config, "--trainer.max_epochs=8",
                   "--trainer.logger=false", *QUIET])
        cli = build_cli(["test", "--config", config, "--trainer.logger=false", *QUIET,
                         "--ckpt_path", "last"])
        results[name] = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    robust = "test/robust_acc/pgd20/eps=0.2"
    assert results["pgd_at"][robust] > results["erm"][robust] + 0.2, results
    assert results["erm"]["test/clean_acc"] > 0.9


def test_bad_config_values_fail_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="natural_ratio must be in"):
        build_cli(["fit", "--config", QUICKSTART, "--model.init_args.natural_ratio=2"])
    with pytest.raises(ValueError, match="unknown norm 'l5'"):
        build_cli(["fit", "--config", QUICKSTART, "--model.init_args.attack.init_args.norm=l5"])
    assert not (tmp_path / "logs" / "quickstart" / "checkpoints").exists()
