"""Plain ``nn.Module`` classifiers mapping [0, 1] images to logits (normalization inside)."""

from advlit.models.cw_cnn import CWCNN
from advlit.models.digits_cnn import DigitsCNN
from advlit.models.lenet import LeNet5
from advlit.models.linear import BinaryLinear
from advlit.models.mlp import MLP
from advlit.models.normalize import Normalize
from advlit.models.preact_resnet import PreActResNet18

__all__ = ["BinaryLinear", "CWCNN", "DigitsCNN", "LeNet5", "MLP", "Normalize", "PreActResNet18"]
