"""Label poisoning, selection strategies, the path attack, the Gaussian toy and targeted
evaluation."""

import csv
import math

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger

from advlit.attacks import PGD, DeepFool, FlipSteps, PathAttack
from advlit.cli import build_cli
from advlit.data import (
    DigitsDataModule,
    GaussianDensitySelection,
    GaussianToyDataModule,
    GraphSelection,
    PoisonedDataModule,
    ScoreSelection,
)
from advlit.data.selection import greedy_selection
from advlit.defenses import RobustClassifier
from advlit.evaluation import RobustnessEvaluation
from advlit.models import MLP, DigitsCNN


def poisoned(**kwargs):
    dm = PoisonedDataModule(DigitsDataModule(val_size=0), **kwargs)
    dm.setup("fit")
    return dm


def test_budget_and_flips_are_exact_and_reproducible():
    clean = DigitsDataModule(val_size=0)
    clean.setup("fit")
    for target in ("uniform", "next"):
        dm = poisoned(fraction=0.1, target=target, seed=3)
        flips, labels = dm.flips, dm.datamodule.train_set.labels
        n = round(0.1 * len(labels))
        assert len(flips["index"]) == len(flips["index"].unique()) == n
        changed = (labels != clean.train_set.labels).nonzero().squeeze(1)
        assert torch.equal(changed, flips["index"])                 # only where chosen
        assert (flips["new"] != flips["old"]).all()                 # never to the same class
        assert torch.equal(labels[flips["index"]], flips["new"])
        assert torch.equal(poisoned(fraction=0.1, target=target, seed=3).flips["index"], flips["index"])
    one, two = poisoned(count=50, seed=1).flips["index"], poisoned(count=50, seed=2).flips["index"]
    assert not torch.equal(one, two)
    assert torch.equal(dm.datamodule.test_set.labels, clean.test_set.labels)   # test data untouched


def test_pair_and_new_class_targets():
    dm = poisoned(count=30, target="pair", source_class=5, target_class=6)
    assert (dm.flips["old"] == 5).all() and (dm.flips["new"] == 6).all()
    dm = poisoned(count=30, target="new_class")
    assert dm.num_classes == 11 and (dm.flips["new"] == 10).all()


def test_new_class_changes_the_model_head(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("""
model:
  class_path: advlit.defenses.RobustClassifier
  init_args:
    model: {class_path: advlit.models.DigitsCNN}
data:
  class_path: advlit.data.PoisonedDataModule
  init_args:
    datamodule: {class_path: advlit.data.DigitsDataModule}
    fraction: 0.05
    target: new_class
""")
    cli = build_cli(["--config", str(config), "--trainer.logger=false"], run=False)
    assert cli.model.model(torch.zeros(2, 1, 8, 8)).shape == (2, 11)


def test_bad_budgets_are_rejected_clearly():
    with pytest.raises(ValueError, match="count must be an integer >= 0"):
        poisoned(count=-1)
    with pytest.raises(ValueError, match="fraction must be in"):
        poisoned(fraction=1.5)
    with pytest.raises(ValueError, match="exactly one of fraction"):
        poisoned()
    with pytest.raises(ValueError, match="exceeds the .* training points of class 5"):
        poisoned(count=1000, target="pair", source_class=5, target_class=6)
    with pytest.raises(ValueError, match="distinct source_class"):
        poisoned(count=1, target="pair", source_class=5, target_class=5)


def test_greedy_dominating_set_on_a_hand_made_graph():
    # star 0-{1,2,3}, path 4-5-6, isolated 7 (one class)
    adjacency = torch.zeros(8, 8, dtype=torch.bool)
    for a, b in [(0, 1), (0, 2), (0, 3), (4, 5), (5, 6)]:
        adjacency[a, b] = adjacency[b, a] = True
    graphs = [(torch.arange(8), adjacency)]
    assert greedy_selection(graphs, 8, 3, "dominating").tolist() == [0, 5, 7]
    assert greedy_selection(graphs, 8, 2, "degree").tolist() == [0, 5]
    # two classes: picks stay within their own graph and never repeat
    picks = greedy_selection([(torch.tensor([0, 2, 4]), adjacency[:3, :3]),
                              (torch.tensor([1, 3, 5]), adjacency[4:7, 4:7])], 6, 6, "dominating")
    assert sorted(picks.tolist()) == list(range(6))


def test_feature_strategies_respect_the_budget(trained_digits_cnn):
    for strategy in (GraphSelection(gamma=2.0, method="degree"),
                     GraphSelection(gamma=1.0, features="pca", pca_components=10),
                     GraphSelection(gamma=1.0, norm="linf", features="model", model=trained_digits_cnn),
                     GaussianDensitySelection(pca_components=5)):
        dm = poisoned(count=40, strategy=strategy)
        assert len(dm.flips["index"].unique()) == 40


def test_path_attack_flips_a_linear_model_in_the_expected_number_of_steps():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 2)
    x = torch.randn(64, 5)
    with torch.no_grad():
        y = model(x).argmax(1)
        logits = model(x)
    step = 0.05
    margin = (logits[torch.arange(64), y] - logits[torch.arange(64), 1 - y]).abs()
    speed = step * (model.weight[1] - model.weight[0]).norm()
    expected = torch.ceil(margin / speed).long()
    path = PathAttack(steps=500, step_size=step).path(model, x, y, record=True)
    assert torch.equal(path.flip_step, expected)
    assert path.points.shape == (501, 64, 5)
    targeted = PathAttack(steps=500, step_size=step, targeted=True).path(model, x, 1 - y)
    assert torch.equal(targeted.flip_step, expected)


