"""advlit: adversarial-robustness research with PyTorch Lightning."""

__version__ = "0.1.0"
