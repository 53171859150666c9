"""Parameter counts of advlit's architectures (CIFAR-10 shapes unless noted).

    python scripts/count_parameters.py
"""

from __future__ import annotations

import torch

from advlit.models import (
    CWCNN,
    VGG11,
    BasicNet,
    LeNet5,
    NiN,
    PreActResNet18,
    ResNet18,
    ResNet20,
    WideResNet,
)

ARCHITECTURES = {
    "ResNet-20": lambda: ResNet20(),
    "NoiseNet-20 (ResNet-20, PNI)": lambda: ResNet20(pni=True),
    "ResNet-18 (BIPARO 'wide ResNet-18')": lambda: ResNet18(),
    "PreAct ResNet-18": lambda: PreActResNet18(),
    "WRN-28-10": lambda: WideResNet(28, 10),
    "WRN-34-10": lambda: WideResNet(34, 10),
    "VGG-11 (BatchNorm, linear head)": lambda: VGG11(),
    "Network in Network": lambda: NiN(),
    "BasicNet": lambda: BasicNet(),
    "LeNet-5 (MNIST)": lambda: LeNet5(),
    "C&W CNN (MNIST)": lambda: CWCNN(),
}


def main() -> None:
    print(f"{'architecture':<38}{'parameters':>14}")
    for name, build in ARCHITECTURES.items():
        model = build()
        count = sum(p.numel() for p in model.parameters())
        shape = (1, 1, 28, 28) if "MNIST" in name else (1, 3, 32, 32)
        with torch.no_grad():
            assert model.eval()(torch.rand(shape)).shape == (1, 10)
        print(f"{name:<38}{count:>14,}")


if __name__ == "__main__":
    main()
