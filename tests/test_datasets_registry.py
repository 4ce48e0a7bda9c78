"""Data sets as a registry: lookups that fold case and separators, `sslbench list datasets`, plugin data sets,
torchvision sets read from their own layout (built here under tmp_path, nothing downloaded) and the
evaluation view of mixed-size image folders whatever they are called."""

from __future__ import annotations

import json
import struct
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from sslbench.data import load_dataset
from sslbench.data.torchvision_sets import TORCHVISION_DATASETS, plan_for
from sslbench.errors import ConfigError, DataNotFoundError, UnknownNameError
from sslbench.plugins import DATASETS, set_plugin_dirs

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))


def invoke(*args: str):
    """``sslbench ARGS`` in-process (click's CliRunner), wide enough that table rows do not wrap."""
    from sslbench.cli import cli  # imported here: a broken run path must not hide the data tests

    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"})


def _idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file (the MNIST format): magic (0, 0, uint8, ndim), big-endian sizes, bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def write_fashion_mnist(root: Path, n_train: int = 300, n_test: int = 100) -> dict[str, np.ndarray]:
    """torchvision's raw FashionMNIST layout, ``root/FashionMNIST/raw/*-idx?-ubyte`` (uncompressed files are
    what torchvision reads; it checks no checksum when not downloading). Each class has its own brightness and
    stripes, so a linear probe on pooled features learns it."""
    rng = np.random.default_rng(0)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 50, size=(n, 28, 28)) + 20 * labels[:, None, None]  # brightness by class
        for c in range(10):  # and stripes, every (c % 5 + 2) columns
            images[labels == c, :, :: c % 5 + 2] += 50
        images = images.clip(0, 255).astype(np.uint8)
        _idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[split] = images
        arrays[f"{split}_labels"] = labels
    return arrays


# --------------------------------------------------------------------------- registry


def test_lookup_folds_case_and_separators() -> None:
    entry = DATASETS.entry("FashionMNIST")
    assert DATASETS.entry("fashionmnist") is entry and DATASETS.entry("fashion_mnist") is entry
    assert DATASETS.entry("Fashion-MNIST") is entry and DATASETS.canonical("FASHION_MNIST") == "FashionMNIST"
    assert entry.load().modality == "image" and entry.origin == "builtin"
    # the historical names keep their spelling and their own loaders
    assert DATASETS.canonical("MNIST") == "mnist" and DATASETS.canonical("CIFAR_10") == "cifar10"
    assert DATASETS.entry("cora").load().modality == "graph"
    with pytest.raises(UnknownNameError, match=r"Unknown dataset 'fashon_mnist'\. Did you mean: FashionMNIST"):
        load_dataset("fashon_mnist", ["train"], "/nonexistent")


def test_torchvision_classification_sets_are_registered_with_derived_splits() -> None:
    names = set(DATASETS.names())
    for name in ("FashionMNIST", "KMNIST", "SVHN", "STL10", "Flowers102", "Food101", "OxfordIIITPet", "DTD",
                 "GTSRB", "EuroSAT", "Caltech101", "Country211", "FER2013"):
        assert name in names and name in TORCHVISION_DATASETS
    for name in ("CocoDetection", "VOCSegmentation", "Kinetics", "CelebA", "FakeData"):  # not classification
        assert name not in names
    import torchvision.datasets as tvd

    stl = plan_for(tvd.STL10)
    assert {"train", "test", "unlabeled", "train+unlabeled"} <= set(stl.splits)
    assert plan_for(tvd.OxfordIIITPet).splits["train"] == "trainval"  # no "train" in torchvision
    assert plan_for(tvd.Imagenette).splits["test"] == "val"  # no "test" in torchvision
    assert plan_for(tvd.Country211).splits["val"] == "valid"
    assert plan_for(tvd.KMNIST).splits == {"train": True, "test": False}
    assert plan_for(tvd.EuroSAT).split_arg is None  # no splits: a seeded one


def test_list_datasets_shows_torchvision_sets_with_origin() -> None:
    result = invoke("list", "datasets")
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "Fashion-MNIST" in lines["FashionMNIST"] and "(torchvision)" in lines["FashionMNIST"]
    assert "image" in lines["STL10"] and "builtin" in lines["STL10"]
    assert "graph" in lines["cora"] and "digits" in lines
    result = invoke("list", "datasets", "fashion_*")
    assert result.exit_code == 0 and "FashionMNIST" in result.output and "KMNIST" not in result.output
    result = invoke("list", "encoders")
    assert result.exit_code == 0, result.output
    assert "modality" in result.output and "description" in result.output


