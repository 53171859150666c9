"""The CLI keeps its promises: a bad checkpoint file or config ends in one line and exit code 2."""

import sys

import pytest
import torch

from advlit.cli import main
from tests.test_checkpoints import QUICKSTART, QUIET, advlit


@pytest.fixture
def advlit_here(tmp_path, monkeypatch, capsys):
    """``advlit ARGS`` in this process (what the subprocess runs, minus its start-up time):
    the last line of stderr, after checking the exit code is 2 and nothing else was printed."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> str:
        monkeypatch.setattr(sys, "argv", ["advlit", *args])
        with pytest.raises(SystemExit) as done:
            main()
        err = capsys.readouterr().err
        assert done.value.code == 2, err[-2000:]
        assert "Traceback" not in err and "usage:" not in err
        return err.strip().splitlines()[-1]

    return run


def last_line(done) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "usage:" not in done.stderr
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("content", ["missing", "empty", "truncated", "planted"])
def test_an_explicit_bad_checkpoint_file_is_one_line(tmp_path, content, advlit_here):
    path = tmp_path / "bad.ckpt"
    if content == "empty":
        path.write_bytes(b"")
    elif content == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(100)}}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif content == "planted":
        torch.save({"state_dict": {}, "hook": print}, path)
    line = advlit_here("test", "--config", QUICKSTART, "--ckpt_path", str(path), *QUIET)
    assert line.startswith("advlit: error: checkpoint") and "bad.ckpt" in line


def test_the_command_itself_ends_in_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(b"")
    line = last_line(advlit("test", "--config", QUICKSTART, "--ckpt_path", str(path), *QUIET, cwd=tmp_path))
    assert line.startswith("advlit: error: checkpoint") and "empty" in line


def test_a_checkpoint_of_another_model_is_refused_naming_both(tmp_path, advlit_here):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {
        "_class_path": "advlit.defenses.AdversarialTraining",
        "model": {"class_path": "advlit.models.LeNet5", "init_args": {}}}}, path)
    line = advlit_here("test", "--config", QUICKSTART, "--ckpt_path", str(path), *QUIET)
    assert "advlit.models.LeNet5" in line and "advlit.models.DigitsCNN" in line


@pytest.mark.parametrize("option, expected", [
    ("--trainer.max_epochz=3", "did you mean 'max_epochs'"),
    ("--model.init_args.attack.init_args.epz=0.1", "did you mean 'eps'"),
    ("--model.init_args.attack.init_args.eps=abc", "model.attack.eps (advlit.attacks.PGD): Expected a float"),
    ("--model.init_args.model=advlit.models.DigitsCNNN", "did you mean 'DigitsCNN'"),
])
def test_config_mistakes_are_one_line_naming_key_and_fix(option, expected, advlit_here):
    line = advlit_here("test", "--config", QUICKSTART, option, *QUIET)
    assert expected in line


def test_a_misspelled_key_in_a_yaml_file_is_one_line(tmp_path, advlit_here):
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  init_args:\n"
                      "    attack: {class_path: advlit.attacks.PGD, init_args: {epz: 0.1}}\n")
    line = advlit_here("test", "--config", QUICKSTART, "--config", str(config), *QUIET)
    assert "unknown option 'epz'" in line and "accepted: norm, eps" in line


def test_help_describes_advlit_and_the_checkpoint_choices(monkeypatch, capsys):
    for args, expected in ((["--help"], "adversarially robust"), (["test", "--help"], "'best'")):
        monkeypatch.setattr(sys, "argv", ["advlit", *args])
        with pytest.raises(SystemExit) as done:
            main()
        out = capsys.readouterr().out
        assert done.value.code == 0 and expected in out and "Lightning Trainer command line tool" not in out
