"""Image data sets: digits, MNIST, CIFAR-10/100 and any ImageNet-style folder tree.

Every loader has the signature ``load_X(root, splits, download=False, **options)`` and
returns ``(DataInfo, {split_name: Split})``. Small sets are held in memory as uint8
N x C x H x W tensors; :func:`load_imagefolder` returns a lazily decoding Dataset.
The data root may be read-only: decoded arrays are cached under ``cache_dir()``.

A file that is there but unusable (a truncated or non-gzip archive, an npz without a key or with
arrays of the wrong type or shape, an image that does not decode, an unreadable file, a split
without class folders) raises :class:`~sslbench.data.base.DataFileError`: one line naming the
file and what is wrong, before any run. A decoded-array cache entry is written into a private
temporary folder and renamed into place, so it is complete or absent.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.functional import pil_to_tensor

from ..atomic import atomic_write, atomic_write_text, install_dir
from ..errors import ConfigError, DataNotFoundError
from ..plugins import register_dataset
from .base import DataFileError, DataInfo, Split, one_line, open_npz
from .fingerprint import (
    array_fingerprint,
    combine_fingerprints,
    file_sha256,
    files_fingerprint,
    tree_fingerprint,
)
from .root import cache_dir

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (uint8 N x C x H x W, int64 N)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGIT_CLASSES = [str(d) for d in range(10)]
TRAIN_TEST = ("train", "test")
# What reading a damaged archive or array file raises (gzip's BadGzipFile is an OSError; np.load of neither
# an npz nor an npy raises ValueError; a truncated member EOFError, zlib.error or BadZipFile).
READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, tarfile.TarError)


# --------------------------------------------------------------------------- helpers


def check_splits(name: str, requested: Sequence[str], valid: Iterable[str]) -> list[str]:
    """Return the requested split names (deduplicated), or raise one line naming the valid ones."""
    requested = [requested] if isinstance(requested, str) else list(dict.fromkeys(requested))
    valid = list(valid)
    unknown = [s for s in requested if s not in valid]
    if unknown:
        raise ConfigError(
            f"{name} has no split {', '.join(repr(s) for s in unknown)}; valid splits: {', '.join(valid)}"
        )
    return requested


def _reject_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise ConfigError(f"{name} takes no options, got: {', '.join(sorted(options))}")


def mean_std_uint8(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units of uint8 N x C x H x W images (exact, via histograms)."""
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = np.bincount(images[:, c].ravel(), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = float((counts * values).sum() / total)
        var = float((counts * (values - mean) ** 2).sum() / total)
        means.append(round(mean, 4))
        stds.append(round(var**0.5, 4))
    return tuple(means), tuple(stds)


def _splits_from_arrays(arrays: Arrays, splits: list[str]) -> dict[str, Split]:
    return {
        s: Split(
            labels=torch.from_numpy(np.asarray(arrays[s][1], dtype=np.int64)),
            images=torch.from_numpy(arrays[s][0]),
        )
        for s in splits
    }


def decode_rgb(data: bytes | str | os.PathLike[str]) -> torch.Tensor:
    """Decode encoded image bytes or a file path to a uint8 3 x H x W RGB tensor (PIL as fallback)."""
    try:
        if isinstance(data, bytes | bytearray):
            return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        return decode_image(str(data), mode=ImageReadMode.RGB)
    except RuntimeError:
        source = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
        with Image.open(source) as img:
            return pil_to_tensor(img.convert("RGB"))


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _shape(array: np.ndarray) -> str:
    return f"{array.dtype} {' x '.join(map(str, array.shape)) or 'scalar'}"


# --------------------------------------------------------------------------- digits


@register_dataset("digits", "image")
def load_digits(
    root: Path, splits: Sequence[str], download: bool = False, **options: Any
) -> tuple[DataInfo, dict[str, Split]]:
    """scikit-learn's bundled digits (UCI optdigits): 1797 8x8 grey images, 10 classes.

    Pixel values 0..16 are scaled to uint8 as round(x * 255 / 16). Fixed split:
    ``train_test_split(test_size=0.3, stratify=y, random_state=0)``, giving train 1257 and
    test 540 images; each split keeps the original sample order.
    images: uint8 N x 1 x 8 x 8, labels: int64 N.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    _reject_options("digits", options)
    splits = check_splits("digits", splits, TRAIN_TEST)
    bunch = sk_load_digits()
    images = np.rint(bunch.images * 255.0 / 16.0).astype(np.uint8)[:, None]  # N x 1 x 8 x 8
    labels = bunch.target.astype(np.int64)
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(index, test_size=0.3, stratify=labels, random_state=0)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    arrays = {s: (images[i], labels[i]) for s, i in (("train", train_idx), ("test", test_idx))}
    mean, std = mean_std_uint8(arrays["train"][0])
    info = DataInfo(
        name="digits",
        modality="image",
        num_classes=10,
        classes=list(DIGIT_CLASSES),
        channels=1,
        image_size=8,
        mean=mean,
        std=std,
        fingerprint=array_fingerprint(images, labels, train_idx),
        source="sklearn.datasets.load_digits",
    )
    return info, _splits_from_arrays(arrays, splits)


# --------------------------------------------------------------------------- MNIST


MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _npz_array(z: Any, path: Path, key: str) -> np.ndarray:
    try:
        return z[key]  # allow_pickle is off: an object array is refused, not unpickled
    except READ_ERRORS as err:
        raise DataFileError(f"{path}: array {key} cannot be read (truncated or corrupt?): {one_line(err)}") from err


def _check_labels(path: Path, key: str, labels: np.ndarray, n: int, num_classes: int) -> None:
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != n:
        raise DataFileError(f"{path}: {key} is {_shape(labels)}, expected {n} integer labels")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataFileError(f"{path}: {key} holds labels {int(labels.min())}..{int(labels.max())}, "
                            f"expected 0..{num_classes - 1}")


def _mnist_from_npz(path: Path) -> Arrays:
    """MNIST's four arrays from an npz, checked: x_* uint8 N x 28 x 28, y_* N integer labels in 0..9."""
    with open_npz(path) as z:
        missing = [k for k in MNIST_KEYS if k not in z.files]
        if missing:
            raise DataFileError(f"{path} has no array {', '.join(missing)} (it holds: {', '.join(z.files) or 'none'}"
                                f"; expected {', '.join(MNIST_KEYS)})")
        arrays: Arrays = {}
        for s in TRAIN_TEST:
            x, y = _npz_array(z, path, f"x_{s}"), _npz_array(z, path, f"y_{s}")
            if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or not len(x):
                raise DataFileError(f"{path}: x_{s} is {_shape(x)}, expected uint8 N x 28 x 28 with N > 0")
            _check_labels(path, f"y_{s}", y, len(x), 10)
            arrays[s] = (x[:, None], y.astype(np.int64))
    return arrays


def _mnist_from_torchvision(base: Path, download: bool = False) -> Arrays:
    arrays = {}
    for s in TRAIN_TEST:
        ds = torchvision.datasets.MNIST(str(base), train=(s == "train"), download=download)
        arrays[s] = (ds.data.numpy()[:, None], ds.targets.numpy().astype(np.int64))
    return arrays


def _mnist_torchvision_files(base: Path) -> list[Path]:
    raw = base / "MNIST" / "raw"
    return [p for p in sorted(raw.iterdir()) if p.is_file()]


def _not_found(title: str, looked: list[Path], holding: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"{title} not found: looked for {', '.join(str(p) for p in looked)}. Pass --download to fetch it, "
        f"or point --data-dir / SSLBENCH_DATA at a folder holding {holding}."
    )


def _download_error(title: str, root: Path, err: Exception) -> DataNotFoundError:
    detail = " ".join(str(err).split())
    return DataNotFoundError(f"Could not download {title} into {root}: {type(err).__name__}: {detail}")


def _find_mnist(root: Path, download: bool) -> tuple[Arrays, str, str]:
    """Return (arrays, fingerprint, source) from the first MNIST copy found under root."""
    looked: list[Path] = []
    broken: list[str] = []
    for npz in (root / "image" / "mnist.npz", root / "mnist.npz"):
        looked.append(npz)
        if npz.is_file():
            return _mnist_from_npz(npz), file_sha256(npz), str(npz)
    for base in (root, root / "image"):
        looked.append(base / "MNIST" / "raw")
        if (base / "MNIST" / "raw").is_dir():
            try:
                arrays = _mnist_from_torchvision(base)
            except (RuntimeError, *READ_ERRORS) as err:  # incomplete or corrupt copy: keep looking
                broken.append(f"{base / 'MNIST' / 'raw'} is incomplete or corrupt: {one_line(err)}")
                continue
            return arrays, files_fingerprint(_mnist_torchvision_files(base)), str(base / "MNIST" / "raw")
    if download:
        try:
            arrays = _mnist_from_torchvision(root, download=True)
        except (OSError, RuntimeError) as err:
            raise _download_error("MNIST", root, err) from err
        return arrays, files_fingerprint(_mnist_torchvision_files(root)), str(root / "MNIST" / "raw")
    if broken:
        raise DataFileError(f"MNIST: {broken[0]}")
    raise _not_found("MNIST", looked, "mnist.npz")


@register_dataset("mnist", "image")
def load_mnist(
    root: Path, splits: Sequence[str], download: bool = False, **options: Any
) -> tuple[DataInfo, dict[str, Split]]:
    """MNIST (LeCun et al.): train 60000, test 10000 grey 28x28 digits, 10 classes.

    Read from ``{root}/image/mnist.npz`` or ``{root}/mnist.npz`` (keys x_train, y_train,
    x_test, y_test), else torchvision's ``MNIST/raw`` layout under root or root/image,
    else downloaded by torchvision when ``download`` is set.
    images: uint8 N x 1 x 28 x 28, labels: int64 N.
    """
    _reject_options("mnist", options)
    splits = check_splits("mnist", splits, TRAIN_TEST)
    arrays, fingerprint, source = _find_mnist(Path(root), download)
    mean, std = mean_std_uint8(arrays["train"][0])
    info = DataInfo(
        name="mnist",
        modality="image",
        num_classes=10,
        classes=list(DIGIT_CLASSES),
        channels=1,
        image_size=28,
        mean=mean,
        std=std,
        fingerprint=fingerprint,
        source=source,
    )
    return info, _splits_from_arrays(arrays, splits)


# --------------------------------------------------------------------------- CIFAR


@dataclass(frozen=True)
class CifarSpec:
    name: str  # "cifar10"
    title: str  # "CIFAR-10"
    num_classes: int
    tv_class: Callable[..., Any]
    tv_dir: str  # torchvision's python-pickle folder
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def tarball(self) -> str:
        return f"{self.name}-jpg.tar.gz"


CIFAR = {
    "cifar10": CifarSpec(
        "cifar10",
        "CIFAR-10",
        10,
        torchvision.datasets.CIFAR10,
        "cifar-10-batches-py",
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    ),
    "cifar100": CifarSpec(
        "cifar100",
        "CIFAR-100",
        100,
        torchvision.datasets.CIFAR100,
        "cifar-100-python",
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
    ),
}


@dataclass
class Loaded:
    """Arrays for the requested splits plus where they came from."""

    arrays: Arrays
    classes: list[str]
    fingerprint: str
    source: str


def _cifar_from_torchvision(spec: CifarSpec, base: Path, splits: list[str], download: bool = False) -> Loaded:
    arrays: Arrays = {}
    classes: list[str] = []
    for s in splits:
        ds = spec.tv_class(str(base), train=(s == "train"), download=download)
        images = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))  # N x 32 x 32 x 3 -> N x 3 x 32 x 32
        arrays[s] = (images, np.asarray(ds.targets, dtype=np.int64))
        classes = list(ds.classes)
    if not splits:  # still read the class names
        classes = list(spec.tv_class(str(base), train=False, download=download).classes)
    folder = base / spec.tv_dir
    fingerprint = files_fingerprint(p for p in folder.iterdir() if p.is_file())
    return Loaded(arrays, classes, fingerprint, str(folder))


