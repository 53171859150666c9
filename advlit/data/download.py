"""Fetch a dataset's files into the data root where the internet is reachable:

    python -m advlit.data.download mnist [--root DIR]

MNIST, Fashion-MNIST and CIFAR-10 come through torchvision (``pip install 'advlit[vision]'``)
in the layout the datamodules read. The root defaults to ``$ADVLIT_DATA`` or ``data``."""

from __future__ import annotations

import argparse
import sys

from advlit.data.root import DATA_ENV
from advlit.data.vision import CIFAR10DataModule, FashionMNISTDataModule, MissingDataError, MNISTDataModule

DATASETS = {"mnist": MNISTDataModule, "fashionmnist": FashionMNISTDataModule, "cifar10": CIFAR10DataModule}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--root", default=None, help=f"data root (default: ${DATA_ENV} or ./data)")
    args = parser.parse_args(argv)
    data = DATASETS[args.dataset](root=args.root)
    try:
        data.fetch()
        data.load()  # the files are where the datamodule reads them
    except (MissingDataError, OSError) as err:  # no torchvision, no network, no files: one line
        print(f"advlit.data.download: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{args.dataset}: files in {data.root.resolve()}")


if __name__ == "__main__":
    main()
