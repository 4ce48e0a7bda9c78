"""Image loaders on the real data under ../shared/data (override with SSLBENCH_DATA).

Decoded CIFAR-10 arrays go to a session-wide temporary cache (decoded once per test
session, about 5 s) unless SSLBENCH_CACHE is already set, e.g. to a persistent CI cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslbench.data import DATASETS, DataInfo, cache_dir, data_root, load_dataset
from sslbench.data.fingerprint import array_fingerprint, file_sha256, tree_fingerprint
from sslbench.errors import DataNotFoundError, SSLBenchError, UnknownNameError

SHARED = Path(
    os.environ.get("SSLBENCH_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
).resolve()


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return os.environ.get("SSLBENCH_CACHE") or str(tmp_path_factory.mktemp("sslbench-cache"))


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch, session_cache: str) -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    monkeypatch.setenv("SSLBENCH_DATA", str(SHARED))
    monkeypatch.setenv("SSLBENCH_CACHE", session_cache)
    return SHARED


@pytest.fixture(scope="session")
def cifar10(tmp_path_factory: pytest.TempPathFactory, session_cache: str):
    if not (SHARED / "image" / "cifar10-jpg.tar.gz").is_file():
        pytest.skip("cifar10-jpg.tar.gz not in shared data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLBENCH_CACHE", session_cache)
        return load_dataset("cifar10", ["train", "test"], SHARED)


def _check_in_memory(info: DataInfo, splits: dict, sizes: dict[str, int], chw: tuple[int, int, int]) -> None:
    assert info.modality == "image" and info.channels == chw[0] and info.image_size == chw[1]
    assert info.num_classes == len(info.classes) == 10
    assert info.fingerprint.startswith("sha256:") and len(info.fingerprint) == len("sha256:") + 16
    for name, n in sizes.items():
        split = splits[name]
        assert split.in_memory and len(split) == n
        assert split.images.dtype == torch.uint8 and tuple(split.images.shape) == (n, *chw)
        assert split.labels.dtype == torch.int64
        assert int(split.labels.min()) == 0 and int(split.labels.max()) == 9


def test_data_root_and_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSLBENCH_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(str(tmp_path / "cli")) == tmp_path / "cli"
    monkeypatch.delenv("SSLBENCH_DATA")
    assert data_root() == Path("~/.cache/sslbench/data").expanduser().resolve()
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "a" / "cache"))
    assert cache_dir() == tmp_path / "a" / "cache" and cache_dir().is_dir()


def test_digits_shapes_and_stratified_deterministic_split(shared: Path) -> None:
    info, splits = load_dataset("digits", ["train", "test"])
    _check_in_memory(info, splits, {"train": 1257, "test": 540}, (1, 8, 8))
    assert int(splits["train"].images.max()) == 255
    counts = {s: torch.bincount(splits[s].labels, minlength=10).double() / len(splits[s]) for s in splits}
    assert torch.allclose(counts["train"], counts["test"], atol=0.01)  # stratified
    info2, again = load_dataset("digits", ["test", "train"])
    assert torch.equal(again["test"].images, splits["test"].images)
    assert torch.equal(again["train"].labels, splits["train"].labels)
    assert info2.fingerprint == info.fingerprint


def test_mnist(shared: Path) -> None:
    info, splits = load_dataset("mnist", ["train", "test"])
    _check_in_memory(info, splits, {"train": 60000, "test": 10000}, (1, 28, 28))
    assert info.source == str(shared / "image" / "mnist.npz")
    assert info.mean[0] == pytest.approx(0.1307, abs=1e-3) and info.std[0] == pytest.approx(0.3081, abs=1e-3)
    assert torch.bincount(splits["train"].labels).min() > 5000
    assert load_dataset("mnist", ["test"])[0].fingerprint == info.fingerprint


def test_cifar10(cifar10) -> None:
    info, splits = cifar10
    _check_in_memory(info, splits, {"train": 50000, "test": 10000}, (3, 32, 32))
    assert info.classes == sorted(info.classes) and info.classes[0] == "airplane"
    assert torch.bincount(splits["train"].labels).tolist() == [5000] * 10
    assert torch.bincount(splits["test"].labels).tolist() == [1000] * 10
    mean = splits["train"].images[::10].double().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor(info.mean, dtype=torch.float64), atol=0.01)


def test_cifar10_cached_load_is_identical(
    cifar10, session_cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    info, splits = cifar10
    monkeypatch.setenv("SSLBENCH_CACHE", session_cache)
    info2, test_only = load_dataset("cifar10", ["test"], SHARED)
    assert info2.fingerprint == info.fingerprint and info2.classes == info.classes
    assert torch.equal(test_only["test"].images, splits["test"].images)
    assert any(Path(session_cache, "decoded").glob("cifar10-*/train_images.npy"))


def test_unknown_dataset_suggests_close_names() -> None:
    with pytest.raises(
        UnknownNameError, match=r"Unknown dataset 'cifar1'\. Did you mean: cifar10, cifar100(, nci1)?\?"  # nci1: TUDataset
    ):
        load_dataset("cifar1", ["train"], "/nonexistent")
    with pytest.raises(UnknownNameError, match=r"Unknown dataset 'zzzzzz'\. Valid: "):
        load_dataset("zzzzzz", ["train"], "/nonexistent")
    assert {"digits", "mnist", "cifar10", "cifar100", "imagefolder"} <= set(DATASETS.names())


def test_unknown_split_names_valid_splits() -> None:
    with pytest.raises(SSLBenchError, match="valid splits: train, test"):
        load_dataset("digits", ["val"], "/nonexistent")


def test_missing_mnist_names_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("mnist", ["train"], tmp_path, download=False)
    message = str(err.value)
    assert "\n" not in message and "--download" in message
    for looked in (tmp_path / "image" / "mnist.npz", tmp_path / "mnist.npz", tmp_path / "MNIST" / "raw"):
        assert str(looked) in message


def test_missing_cifar_names_paths(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="cifar10-jpg.tar.gz") as err:
        load_dataset("cifar10", ["train"], tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(err.value)


def test_fingerprints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    a = np.arange(12, dtype=np.uint8)
    assert array_fingerprint(a) == array_fingerprint(torch.from_numpy(a.copy()))
    assert array_fingerprint(a) != array_fingerprint(a.reshape(3, 4))
    f = tmp_path / "f.bin"
    f.write_bytes(b"hello")
    assert file_sha256(f) == "sha256:2cf24dba5fb0a30e" == file_sha256(f)  # second call from the memo
    assert (tmp_path / "cache" / "sha256-memo.json").is_file()
    assert tree_fingerprint(tmp_path).startswith("sha256:")


def _write_tree(root: Path, layout: dict[str, dict[str, int]]) -> None:
    rng = np.random.default_rng(0)
    for split, classes in layout.items():
        for cls, n in classes.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i:03d}.png")


def test_imagefolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    _write_tree(tmp_path / "tree", {"train": {"dog": 3, "cat": 2}, "val": {"cat": 1, "dog": 1}})
    info, splits = load_dataset("imagefolder", ["train", "val"], tmp_path, path="tree", image_size=64)
    assert info.classes == ["cat", "dog"] and info.num_classes == 2 and info.image_size == 64
    assert splits["train"].labels.tolist() == [0, 0, 1, 1, 1] and not splits["train"].in_memory
    image, label = splits["train"].dataset[2]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 10, 12) and label == 1
    expected = np.asarray(Image.open(tmp_path / "tree" / "train" / "dog" / "000.png"))
    assert np.array_equal(image.permute(1, 2, 0).numpy(), expected)
    assert (
        info.fingerprint
        == load_dataset("imagefolder", ["val"], tmp_path, path=tmp_path / "tree")[0].fingerprint
    )
    small_info, small = load_dataset("imagefolder", ["train"], tmp_path, path="tree", max_per_class=1)
    assert small["train"].labels.tolist() == [0, 1] and small_info.fingerprint != info.fingerprint
    with pytest.raises(SSLBenchError, match="valid splits: train, val"):
        load_dataset("imagefolder", ["test"], tmp_path, path="tree")
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "nope")):
        load_dataset("imagefolder", ["train"], tmp_path, path="nope")