# Decoded-array cache: <cache_dir>/decoded/<name>-<fingerprint hex>/{split}_images.npy,
# {split}_labels.npy and classes.json. An entry is written whole into a private temporary folder beside it
# (".<name>-<hex>.XXXX.tmp") and renamed into place, so a reader sees a complete entry or none; a reader
# also checks every array's type and shape and treats anything else as a miss.


def _decoded_dir(name: str, fingerprint: str) -> Path:
    return cache_dir() / "decoded" / f"{name}-{fingerprint.removeprefix('sha256:')}"


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array), binary=True)


def _save_decoded(folder: Path, arrays: Arrays, classes: list[str]) -> bool:
    """Write one cache entry atomically (see above); False when it could not be written (a full disk, a
    read-only cache: the arrays are still returned to the caller, only the cache is missed next time)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    except OSError:
        return False
    try:
        for s, (images, labels) in arrays.items():
            _save_npy(tmp / f"{s}_images.npy", images)
            _save_npy(tmp / f"{s}_labels.npy", labels)
        atomic_write_text(tmp / "classes.json", json.dumps({"classes": classes, "splits": sorted(arrays)}))
        splits = sorted(arrays)
        install_dir(tmp, folder, lambda f: _load_decoded(f, splits) is not None)
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_decoded(folder: Path, splits: list[str], size: int | None = None) -> tuple[Arrays, list[str]] | None:
    """The cached arrays of ``splits``, or None when the entry is missing, partial or damaged (any array of the
    wrong type or shape, labels outside the classes)."""
    try:
        meta = json.loads((folder / "classes.json").read_text())
        classes = [str(c) for c in meta["classes"]]
        if not isinstance(meta["splits"], list) or not set(splits) <= set(meta["splits"]):
            return None
        arrays: Arrays = {}
        for s in splits:
            images, labels = np.load(folder / f"{s}_images.npy"), np.load(folder / f"{s}_labels.npy")
            if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3
                    or (size is not None and images.shape[2:] != (size, size))
                    or labels.dtype != np.int64 or labels.shape != (len(images),)
                    or (len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)))):
                return None
            arrays[s] = (images, labels)
    except (*READ_ERRORS, KeyError, TypeError):
        return None
    return arrays, classes


def _decode_items(items: list[tuple[str, str, str, bytes]], size: int, source: Path | str = ""
                  ) -> tuple[Arrays, list[str]]:
    """Decode (split, class, file name, encoded bytes) items into per-split uint8 arrays.

    Classes are sorted alphabetically over all splits (ImageFolder convention); samples
    are ordered by (class, file name) within a split. An image that does not decode or has
    another size raises DataFileError naming ``source`` and the member.
    """
    where = f"{source}: " if source else ""
    classes = sorted({c for _, c, _, _ in items})
    index = {c: i for i, c in enumerate(classes)}
    arrays: Arrays = {}
    for split in sorted({s for s, _, _, _ in items}):
        chosen = sorted((c, n, b) for s, c, n, b in items if s == split)
        images = np.empty((len(chosen), 3, size, size), dtype=np.uint8)
        for i, (c, n, data) in enumerate(chosen):
            try:
                image = decode_rgb(data)
            except Exception as err:  # noqa: BLE001 - PIL raises many types on a damaged image
                raise DataFileError(f"{where}{split}/{c}/{n} is not a decodable image: {one_line(err)}") from err
            if tuple(image.shape[1:]) != (size, size):
                raise DataFileError(
                    f"{where}{split}/{c}/{n} is {image.shape[1]}x{image.shape[2]}, expected {size}x{size}"
                )
            images[i] = image.numpy()
        arrays[split] = (images, np.array([index[c] for c, _, _ in chosen], dtype=np.int64))
    return arrays, classes


def _split_member(name: str) -> tuple[str, str, str] | None:
    """'train/cat/0001.jpg' (optionally under one top folder) -> ('train', 'cat', '0001.jpg')."""
    parts = PurePosixPath(name).parts
    if len(parts) < 3 or not _is_image(parts[-1]):
        return None
    split, cls, fname = parts[-3:]
    return split, cls, fname


def _tar_items(path: Path) -> list[tuple[str, str, str, bytes]]:
    """Read every ``{split}/{class}/{file}`` image member of a tarball into memory (no extraction); a truncated
    or corrupt archive raises DataFileError naming it (and the last member read whole)."""
    items: list[tuple[str, str, str, bytes]] = []
    try:
        with tarfile.open(path, "r|*") as tf:
            for member in tf:
                key = _split_member(member.name) if member.isfile() else None
                if key is None:
                    continue
                f = tf.extractfile(member)
                if f is not None:
                    items.append((*key, f.read()))
    except READ_ERRORS as err:
        after = f" after {len(items)} images (last {'/'.join(items[-1][:3])})" if items else ""
        raise DataFileError(f"{path} is not a readable tar archive (truncated or corrupt?){after}: "
                            f"{one_line(err)}") from err
    return items


def _folder_items(folder: Path) -> list[tuple[str, str, str, bytes]]:
    items = []
    for split_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for cls_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for f in sorted(cls_dir.iterdir()):
                if f.is_file() and _is_image(f.name):
                    try:
                        items.append((split_dir.name, cls_dir.name, f.name, f.read_bytes()))
                    except OSError as err:
                        raise DataFileError(f"Cannot read {f}: {one_line(err)}") from err
    return items


def _decoded_cached(
    name: str, fingerprint: str, source: Path, splits: list[str], read: Callable[[], list], size: int
) -> Loaded:
    """Load decoded arrays from the cache, decoding (all splits at once) and caching on a miss."""
    folder = _decoded_dir(name, fingerprint)
    cached = _load_decoded(folder, splits, size)
    if cached is None:
        arrays, classes = _decode_items(read(), size, source)
        missing = [s for s in splits if s not in arrays]
        if missing:
            raise DataFileError(
                f"{source} has no {', '.join(missing)} images in class folders (expected {missing[0]}/<class>/"
                f"<image>); it holds {', '.join(arrays) or 'none'}"
            )
        _save_decoded(folder, arrays, classes)
        cached = {s: arrays[s] for s in splits}, classes
    arrays, classes = cached
    return Loaded(arrays, classes, fingerprint, str(source))


def _find_cifar(spec: CifarSpec, root: Path, splits: list[str], download: bool) -> Loaded:
    looked: list[Path] = []
    broken: list[str] = []
    for base in (root, root / "image"):
        looked.append(base / spec.tv_dir)
        if (base / spec.tv_dir).is_dir():
            try:  # torchvision unpickles these files only after their MD5s match the official ones
                return _cifar_from_torchvision(spec, base, splits)
            except (RuntimeError, *READ_ERRORS) as err:  # incomplete or corrupt copy: keep looking
                broken.append(f"{base / spec.tv_dir} is incomplete or fails its checksums: {one_line(err)}")
    for folder in (root / "image" / spec.name, root / spec.name):
        looked.append(folder)
        if (folder / "train").is_dir() or (folder / "test").is_dir():
            return _decoded_cached(
                spec.name, tree_fingerprint(folder), folder, splits, lambda f=folder: _folder_items(f), 32
            )
    for tarball in (root / "image" / spec.tarball, root / spec.tarball):
        looked.append(tarball)
        if tarball.is_file():
            return _decoded_cached(
                spec.name, file_sha256(tarball), tarball, splits, lambda t=tarball: _tar_items(t), 32
            )
    if download:
        try:
            return _cifar_from_torchvision(spec, root, splits, download=True)
        except (OSError, RuntimeError) as err:
            raise _download_error(spec.title, root, err) from err
    if broken:
        raise DataFileError(f"{spec.title}: {broken[0]}")
    raise _not_found(spec.title, looked, spec.tarball)


def _load_cifar(
    spec: CifarSpec, root: Path, splits: Sequence[str], download: bool, options: dict[str, Any]
) -> tuple[DataInfo, dict[str, Split]]:
    _reject_options(spec.name, options)
    splits = check_splits(spec.name, splits, TRAIN_TEST)
    loaded = _find_cifar(spec, Path(root), splits, download)
    if len(loaded.classes) != spec.num_classes:
        raise DataNotFoundError(
            f"{spec.title} at {loaded.source} has {len(loaded.classes)} classes, expected {spec.num_classes}"
        )
    info = DataInfo(
        name=spec.name,
        modality="image",
        num_classes=spec.num_classes,
        classes=loaded.classes,
        channels=3,
        image_size=32,
        mean=spec.mean,
        std=spec.std,
        fingerprint=loaded.fingerprint,
        source=loaded.source,
    )
    return info, _splits_from_arrays(loaded.arrays, splits)


@register_dataset("cifar10", "image")
def load_cifar10(
    root: Path, splits: Sequence[str], download: bool = False, **options: Any
) -> tuple[DataInfo, dict[str, Split]]:
    """CIFAR-10 (Krizhevsky 2009): train 50000, test 10000 colour 32x32 images, 10 classes.

    Sources, in order: torchvision's ``cifar-10-batches-py`` under root or root/image; an
    ImageFolder tree ``{root}/image/cifar10/{train,test}/<class>/*`` or ``{root}/cifar10/...``;
    the tarball ``cifar10-jpg.tar.gz`` in root/image or root (decoded once, then cached);
    torchvision download when ``download`` is set. Classes sorted alphabetically.
    images: uint8 N x 3 x 32 x 32, labels: int64 N.
    """
    return _load_cifar(CIFAR["cifar10"], root, splits, download, options)


@register_dataset("cifar100", "image")
def load_cifar100(
    root: Path, splits: Sequence[str], download: bool = False, **options: Any
) -> tuple[DataInfo, dict[str, Split]]:
    """CIFAR-100 (Krizhevsky 2009): train 50000, test 10000 colour 32x32 images, 100 fine classes.

    Same sources as :func:`load_cifar10` with ``cifar-100-python``, ``cifar100/`` and
    ``cifar100-jpg.tar.gz``. images: uint8 N x 3 x 32 x 32, labels: int64 N.
    """
    return _load_cifar(CIFAR["cifar100"], root, splits, download, options)


# --------------------------------------------------------------------------- ImageFolder


class ImageFolderDataset(Dataset):
    """Map-style dataset over (path, label) samples; items are (uint8 3 x H x W tensor, int label)."""

    def __init__(self, samples: list[tuple[str, int]]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            return decode_rgb(path), label
        except Exception as err:  # noqa: BLE001 - PIL raises many types on a damaged image
            raise DataFileError(f"{path} is not a decodable image: {one_line(err)}") from err


def _check_images(samples: list[tuple[str, int]], key: str) -> None:
    """Open every image's header (a few bytes; nothing is decoded) so that a file that is not an image, or cannot
    be read, fails here with its name and not in a DataLoader worker during training. Remembered in the cache
    under ``key`` (the tree's fingerprint and the splits), so a tree is checked once."""
    marker = cache_dir() / "checked" / f"imagefolder-{key.removeprefix('sha256:')}"
    if marker.is_file():
        return
    for path, _ in samples:
        try:
            with Image.open(path):  # parses the header only
                pass
        except Exception as err:  # noqa: BLE001 - PIL raises many types on a damaged image
            raise DataFileError(f"{path} is not a readable image: {one_line(err)}") from err
    try:
        atomic_write_text(marker, f"{len(samples)} images\n")
    except OSError:
        pass  # an optimisation only


def _subdirs(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _limit_per_class(samples: list[tuple[str, int]], max_per_class: int | None) -> list[tuple[str, int]]:
    if max_per_class is None:
        return samples
    seen: dict[int, int] = {}
    kept = []
    for path, label in samples:
        if seen.get(label, 0) < max_per_class:
            seen[label] = seen.get(label, 0) + 1
            kept.append((path, label))
    return kept


def _floats(name: str, value: Sequence[float]) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"imagefolder option {name} must be a list of numbers, got {value!r}") from err


@register_dataset("imagefolder", "image")
def load_imagefolder(
    root: Path,
    splits: Sequence[str],
    download: bool = False,
    *,
    path: str | os.PathLike[str] | None = None,
    image_size: int = 224,
    max_per_class: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    name: str = "imagefolder",
    **options: Any,
) -> tuple[DataInfo, dict[str, Split]]:
    """An ImageNet-style tree ``{path}/{split}/<class>/<image>``, decoded lazily per item.

    ``path`` is absolute or relative to root. Classes are the sorted union of class folders
    over all splits, so labels do not depend on which splits are asked for. ``max_per_class``
    keeps the first N images (sorted by path) per class in each split; ``image_size`` is the
    side length models should use (images keep their own size); ``name`` names the set in
    DataInfo (e.g. "imagenet100"); ``mean``/``std`` default to the ImageNet constants. Split.dataset items are
    (uint8 3 x H x W tensor, int label); ``Split.images`` is None.
    """
    if options:
        raise ConfigError(
            f"imagefolder got unknown options: {', '.join(sorted(options))} "
            "(valid: path, image_size, max_per_class, mean, std, name)"
        )
    if path is None:
        raise ConfigError("imagefolder needs the option path=<folder holding {split}/<class>/<image>>")
    if max_per_class is not None and (not isinstance(max_per_class, int) or max_per_class < 1):
        raise ConfigError(
            f"imagefolder option max_per_class must be a positive integer, got {max_per_class!r}"
        )
    folder = (Path(root) / Path(path).expanduser()).resolve()
    if not folder.is_dir():
        raise DataNotFoundError(
            f"Image folder not found: {folder} (expected {folder}/<split>/<class>/<image>)"
        )
    try:
        found = _subdirs(folder)
        if not found:
            raise DataFileError(f"Image folder {folder} has no split folders (expected {folder}/<split>/<class>/"
                                "<image>)")
        splits = check_splits(f"Image folder {folder}", splits, found)
        by_split = {s: _subdirs(folder / s) for s in found}
    except OSError as err:
        raise DataFileError(f"Cannot read {folder}: {one_line(err)}") from err
    for s in splits:
        if not by_split[s]:
            raise DataFileError(f"{folder / s} has no class folders (expected {folder / s}/<class>/<image>)")
    classes = sorted({c for names in by_split.values() for c in names})
    class_to_idx = {c: i for i, c in enumerate(classes)}
    result: dict[str, Split] = {}
    for s in splits:
        try:
            samples = make_dataset(str(folder / s), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
        except OSError as err:
            raise DataFileError(f"Cannot read {folder / s}: {one_line(err)}") from err
        samples = _limit_per_class(samples, max_per_class)
        if not samples:
            raise DataNotFoundError(
                f"No images under {folder / s} (expected <class>/<image> with {', '.join(IMG_EXTENSIONS)})"
            )
        labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
        result[s] = Split(labels=labels, dataset=ImageFolderDataset(samples), extra={"root": str(folder / s)})
    fingerprint = tree_fingerprint(folder)
    if max_per_class is not None:
        fingerprint = combine_fingerprints([fingerprint, f"max_per_class={max_per_class}"])
    _check_images([item for s in splits for item in result[s].dataset.samples],
                  combine_fingerprints([fingerprint, *splits]))
    info = DataInfo(
        name=name,
        modality="image",
        num_classes=len(classes),
        classes=classes,
        channels=3,
        image_size=int(image_size),
        mean=_floats("mean", mean),
        std=_floats("std", std),
        fingerprint=fingerprint,
        source=str(folder),
    )
    return info, result
