"""AttackSuite.run validates its inputs at the door: one-line ValueErrors before any attack runs."""

import pytest
import torch

from advlit.attacks import PGD
from advlit.evaluation import AttackSuite


class Refuses(torch.nn.Module):
    """Fails the test if an attack ever reaches it (validation must come first)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        if self.calls > 1:  # one clean forward pass may tell the number of classes
            raise AssertionError("an attack ran before the inputs were validated")
        return self.model(x)


@pytest.mark.parametrize("change, message", [
    (lambda x, y, i: (x[:, 0], y, i), "4-D"),
    (lambda x, y, i: (x[:0], y[:0], i[:0]), "empty batch"),
    (lambda x, y, i: (x.double() * 2, y, i), r"\[0, 1\]"),
    (lambda x, y, i: (x, y[:-1], i), "y has 7 entries for 8 images"),
    (lambda x, y, i: (x, y.float(), i), "y must be a 1-D integer tensor"),
    (lambda x, y, i: (x, y[:, None], i), "y must be a 1-D integer tensor"),
    (lambda x, y, i: (x, torch.where(y == y[0], 12, y), i), "label 12 but the model outputs 10 classes"),
    (lambda x, y, i: (x, torch.where(y == y[0], -1, y), i), "label -1"),
    (lambda x, y, i: (x, y, torch.cat([i, i])), "index has 16 entries for 8 images"),
    (lambda x, y, i: (x, y, i.float()), "index must be a 1-D integer tensor"),
    (lambda x, y, i: (x, y, torch.zeros_like(i)), "repeated entries"),
])
def test_bad_inputs_get_one_line_before_any_attack(trained_digits_cnn, digits, change, message):
    _, _, x, y = digits
    x, y, index = change(x[:8], y[:8], torch.arange(8))
    with pytest.raises(ValueError, match=message) as err:
        AttackSuite({"pgd": PGD(eps=0.1, steps=2)}).run(Refuses(trained_digits_cnn), x, y, index=index)
    assert "\n" not in str(err.value)


def test_a_target_outside_the_classes_is_refused(trained_digits_cnn, digits):
    _, _, x, y = digits
    with pytest.raises(ValueError, match="y or target has label 10"):
        AttackSuite({"pgd": PGD(eps=0.1, steps=2)}).run(Refuses(trained_digits_cnn), x[:8], y[:8], target=10)
