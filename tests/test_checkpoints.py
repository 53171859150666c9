"""Runs a researcher can trust (#16): safe checkpoint loading, missing checkpoints fail, any
model evaluates through ``advlit test``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advlit.checkpoints import CheckpointError, load_checkpoint
from advlit.cli import build_cli
from advlit.models import DigitsCNN, Pretrained

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.logger=false"]


class Payload:
    """Unpickling this creates the file ``marker``: the side effect a planted checkpoint would have."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def advlit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-c", "from advlit.cli import main; main()", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_planted_pickle_payload_does_not_run_and_the_command_fails_clearly(tmp_path):
    folder = tmp_path / "logs" / "quickstart" / "checkpoints" / "run_3"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "payload": Payload(str(marker))}, folder / "last.ckpt")
    done = advlit("test", "--config", QUICKSTART, "--ckpt_path", "last", *QUIET, cwd=tmp_path)
    assert not marker.exists()
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("advlit: error: checkpoint")
    assert "will not unpickle" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_checkpoint_exits_non_zero_naming_the_folder(tmp_path):
    done = advlit("test", "--config", QUICKSTART, "--ckpt_path", "last", *QUIET, cwd=tmp_path)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]  # above it: Lightning's own info lines
    assert last.startswith("advlit: error: --ckpt_path last: no last.ckpt in")
    assert str(tmp_path / "logs" / "quickstart" / "checkpoints") in last
    assert "Traceback" not in done.stderr


def test_best_without_a_monitored_metric_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "logs" / "quickstart" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"state_dict": {}}, folder / "last.ckpt")
    with pytest.raises(CheckpointError, match="needs a monitored metric"):
        build_cli(["test", "--config", QUICKSTART, "--ckpt_path", "best", *QUIET])


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_empty_or_truncated_checkpoints_get_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="broken.ckpt") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("source", ["state_dict", "torchscript"])
def test_advlit_test_evaluates_a_plain_state_dict_or_a_torchscript_file(tmp_path, monkeypatch, source,
                                                                         trained_digits_cnn, digits):
    monkeypatch.chdir(tmp_path)
    if source == "state_dict":
        torch.save(trained_digits_cnn.state_dict(), tmp_path / "weights.pt")
        options = ["--model.init_args.model.init_args.architecture=advlit.models.DigitsCNN"]
    else:
        torch.jit.save(torch.jit.trace(trained_digits_cnn, digits[2][:2]), str(tmp_path / "weights.pt"))
        options = []
    cli = build_cli(["test", "--config", QUICKSTART, *QUIET, "--trainer.callbacks=[]",
                     "--model.init_args.model=advlit.models.Pretrained",
                     f"--model.init_args.model.init_args.path={tmp_path / 'weights.pt'}", *options])
    with torch.no_grad():
        expected = (trained_digits_cnn(digits[2]).argmax(1) == digits[3]).float().mean().item()
    assert cli.trainer.callback_metrics["test/acc"].item() == pytest.approx(expected, abs=1e-6)


def test_pretrained_names_a_file_that_does_not_fit():
    with pytest.raises(CheckpointError, match="does not exist"):
        Pretrained("no/such/file.pt")


def test_pretrained_rejects_weights_of_another_architecture(tmp_path):
    torch.save(DigitsCNN(width=16).state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="does not fit DigitsCNN"):
        Pretrained(str(tmp_path / "w.pt"), architecture=DigitsCNN())


def test_two_fits_of_one_config_keep_both_runs_and_last_means_the_newest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit = ["fit", "--config", QUICKSTART, *QUIET, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
           "--trainer.limit_val_batches=1", "--trainer.callbacks=lightning.pytorch.callbacks.ModelCheckpoint",
           "--trainer.callbacks.dirpath=logs/quickstart/checkpoints", "--trainer.callbacks.save_last=true"]
    first = build_cli(fit + ["--seed_everything=1"])
    second = build_cli(fit + ["--seed_everything=2"])
    folder = tmp_path / "logs" / "quickstart" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["run_0", "run_1"]
    for run, cli in (("run_0", first), ("run_1", second)):
        weights = load_checkpoint(folder / run / "last.ckpt")["state_dict"]
        assert all(torch.equal(v, weights[k]) for k, v in cli.model.state_dict().items())
        assert f"seed_everything: {cli.config['fit']['seed_everything']}" in (folder / run / "config.yaml").read_text()
    before = sorted(p.name for p in (folder / "run_1").iterdir())
    assert "config.yaml" in before
    tested = build_cli(["test", "--config", QUICKSTART, "--config", str(ROOT / "configs/eval/standard_linf_0.3.yaml"),
                        *QUIET, "--trainer.limit_test_batches=1", "--ckpt_path", "last"])
    assert tested.config_init["test"]["ckpt_path"] == str(folder / "run_1" / "last.ckpt")
    metrics = tested.trainer.callback_metrics  # the experiment's suite and the appended one, side by side
    assert "test/robust_acc/worst_linf/eps=0.2" in metrics and "test/robust_acc/apgd_ce_standard/eps=0.3" in metrics
    assert sorted(p.name for p in (folder / "run_1").iterdir()) == before  # test writes nothing there


def test_a_run_failing_in_setup_opens_no_wandb_run(tmp_path, monkeypatch, trained_digits_cnn, digits):
    """A ten-class TorchScript network on data poisoned with an 11th class fails at setup,
    before W&B is touched, with the one-line message."""
    monkeypatch.chdir(tmp_path)
    torch.jit.save(torch.jit.trace(trained_digits_cnn, digits[2][:2]), str(tmp_path / "net.pt"))
    config = tmp_path / "config.yaml"
    config.write_text(f"""
trainer:
  max_epochs: 1
  logger:
    class_path: lightning.pytorch.loggers.WandbLogger
    init_args: {{project: advlit, save_dir: logs, offline: true}}
model:
  class_path: advlit.defenses.RobustClassifier
  init_args:
    model: {{class_path: advlit.models.Pretrained, init_args: {{path: {tmp_path / 'net.pt'}}}}}
data:
  class_path: advlit.data.PoisonedDataModule
  init_args:
    datamodule: {{class_path: advlit.data.DigitsDataModule}}
    count: 10
    target: new_class
""")
    with pytest.raises(ValueError, match="the network outputs 10 classes but the data has 11"):
        build_cli(["fit", "--config", str(config), "--trainer.enable_progress_bar=false"])
    assert not list(tmp_path.rglob("offline-run-*"))


def test_load_run_gives_the_config_model_with_the_checkpoint_weights(tmp_path, monkeypatch):
    from advlit.runs import SeedTable, load_run

    monkeypatch.chdir(ROOT)
    fresh = load_run(QUICKSTART)
    weights = {k: torch.randn_like(v) if v.is_floating_point() else v
               for k, v in fresh.module.model.state_dict().items()}
    torch.save(weights, tmp_path / "weights.pt")
    run = load_run(QUICKSTART, str(tmp_path / "weights.pt"))
    assert not run.module.training
    assert all(torch.equal(v, weights[k]) for k, v in run.module.model.state_dict().items())
    x, y = run.test_tensors(10)
    assert x.shape[0] == y.shape[0] == 10 and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    table = SeedTable()
    table.record("a", 0, {"m": 1.0})
    table.record("a", 1, {"m": 3.0})
    assert table.rows == {"a": {"m": [1.0, 3.0]}}
