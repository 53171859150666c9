"""Plain ``nn.Module`` classifiers mapping [0, 1] images to logits (normalization inside)."""

from advlit.models.basicnet import BasicNet
from advlit.models.batchnorm_cnn import BatchNormCNN
from advlit.models.critic import Critic
from advlit.models.cw_cnn import CWCNN
from advlit.models.digits_cnn import DigitsCNN
from advlit.models.lenet import LeNet5
from advlit.models.linear import BinaryLinear
from advlit.models.madry_cnn import MadryCNN
from advlit.models.masking import InputQuantization, ScrambledGradient
from advlit.models.mlp import MLP
from advlit.models.nin import NiN
from advlit.models.noise import NoisyInput, ParametricNoise, PNIConv2d, PNILinear
from advlit.models.normalize import Normalize
from advlit.models.preact_resnet import PreActResNet18
from advlit.models.pretrained import Pretrained
from advlit.models.resnet import ResNet, ResNet18, ResNet20
from advlit.models.vgg import VGG11
from advlit.models.wide_resnet import WideResNet

__all__ = [
    "BasicNet", "BatchNormCNN", "BinaryLinear", "CWCNN", "Critic", "DigitsCNN", "InputQuantization",
    "LeNet5", "MadryCNN", "MLP", "NiN", "NoisyInput", "Normalize", "ParametricNoise", "PNIConv2d",
    "PNILinear", "PreActResNet18", "Pretrained", "ResNet", "ResNet18", "ResNet20",
    "ScrambledGradient", "VGG11", "WideResNet"
]
