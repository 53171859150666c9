import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
os.environ.setdefault("ADVLIT_DATA", str(SHARED_DATA))  # the configs' default data root, in tests and CI


@pytest.fixture(scope="session")
def digits():
    """(train_x, train_y, test_x, test_y) float [0, 1] tensors of the embedded digits."""
    from advlit.data import DigitsDataModule

    dm = DigitsDataModule(val_size=0)
    tx, ty, sx, sy = dm.load()
    return tx.float() / 255, ty, sx.float() / 255, sy


class TinyBNNet(nn.Module):
    """A small CNN with BatchNorm and dropout, to check that attacks leave them alone."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(self.drop(F.relu(self.bn(self.conv(x)))).flatten(1))


def train_erm(model: nn.Module, x, y, epochs: int = 30, lr: float = 3e-3) -> nn.Module:
    """A few full-batch-ish epochs of plain ERM (for fixtures)."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(128):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained_digits_cnn(digits):
    from advlit.models import DigitsCNN

    torch.manual_seed(0)
    tx, ty, _, _ = digits
    return train_erm(DigitsCNN(), tx, ty, epochs=15)


@pytest.fixture(scope="session")
def trained_bn_net(digits):
    torch.manual_seed(0)
    tx, ty, _, _ = digits
    return train_erm(TinyBNNet(), tx, ty, epochs=10)


def accuracy(model: nn.Module, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()
