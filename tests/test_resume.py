"""Resumable evaluation: a run killed after some batches resumes to the result of an
uninterrupted run; a changed suite or model never reuses stale results."""

import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from advlit.attacks import PGD, Square
from advlit.evaluation import AttackSuite
from advlit.evaluation.result import SuiteResult

KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import torch
    from advlit.data import DigitsDataModule
    from advlit.evaluation import resume
    from advlit.models import DigitsCNN
    from tests.test_resume import suite

    net = DigitsCNN()
    net.load_state_dict(torch.load(sys.argv[1], weights_only=True))
    x, y = DigitsDataModule(val_size=0).split_tensors("test", 200)
    save, saved = resume.ResultStore.save, []

    def save_then_die(self, key, result):  # killed outright once two batches are on disk
        save(self, key, result)
        saved.append(key)
        if len(saved) == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    resume.ResultStore.save = save_then_die
    suite(sys.argv[2]).run(net.eval(), x, y)
""")


def suite(folder, steps: int = 5) -> AttackSuite:
    return AttackSuite({"pgd": PGD(eps=0.1, steps=steps), "square": Square(eps=0.1, queries=20)},
                       batch_size=40, results_dir=folder)


def same(a: SuiteResult, b: SuiteResult) -> bool:
    tensors = [(a.index, b.index), (a.correct, b.correct), (a.nonfinite, b.nonfinite)]
    tensors += [(a.broken[n][e], b.broken[n][e]) for n in a.broken for e in a.broken[n]]
    tensors += [(a.silent[n][e], b.silent[n][e]) for n in a.silent for e in a.silent[n]]
    return (all(torch.equal(p, q) for p, q in tensors) and a.forward == b.forward and a.backward == b.backward
            and a.flags == b.flags and list(a.broken) == list(b.broken))


def counting_runs(monkeypatch) -> list:
    calls = []
    run = AttackSuite._run
    monkeypatch.setattr(AttackSuite, "_run", lambda self, *args: calls.append(1) or run(self, *args))
    return calls


def test_a_killed_evaluation_resumes_to_the_uninterrupted_result(tmp_path, trained_digits_cnn, digits,
                                                                 monkeypatch):
    weights, folder = tmp_path / "net.pt", tmp_path / "results"
    torch.save(trained_digits_cnn.state_dict(), weights)
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(weights), str(folder)],
                            cwd=Path(__file__).resolve().parents[1], capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert len(list(folder.glob("chunk-*.pt"))) == 2 and not list(folder.glob(".*tmp"))

    _, _, x, y = digits
    calls = counting_runs(monkeypatch)
    resumed = suite(folder).run(trained_digits_cnn, x[:200], y[:200])
    assert len(calls) == 3  # the 5 batches of 40, minus the 2 on disk
    uninterrupted = suite(None).run(trained_digits_cnn, x[:200], y[:200])
    assert same(resumed, uninterrupted)
    assert 0 < resumed.robust_accuracy < resumed.clean_accuracy


def test_a_changed_suite_or_model_is_never_mixed_with_stale_results(tmp_path, trained_digits_cnn, digits,
                                                                     monkeypatch):
    _, _, x, y = digits
    x, y = x[:80], y[:80]
    folder = tmp_path / "results"
    first = suite(folder).run(trained_digits_cnn, x, y)
    calls = counting_runs(monkeypatch)
    assert same(suite(folder).run(trained_digits_cnn, x, y), first) and not calls  # all loaded
    stronger = suite(folder, steps=10).run(trained_digits_cnn, x, y)
    assert len(calls) == 2 and same(stronger, suite(None, steps=10).run(trained_digits_cnn, x, y))
    changed = type(trained_digits_cnn)()
    changed.load_state_dict(trained_digits_cnn.state_dict())
    with torch.no_grad():
        next(changed.parameters()).add_(0.01)
    calls.clear()
    suite(folder).run(changed.eval(), x, y)
    assert len(calls) == 2  # new weights: computed again
    assert len(list(folder.glob("chunk-*.pt"))) == 6  # nothing overwritten or deleted


def test_the_callback_resumes_a_test_run(tmp_path, monkeypatch):
    from lightning.pytorch import Trainer, seed_everything

    from advlit.data import DigitsDataModule
    from advlit.defenses import RobustClassifier
    from advlit.evaluation import RobustnessEvaluation
    from advlit.models import DigitsCNN

    seed_everything(0)
    module = RobustClassifier(DigitsCNN())
    results = []
    calls = counting_runs(monkeypatch)
    for _ in range(2):
        evaluation = RobustnessEvaluation({"pgd": PGD(eps=0.1, steps=3)}, max_samples=120, log_examples=0,
                                          results_dir=str(tmp_path / "results"))
        Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[evaluation],
                default_root_dir=tmp_path).test(module, DigitsDataModule(eval_batch_size=50))
        results.append(evaluation.results)
    assert len(calls) == 3 and results[0] == results[1]  # 3 batches (50, 50, 20) attacked once