def test_plugin_folder_dataset_is_listed_and_loads(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "toy_sets.py").write_text(textwrap.dedent('''
        import torch
        from sslbench.data import DataInfo, Split
        from sslbench.plugins import register_dataset


        @register_dataset("toy-stripes-plugin", "image")
        def load_stripes(root, splits, download=False, **options):
            """Sixteen 4x4 grey stripes, two classes (a test plugin)."""
            images = torch.zeros(16, 1, 4, 4, dtype=torch.uint8)
            images[8:, :, :, 1] = 255
            labels = torch.arange(16) // 8
            info = DataInfo(name="toy-stripes-plugin", modality="image", num_classes=2, classes=["a", "b"],
                            channels=1, image_size=4, mean=(0.1,), std=(0.3,))
            return info, {s: Split(labels=labels, images=images) for s in splits}
    '''))
    try:
        result = invoke("--plugins", str(plugins), "list", "datasets", "toy*")
        assert result.exit_code == 0, result.output
        row = next(line for line in result.output.splitlines() if "toy-stripes-plugin" in line)
        origin = f"plugins:{plugins.resolve() / 'toy_sets.py'}"  # the plugin file itself
        assert "Sixteen 4x4 grey stripes" in row and origin in row
        assert DATASETS.entry("toy_stripes_plugin").origin == origin
        info, splits = load_dataset("Toy_Stripes_Plugin", ["train"], tmp_path)
        assert info.num_classes == 2 and len(splits["train"]) == 16
        assert DATASETS.entry("mnist").origin == "builtin"  # importing sslbench.data from a plugin keeps built-ins
    finally:
        set_plugin_dirs([])


# --------------------------------------------------------------------------- a torchvision set from its own layout


def test_fashion_mnist_from_torchvision_layout(tmp_path: Path) -> None:
    arrays = write_fashion_mnist(tmp_path / "data" / "image")  # under <root>/image, as mnist/cifar look too
    info, splits = load_dataset("fashion_mnist", ["train", "test"], tmp_path / "data")
    assert info.name == "FashionMNIST" and info.modality == "image"
    assert info.classes == FASHION_CLASSES and info.num_classes == 10
    assert info.channels == 1 and info.image_size == 28
    train = arrays["train"].astype(np.float64) / 255
    assert info.mean == pytest.approx((train.mean(),), abs=1e-4) and info.std == pytest.approx((train.std(),), abs=1e-4)
    assert info.source == str((tmp_path / "data" / "image" / "FashionMNIST").resolve())
    assert info.fingerprint.startswith("sha256:") and len(info.fingerprint) == 23
    for name, n in (("train", 300), ("test", 100)):
        split = splits[name]
        assert split.in_memory and split.images.dtype == torch.uint8 and tuple(split.images.shape) == (n, 1, 28, 28)
        assert np.array_equal(split.images[:, 0].numpy(), arrays[name])
        assert split.labels.dtype == torch.int64 and split.labels.tolist() == arrays[f"{name}_labels"].tolist()
    # the same data, whichever splits are asked for; another file content, another fingerprint
    again, test_only = load_dataset("FashionMNIST", ["test"], tmp_path / "data")
    assert again.fingerprint == info.fingerprint and list(test_only) == ["test"]
    raw = tmp_path / "data" / "image" / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    raw.write_bytes(raw.read_bytes()[:-1] + bytes([3]))
    assert load_dataset("FashionMNIST", ["test"], tmp_path / "data")[0].fingerprint != info.fingerprint

    with pytest.raises(ConfigError, match="valid splits: train, test"):
        load_dataset("FashionMNIST", ["val"], tmp_path / "data")
    with pytest.raises(ConfigError, match="Unknown dataset option 'colour'"):
        load_dataset("FashionMNIST", ["train"], tmp_path / "data", colour=True)
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("KMNIST", ["train"], tmp_path / "data")
    message = str(err.value)
    assert "\n" not in message and "--download" in message and "KMNIST/raw" in message
    assert str(tmp_path / "data") in message


def _rgb(size: tuple[int, int], colour: int, rng: np.random.Generator) -> Image.Image:
    pixels = rng.integers(0, 80, size=(size[1], size[0], 3)).astype(np.uint8)
    pixels[..., colour % 3] += 150
    return Image.fromarray(pixels)


