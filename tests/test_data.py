import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from advlit.data import (
    CIFAR10DataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    MissingDataError,
    MNISTDataModule,
)
from advlit.data.formats import read_idx
from advlit.data.loading import TensorImageDataset, UnpaddedDistributedSampler, random_crop_flip
from tests.conftest import SHARED_DATA


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_files(tmp_path, gz):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (30, 28, 28))
    train_labels = rng.integers(0, 10, 30)
    write_idx(raw / "train-images-idx3-ubyte", train_images, gz)
    write_idx(raw / "train-labels-idx1-ubyte", train_labels, gz)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (7, 28, 28)), gz)
    write_idx(raw / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 7), gz)

    dm = FashionMNISTDataModule(root=str(tmp_path), val_size=10, batch_size=8)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (20, 10, 7)
    assert dm.train_set.images.dtype == torch.uint8
    assert dm.train_set.images.shape[1:] == (1, 28, 28)
    # every training image keeps its own label through the split
    for image, label in zip(dm.train_set.images, dm.train_set.labels):
        i = next(i for i in range(30) if np.array_equal(train_images[i], image[0].numpy()))
        assert label == train_labels[i]
    x, y = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.shape == (8, 1, 28, 28)


def test_idx_reader_rejects_other_files(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x09\x99" + b"\x00" * 12)
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(path)


def test_cifar10_reads_pickle_batches_and_augments(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", 4) for i in range(1, 6)] + [("test_batch", 6)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist()}
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f)
    dm = CIFAR10DataModule(root=str(tmp_path), val_size=5, batch_size=5)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (15, 5, 6)
    assert dm.test_set.images.shape == (6, 3, 32, 32)
    assert dm.input_shape == (3, 32, 32)


def test_random_crop_flip_moves_whole_images():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 32, 32)
    out = random_crop_flip(x, padding=4, flip=True)
    assert out.shape == x.shape
    # every output is the input shifted by at most 4 pixels (zero padding) and maybe flipped
    for i in range(8):
        matches = []
        for candidate in (x[i], x[i].flip(2)):
            padded = torch.nn.functional.pad(candidate, (4, 4, 4, 4))
            matches += [torch.equal(out[i], padded[:, a:a + 32, b:b + 32])
                        for a in range(9) for b in range(9)]
        assert any(matches)
    assert not torch.equal(out, x)


def test_mnist_reads_the_shared_files():
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"MNIST not found at {SHARED_DATA / 'MNIST' / 'raw'}")
    dm = MNISTDataModule(root=str(SHARED_DATA))
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (50000, 10000, 10000)
    assert torch.bincount(dm.test_set.labels).tolist()[:2] == [980, 1135]
    other = MNISTDataModule(root=str(SHARED_DATA), seed=1)
    other.setup("fit")
    assert not torch.equal(dm.val_set.labels, other.val_set.labels)


def test_missing_data_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(MissingDataError, match=str(tmp_path / "MNIST" / "raw")) as info:
        MNISTDataModule(root=str(tmp_path)).setup("fit")
    assert "advlit[vision]" in str(info.value)  # says how to fetch the files
    with pytest.raises(MissingDataError, match="cifar-10-batches-py"):
        CIFAR10DataModule(root=str(tmp_path)).setup("fit")


def test_digits_split_is_fixed_for_test_and_seeded_for_val():
    a, b = DigitsDataModule(seed=0), DigitsDataModule(seed=1)
    a.setup(), b.setup()
    assert torch.equal(a.test_set.labels, b.test_set.labels) and len(a.test_set) == 360
    assert len(a.val_set) == 180 and not torch.equal(a.val_set.images, b.val_set.images)


@pytest.mark.parametrize("n,world", [(11, 2), (10, 3), (5, 8)])
def test_unpadded_sampler_covers_every_sample_once(n, world):
    dataset = TensorImageDataset(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.zeros(n))
    shards = [list(UnpaddedDistributedSampler(dataset, world, r)) for r in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(n))
    assert [len(UnpaddedDistributedSampler(dataset, world, r)) for r in range(world)] == \
        [len(s) for s in shards]


def test_bad_datamodule_arguments():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DigitsDataModule(batch_size=0)
    with pytest.raises(ValueError, match="val_size=5000 leaves no training data"):
        DigitsDataModule(val_size=5000).setup()


def test_class_subset_relabels_and_sets_num_classes():
    dm = DigitsDataModule(classes=[7, 1], val_size=20)
    dm.setup()
    assert dm.num_classes == 2
    assert set(dm.train_set.labels.tolist()) == {0, 1} and set(dm.test_set.labels.tolist()) == {0, 1}
    full = DigitsDataModule(val_size=0)
    full.setup()
    sevens = (full.test_set.labels == 7).sum().item()
    assert (dm.test_set.labels == 0).sum().item() == sevens
    with pytest.raises(ValueError, match="at least 2 distinct labels"):
        DigitsDataModule(classes=[3, 3])


def test_the_data_root_is_the_argument_else_the_environment_else_data(monkeypatch, tmp_path):
    from advlit.data.root import DATA_ENV, data_root

    monkeypatch.delenv(DATA_ENV, raising=False)
    assert data_root() == Path("data") and MNISTDataModule().root == Path("data")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert MNISTDataModule().root == tmp_path
    assert MNISTDataModule(root="elsewhere").root == Path("elsewhere")
    with pytest.raises(FileNotFoundError, match="python -m advlit.data.download mnist") as err:
        MNISTDataModule().load()
    assert "train-images-idx3-ubyte" in str(err.value) and "\n" not in str(err.value)


def test_download_without_torchvision_is_one_line(tmp_path, capsys):
    import importlib.util

    from advlit.data import download

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: this would download")
    with pytest.raises(SystemExit) as exit_info:
        download.main(["mnist", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "advlit[vision]" in err