def test_path_length_selection_picks_from_the_bucket(trained_digits_cnn):
    flip_steps = FlipSteps(trained_digits_cnn, steps=30, step_size=0.1)
    dm = poisoned(count=20, target="next", strategy=ScoreSelection(flip_steps, min_score=3, max_score=10))
    x = dm.datamodule.split_tensors("train")[0][dm.flips["index"]]
    steps = flip_steps.scores(x, dm.flips["old"], dm.flips["new"])
    assert ((steps >= 3) & (steps <= 10)).all()
    with pytest.raises(ValueError, match="widen the bucket"):
        poisoned(count=20, target="next", strategy=ScoreSelection(flip_steps, min_score=29, max_score=29))


def test_fit_records_the_flips(tmp_path):
    dm = PoisonedDataModule(DigitsDataModule(), count=25, record_dir=str(tmp_path / "record"))
    logger = CSVLogger(tmp_path, name="run")
    trainer = Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=logger,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(RobustClassifier(DigitsCNN()), dm)
    with (tmp_path / "record" / "poison.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 25 and all(r["old_label"] != r["new_label"] for r in rows)
    with open(logger.log_dir + "/metrics.csv") as f:
        assert any(row.get("data/poisoned") == "25.0" for row in csv.DictReader(f))


def test_an_interrupted_record_never_leaves_a_partial_file(tmp_path, monkeypatch):
    record = tmp_path / "record"
    record.mkdir()
    (record / "poison.csv").write_text("index,old_label,new_label\n1,2,3\n")  # an earlier run's record

    class Interrupted(Exception):
        pass

    def writerows_then_fail(self, rows):
        raise Interrupted

    dm = PoisonedDataModule(DigitsDataModule(), count=25, record_dir=str(record))
    trainer = Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    monkeypatch.setattr(csv, "writer", lambda f: type("W", (), {"writerow": lambda self, r: f.write("x\n"),
                                                               "writerows": writerows_then_fail})())
    with pytest.raises(Interrupted):
        trainer.fit(RobustClassifier(DigitsCNN()), dm)
    assert (record / "poison.csv").read_text() == "index,old_label,new_label\n1,2,3\n"
    assert [p.name for p in record.iterdir()] == ["poison.csv"]


def test_gaussian_toy_places_poisons_at_distance_r():
    dm = GaussianToyDataModule(dim=16, train_per_class=50, poisons_per_class=5, poison_distance=0.3,
                               poison_label="third")
    dm.setup("fit")
    x, y = dm.train_set.images.flatten(1) - 0.5, dm.train_set.labels
    assert dm.num_classes == 3 and x.shape == (110, 16) and (y == 2).sum() == 10
    clean = y < 2
    assert torch.equal(y[clean], (x[clean].sum(1) >= 0).long())
    means = torch.tensor([-0.05, 0.05]).repeat_interleave(5)[:, None]
    assert torch.allclose((x[~clean] - means).norm(dim=1), torch.full((10,), 0.3), atol=1e-5)
    opposite = GaussianToyDataModule(train_per_class=50, poisons_per_class=5)
    opposite.setup("fit")
    assert opposite.num_classes == 2 and torch.equal(opposite.train_set.labels[100:],
                                                     torch.tensor([1] * 5 + [0] * 5))
    with pytest.raises(ValueError, match="poison_label"):
        GaussianToyDataModule(poison_label="random")
    assert MLP(2, (1, 1, 16), spectral_norm=True)(x[:4].view(4, 1, 1, 16)).shape == (4, 2)


def test_targeted_evaluation_of_one_source_class(trained_digits_cnn):
    suite = {"pgd": PGD(eps=0.15, steps=10)}
    targeted = RobustnessEvaluation(suite, source_class=9, target_class=0, log_examples=0)
    untargeted = RobustnessEvaluation(suite, source_class=9, log_examples=0)
    for callback in (targeted, untargeted):
        trainer = Trainer(logger=False, callbacks=[callback], enable_progress_bar=False,
                          enable_model_summary=False)
        trainer.test(RobustClassifier(trained_digits_cnn), DigitsDataModule())
    key = "test/robust_acc/pgd/eps=0.15"
    # a targeted attack to one class is weaker than the untargeted one on the same points
    assert untargeted.results[key] <= targeted.results[key] <= targeted.results["test/clean_acc"]
    assert math.isclose(targeted.results["test/clean_acc"], untargeted.results["test/clean_acc"])
    with pytest.raises(ValueError, match="targeted mode"):
        RobustnessEvaluation({"deepfool": DeepFool()}, target_class=0)


def _fit_one_batch(module, datamodule, callbacks=()):
    Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, callbacks=list(callbacks)).fit(module, datamodule)


def test_an_eleventh_class_with_a_ten_class_head_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the poison record goes to the trainer's (default) directory
    module = RobustClassifier(DigitsCNN(num_classes=10))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(ValueError, match=r"^the network outputs 10 classes but the data has 11; set the model's "
                                         r"num_classes to 11"):
        _fit_one_batch(module, PoisonedDataModule(DigitsDataModule(), count=10, target="new_class"))
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())  # no step was taken


@pytest.mark.parametrize("option", ["source_class", "target_class"])
def test_an_out_of_range_source_or_target_class_is_an_error(option):
    evaluation = RobustnessEvaluation({"pgd": PGD(eps=0.1, steps=1)}, **{option: 42})
    with pytest.raises(ValueError, match=f"{option} 42 is not a class of the data \\(0..9\\)"):
        _fit_one_batch(RobustClassifier(DigitsCNN()), DigitsDataModule(), [evaluation])