def test_unsplit_fixed_size_set_is_split_and_held_in_memory(tmp_path: Path) -> None:
    """EuroSAT (ImageFolder layout, no splits, all 64x64): a seeded stratified split, decoded into memory."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(["AnnualCrop", "Forest", "River"]):
        folder = tmp_path / "eurosat" / "2750" / name
        folder.mkdir(parents=True)
        for i in range(10):
            _rgb((64, 64), c, rng).save(folder / f"{name}_{i}.png")
    info, splits = load_dataset("eurosat", ["train", "test", "all"], tmp_path)
    assert info.name == "EuroSAT" and info.classes == ["AnnualCrop", "Forest", "River"]
    assert info.channels == 3 and info.image_size == 64
    assert len(splits["train"]) == 24 and len(splits["test"]) == 6 and len(splits["all"]) == 30
    assert splits["test"].labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert splits["all"].in_memory and tuple(splits["all"].images.shape) == (30, 3, 64, 64)
    first = np.asarray(Image.open(tmp_path / "eurosat" / "2750" / "AnnualCrop" / "AnnualCrop_0.png"))
    assert np.array_equal(splits["all"].images[0].permute(1, 2, 0).numpy(), first)
    train = splits["train"].images.double() / 255  # statistics of the train split, per channel
    assert info.mean == pytest.approx(tuple(train.mean(dim=(0, 2, 3)).tolist()), abs=1e-4)
    assert info.std == pytest.approx(tuple(train.std(dim=(0, 2, 3), correction=0).tolist()), abs=1e-4)
    other = load_dataset("eurosat", ["test"], tmp_path, split_seed=1)
    assert other[0].fingerprint != info.fingerprint


def test_mixed_size_set_is_lazy(tmp_path: Path) -> None:
    """DTD (split lists, images of several sizes): a lazy split of uint8 C x H x W items."""
    rng = np.random.default_rng(0)
    labels_dir = tmp_path / "dtd" / "dtd" / "labels"
    labels_dir.mkdir(parents=True)
    for split in ("train", "val", "test"):
        lines = []
        for c, name in enumerate(["banded", "dotted"]):
            folder = tmp_path / "dtd" / "dtd" / "images" / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(3):
                file = f"{name}_{split}_{i}.png"
                _rgb((40 + 7 * i, 50 + 3 * i), c, rng).save(folder / file)
                lines.append(f"{name}/{file}")
        (labels_dir / f"{split}1.txt").write_text("\n".join(lines) + "\n")
    info, splits = load_dataset("DTD", ["train", "test"], tmp_path)
    assert info.classes == ["banded", "dotted"] and info.channels == 3
    assert info.image_size == 47  # the median shorter side of the train images (40, 47, 54)
    split = splits["test"]
    assert not split.in_memory and split.labels.tolist() == [0, 0, 0, 1, 1, 1]
    image, label = split.dataset[4]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 53, 47) and label == 1


# --------------------------------------------------------------------------- evaluation of mixed-size folders


def test_mixed_size_folder_under_any_name_evaluates(tmp_path: Path) -> None:
    """Issue 10: evaluation views resized only sets named 'imagefolder'; another name failed to batch."""
    from torchvision.transforms import v2

    from sslbench.plugins import MODALITIES
    from sslbench.views.image import eval_transform

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, cls in enumerate(["a", "b"]):
            folder = tmp_path / "tree" / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                _rgb((20 + 5 * i, 24 + 3 * i), c, rng).save(folder / f"{i}.png")
    info, splits = load_dataset("imagefolder", ["train", "test"], tmp_path, path="tree", image_size=16,
                                name="mixed-sizes", mean=[0.5] * 3, std=[0.25] * 3)
    assert info.name == "mixed-sizes"
    loader = torch.utils.data.DataLoader([splits["test"].dataset[i][0] for i in range(6)], batch_size=6,
                                         collate_fn=lambda items: torch.stack([eval_transform(info)(x) for x in items]))
    assert tuple(next(iter(loader)).shape) == (6, 3, 16, 16)
    batches = list(MODALITIES.get("image")().eval_inputs(splits["test"], info, torch.device("cpu"), 4))
    assert [tuple(b.shape) for b in batches] == [(4, 3, 16, 16), (2, 3, 16, 16)]
    # an image already at the native size below 64 pixels is only normalised, as before
    x = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    normalise_only = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.25] * 3)])
    assert torch.equal(eval_transform(info)(x), normalise_only(x))


# --------------------------------------------------------------------------- end to end


def test_run_simclr_on_a_torchvision_set(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "data", n_train=400, n_test=200)
    suite = tmp_path / "fmnist-tiny.yaml"
    suite.write_text(textwrap.dedent("""
        suite: fmnist-tiny
        version: 1
        modality: image
        description: FashionMNIST in torchvision's layout, built by the test; seconds on a CPU.
        dataset: {name: FashionMNIST, train: train, test: test, max_train_samples: 300}
        encoder: {name: cnn-small, options: {widths: [16, 32, 32]}}
        pretrain: {epochs: 1, batch_size: 100, optimizer: adamw, lr: 0.002, warmup_epochs: 0}
        views: {crop_scale: [0.5, 1.0], flip_p: 0.0, jitter_strength: 0.5, grayscale_p: 0.0, blur_p: 0.0}
        protocols:
          - linear: {epochs: 50, batch_size: 100, lr: 0.01}
        seeds: [0]
    """))
    out = tmp_path / "runs"
    result = invoke("run", "simclr", "--suite", str(suite), "--set", "pretrain.epochs=2", "--quiet", "--out", str(out),
                    "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert len(records) == 1
    record = records[0]
    assert record["status"] == "ok", record.get("error")
    assert record["suite"]["data_fingerprint"].startswith("sha256:")
    assert record["metrics"]["linear.top1"]["value"] > 50.0  # chance is 10%
