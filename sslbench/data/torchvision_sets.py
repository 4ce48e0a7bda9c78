"""Every torchvision image classification data set by its torchvision name, through one generic loader.

``FashionMNIST``, ``KMNIST``, ``SVHN``, ``STL10``, ``Flowers102``, ``Food101``, ``OxfordIIITPet``, ``DTD``,
``GTSRB``, ``EuroSAT``, ``Caltech101``, ``Country211``, ``FER2013``, ... are registered as torchvision spells
them (lookups fold case, ``_`` and ``-``: ``fashion_mnist`` works). MNIST and CIFAR-10/100 keep their own
loaders in :mod:`sslbench.data.image` (``mnist``, ``cifar10``, ``cifar100``).

What is derived, not tabulated:

- **Splits.** A constructor taking ``train: bool`` gives ``train`` and ``test``; one taking ``split`` gives the
  values its ``verify_str_arg(split, "split", ...)`` accepts (read from torchvision's source), e.g. STL-10's
  ``train``, ``test``, ``unlabeled`` (100,000 images, labels -1) and ``train+unlabeled``. Where torchvision has
  no ``train`` the canonical training split is ``trainval`` (else the first ``train-*``); where it has no
  ``test``, ``val`` (or ``valid``) is the test split; ``valid`` also answers to ``val``. A set without splits
  (EuroSAT, Caltech101, SUN397, ...) gets a seeded, stratified ``train``/``test`` split (options
  ``test_fraction``, default 0.2, and ``split_seed``, default 0) and ``all``.
- **Layout.** torchvision's own, under the data root or ``<root>/image`` (tried in that order); ``--download``
  lets torchvision fetch it into the data root.
- **Channels, size, normalisation.** From the data: a set whose images all share one size and fit in memory
  (below 4 GiB of pixels; torchvision's own in-memory arrays always) is held as uint8 N x C x H x W
  ``Split.images`` with the exact per-channel mean/std of the train split; other sets are a lazy
  ``Split.dataset`` of (uint8 C x H x W, label) items, with mean/std from a seeded sample of 512 train images
  and ``image_size`` the sample's median shorter side, at most 224 (option ``image_size``). Grey sets have one
  channel.
- **Fingerprint.** The files torchvision opened while reading the set (content hashes), plus names and sizes
  of the folders it listed (image trees read lazily), plus any non-default option.

Tabulated (cannot be derived): sets that are not single-label classification, or whose train and test classes
differ (:data:`EXCLUDED`); EMNIST's ``variant``; LSUN's and iNaturalist's split argument; test splits without
labels (:data:`TEST_ALIAS`); label readers for sets that keep no label list (:data:`LABEL_READERS`).

Any further keyword of the torchvision constructor (``partition`` for DTD, ``size`` for Imagenette, ``folds``
for STL-10, ...) is accepted as a dataset option and passed through.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import Dataset

from ..atomic import atomic_write, atomic_write_text
from ..errors import ConfigError, DataNotFoundError
from ..plugins import register_dataset
from .base import DataFileError, DataInfo, Split, one_line, stratified_split
from .fingerprint import combine_fingerprints, files_fingerprint, record_reads, tree_fingerprint
from .image import _decoded_dir, check_splits

# Not single-label image classification, or train/test hold different classes: not registered.
EXCLUDED = {
    "CelebA": "face attributes and identities",
    "Cityscapes": "segmentation",
    "Kitti": "detection",
    "SBDataset": "segmentation",
    "VOCDetection": "detection",
    "VOCSegmentation": "segmentation",
    "WIDERFace": "detection",
    "SBU": "captions",
    "LFWPairs": "face verification pairs",
    "LFWPeople": "train and test people are disjoint",
    "Omniglot": "background and evaluation alphabets are disjoint",
    "MovingMNIST": "video",
    "FakeData": "random images, no files",
    "LSUNClass": "one class",
    "DatasetFolder": "generic folder (use imagefolder)",
    "ImageFolder": "generic folder (use imagefolder)",
    "VisionDataset": "base class",
}
# Kept by sslbench.data.image under their historical names (mnist, cifar10, cifar100).
OWN_LOADERS = {"MNIST", "CIFAR10", "CIFAR100"}
NON_CLASSIFICATION_MODULES = ("torchvision.datasets._optical_flow", "torchvision.datasets._stereo_matching")


@dataclass(frozen=True)
class Quirk:
    """What cannot be read off a constructor."""

    split_arg: str | None = None  # the constructor argument that selects the split, when it is not split/train
    split_values: dict[str, str] | None = None  # our split name -> that argument's value
    fixed: dict[str, tuple[str, Any]] = field(default_factory=dict)  # our option -> (constructor kwarg, default)


QUIRKS = {
    "EMNIST": Quirk(split_arg="train", fixed={"variant": ("split", "balanced")}),
    "LSUN": Quirk(split_arg="classes", split_values={"train": "train", "val": "val", "test": "val"}),
    "INaturalist": Quirk(split_arg="version", split_values={"train": "2021_train", "train_mini": "2021_train_mini",
                                                            "test": "2021_valid", "val": "2021_valid"}),
}
# torchvision's "test" split of these has no labels: "test" means the labelled validation split.
TEST_ALIAS = {"CLEVRClassification": "val", "Places365": "val"}


def _pcam_labels(ds: Any) -> list[int]:
    import h5py

    split = ds._split
    with h5py.File(ds._base_folder / f"camelyonpatch_level_2_split_{split}_y.h5") as f:
        return [int(v) for v in np.asarray(f["y"]).reshape(-1)]


LABEL_READERS: dict[str, Callable[[Any], list]] = {
    "INaturalist": lambda ds: [int(c) for c, _ in ds.index],
    "PCAM": _pcam_labels,
}

MAX_IN_MEMORY_BYTES = 4 << 30
STATS_SAMPLES = 512
MAX_LAZY_SIZE = 224
_CTOR_RESERVED = {"self", "root", "transform", "target_transform", "transforms", "download", "loader", "split", "train"}
_OWN_OPTIONS = ("image_size", "in_memory", "test_fraction", "split_seed")
GREY_MODES = {"1", "L", "I", "I;16", "F"}


# --------------------------------------------------------------------------- what a class offers


def _init_params(cls: type) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(cls.__init__).parameters)


def _is_classification(cls: Any) -> bool:
    if not inspect.isclass(cls) or not issubclass(cls, torchvision.datasets.VisionDataset):
        return False
    if cls.__name__ in EXCLUDED or cls.__name__ in OWN_LOADERS or cls.__module__ in NON_CLASSIFICATION_MODULES:
        return False
    params = _init_params(cls)
    if "root" not in params:
        return False
    quirk = QUIRKS.get(cls.__name__, Quirk())
    required = [n for n, p in params.items() if n not in ("self", "root") and p.default is inspect.Parameter.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                and n not in {kw for kw, _ in quirk.fixed.values()}]
    return not required  # an annotation file, a clip length, ...: not a plain image classification set


def _evaluate(node: ast.expr, cls: type) -> Any:
    """The value of a ``valid_values`` expression in torchvision's source, without executing anything: a
    literal, a module constant (``_SPLITS``), a class attribute (``self._SPLITS``, ``cls._SPLITS``), a call of
    ``tuple``/``list``/``sorted`` or ``.keys()`` on one of those, or a tuple/list of them; anything else raises
    ValueError (the class then offers no split names)."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    module = sys.modules[cls.__module__]
    if isinstance(node, ast.Name) and hasattr(module, node.id):
        return getattr(module, node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        owner = cls if node.value.id in ("self", "cls", cls.__name__) else getattr(module, node.value.id, None)
        if owner is not None and hasattr(owner, node.attr):
            return getattr(owner, node.attr)
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_evaluate(e, cls) for e in node.elts)
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("tuple", "list", "sorted") and len(node.args) == 1:
            return tuple(_evaluate(node.args[0], cls))
        if isinstance(func, ast.Attribute) and func.attr == "keys" and not node.args:
            return tuple(_evaluate(func.value, cls))
    raise ValueError(f"cannot read split names from {ast.dump(node)[:80]}")


def split_values(cls: type) -> tuple[str, ...]:
    """The values torchvision's ``verify_str_arg(split, "split", ...)`` accepts for ``cls`` (or its bases)."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("torchvision.datasets"):
            break
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func != "verify_str_arg":
                continue
            kw = {k.arg: k.value for k in node.keywords}
            arg = node.args[1] if len(node.args) > 1 else kw.get("arg")
            values = node.args[2] if len(node.args) > 2 else kw.get("valid_values")
            if isinstance(arg, ast.Constant) and arg.value == "split" and values is not None:
                try:
                    return tuple(str(v) for v in _evaluate(values, klass))
                except (ValueError, TypeError):
                    continue
    return ()


@dataclass
class Plan:
    """How our split names map onto one torchvision class's constructor."""

    name: str
    cls: type
    split_arg: str | None  # "split", "train" (bool) or another argument; None: one set, split by us
    splits: dict[str, Any]  # our split name -> the constructor value (bool for train)
    has_download: bool
    pass_through: dict[str, inspect.Parameter]


def plan_for(cls: type) -> Plan:
    name = cls.__name__
    params = _init_params(cls)
    quirk = QUIRKS.get(name, Quirk())
    if quirk.split_arg == "train" or (quirk.split_arg is None and "split" not in params and "train" in params):
        split_arg, splits = "train", {"train": True, "test": False}
    elif quirk.split_arg is not None:
        split_arg, splits = quirk.split_arg, dict(quirk.split_values or {})
    elif "split" in params:
        split_arg = "split"
        values = split_values(cls)
        if not values:
            default = params["split"].default
            values = (default,) if isinstance(default, str) else ()
        splits = {v: v for v in values}
        if "train" not in splits:
            train = "trainval" if "trainval" in splits else next((v for v in values if v.startswith("train")), None)
            if train is not None:
                splits["train"] = train
        if name in TEST_ALIAS:
            splits["test"] = TEST_ALIAS[name]
        elif "test" not in splits:
            test = "val" if "val" in splits else "valid" if "valid" in splits else None
            if test is not None:
                splits["test"] = test
        if "val" not in splits and "valid" in splits:
            splits["val"] = "valid"
    else:
        split_arg, splits = None, {"train": "train", "test": "test", "all": "all"}
    reserved = _CTOR_RESERVED | ({split_arg} if split_arg else set()) | {kw for kw, _ in quirk.fixed.values()}
    pass_through = {n: p for n, p in params.items() if n not in reserved
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return Plan(name, cls, split_arg, splits, "download" in params, pass_through)


def _describe(cls: type) -> str:
    doc = (cls.__doc__ or "").strip().split("\n")[0].strip()
    doc = re.sub(r"`([^`<]+?)\s*<[^>]*>`_+", r"\1", doc)  # `Title <url>`_ -> Title
    doc = " ".join(doc.replace("`", "").split()).rstrip(".")
    return f"{doc or cls.__name__} (torchvision)"


# --------------------------------------------------------------------------- images and labels


def to_uint8_chw(img: Any, mode: str) -> torch.Tensor:
    """A PIL image or tensor in ``mode`` ("L" or "RGB") -> uint8 C x H x W."""
    if isinstance(img, torch.Tensor):
        t = img if img.ndim == 3 else img[None]
        if t.dtype != torch.uint8:
            t = (t.float().clamp(0, 1) * 255).round().to(torch.uint8) if t.is_floating_point() else t.to(torch.uint8)
        if mode == "L" and t.shape[0] == 3:
            img = Image.fromarray(t.permute(1, 2, 0).numpy())
        elif mode == "RGB" and t.shape[0] == 1:
            return t.expand(3, -1, -1).contiguous()
        else:
            return t.contiguous()
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    if img.mode != mode:
        img = img.convert(mode)
    a = np.array(img, dtype=np.uint8)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(a))


class TorchvisionImages(Dataset):
    """Map-style dataset over a torchvision data set: items are (uint8 C x H x W tensor, int label)."""

    def __init__(self, ds: Any, mode: str, labels: torch.Tensor, indices: Sequence[int] | None = None):
        self.ds, self.mode, self.labels = ds, mode, labels
        self.indices = None if indices is None else [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        j = index if self.indices is None else self.indices[index]
        return to_uint8_chw(_item(self.ds, j)[0], self.mode), int(self.labels[index])


def _item_name(ds: Any, i: int) -> str:
    """The file behind item ``i`` where torchvision keeps a list of them, else the class, index and root."""
    for attr in ("samples", "imgs", "_samples", "_image_files", "_images", "image_files", "_files"):
        value = getattr(ds, attr, None)
        if isinstance(value, (list, tuple)) and len(value) == len(ds):
            entry = value[i][0] if isinstance(value[i], tuple) and value[i] else value[i]
            if isinstance(entry, (str, os.PathLike)):
                return str(entry)
    return f"{type(ds).__name__} item {i} under {getattr(ds, 'root', '?')}"


def _item(ds: Any, i: int) -> Any:
    """``ds[i]``; a damaged image or file raises DataFileError naming it (PIL raises many types)."""
    try:
        return ds[i]
    except Exception as err:  # noqa: BLE001 - whatever a damaged file makes torchvision or PIL raise
        raise DataFileError(f"{_item_name(ds, i)} cannot be read (a damaged image?): {one_line(err)}") from err


def _label_list(ds: Any) -> list | None:
    """The labels torchvision already holds, without decoding an image; None if it keeps no such list."""
    n = len(ds)
    for attr in ("targets", "labels", "_labels", "y"):
        value = getattr(ds, attr, None)
        if value is None or isinstance(value, str):
            continue
        value = value.tolist() if hasattr(value, "tolist") else list(value)
        if len(value) == n and all(v is None or isinstance(v, int) for v in value):
            return value
    for attr in ("samples", "_samples", "imgs"):
        value = getattr(ds, attr, None)
        if isinstance(value, list) and len(value) == n and all(
                isinstance(s, tuple) and len(s) >= 2 and (s[1] is None or isinstance(s[1], int)) for s in value):
            return [s[1] for s in value]
    return None


def _labels_of(plan: Plan, ds: Any, cache: Path, key: str) -> np.ndarray:
    """int64 labels (-1 where torchvision has none) of every item, checked against the first and last item."""
    values = LABEL_READERS[plan.name](ds) if plan.name in LABEL_READERS else _label_list(ds)
    if values is not None and len(ds):
        for i in (0, len(ds) - 1):
            target = _item(ds, i)[1]
            if not (target is None and values[i] is None) and (target is None or int(target) != values[i]):
                values = None
                break
    if values is None:  # read every item once (decodes it) and keep the result in the cache
        path = cache / f"{key}_labels.npy"
        try:
            cached = np.load(path)
            if cached.dtype == np.int64 and cached.shape == (len(ds),):
                return cached
        except (OSError, ValueError, EOFError):
            pass  # missing or damaged: read again
        values = [_item(ds, i)[1] for i in range(len(ds))]
        labels = np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
        atomic_write(path, lambda f: np.save(f, labels), binary=True)
        return labels
    return np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)


def _is_grey(img: Any) -> bool:
    if isinstance(img, (torch.Tensor, np.ndarray)):
        return img.ndim == 2 or (img.ndim == 3 and img.shape[0] == 1)
    return getattr(img, "mode", "RGB") in GREY_MODES


def _array_images(ds: Any) -> np.ndarray | None:
    """torchvision's own in-memory uint8 array as N x C x H x W, if it has one matching its first item."""
    data = getattr(ds, "data", None)
    if isinstance(data, torch.Tensor):
        data = data.numpy()
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or len(data) != len(ds) or len(ds) == 0:
        return None
    first = _item(ds, 0)[0]
    item = to_uint8_chw(first, "L" if _is_grey(first) else "RGB").numpy()
    if data.ndim == 3:
        candidates = [data[:, None]]
    elif data.ndim == 4:
        candidates = [data, data.transpose(0, 3, 1, 2)]
    else:
        return None
    for c in candidates:
        if c.shape[1:] == item.shape and np.array_equal(c[0], item):
            return np.ascontiguousarray(c)
    return None


def _counts(image: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
    """Per-channel histograms (C x 256) of one uint8 C x H x W image (or N x C x H x W images), accumulated."""
    image = image if image.ndim == 4 else image[None]
    new = np.stack([np.bincount(image[:, c].ravel(), minlength=256) for c in range(image.shape[1])]).astype(np.float64)
    return new if counts is None else counts + new


def _mean_std(counts: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units from histograms, rounded to 4 digits (as image.mean_std_uint8)."""
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for row in counts:
        mean = float((row * values).sum() / row.sum())
        var = float((row * (values - mean) ** 2).sum() / row.sum())
        means.append(round(mean, 4))
        stds.append(round(var**0.5, 4))
    return tuple(means), tuple(stds)


# --------------------------------------------------------------------------- finding and reading


def _construct(plan: Plan, base: Path, value: Any, download: bool, kwargs: dict[str, Any]) -> Any:
    args = dict(kwargs)
    if plan.split_arg is not None:
        args[plan.split_arg] = value
    if plan.has_download:
        args["download"] = download
    return plan.cls(str(base), **args)


def _open(plan: Plan, root: Path, needed: list[Any], download: bool, kwargs: dict[str, Any]
          ) -> tuple[Path, dict[Any, Any], set[Path]]:
    """Construct every needed torchvision split from the first base folder that holds the set; returns the base,
    {value: dataset} and what torchvision read (files and listed folders)."""
    title = plan.name
    failures: list[tuple[Path, BaseException, Path | None]] = []
    bases = [root, root / "image"]
    if download:
        if not plan.has_download:
            raise DataNotFoundError(f"{title} cannot be downloaded by torchvision; put its files in torchvision's "
                                    f"{title} layout under {root} or {root / 'image'}")
        try:
            for value in needed:
                _construct(plan, root, value, True, kwargs)
        except Exception as err:  # noqa: BLE001 - any network or disk failure becomes one line
            detail = " ".join(str(err).split())
            raise DataNotFoundError(f"Could not download {title} into {root}: {type(err).__name__}: {detail}") from err
        bases = [root]
    for base in bases:
        with record_reads() as reads:
            try:
                first = _construct(plan, base, needed[0], False, kwargs)
            except ImportError as err:
                raise ConfigError(f"{title} needs the package '{err.name}': pip install {err.name}"
                                  if err.name else f"{title}: {err}") from err
            except (ValueError, TypeError) as err:
                if kwargs:  # a bad pass-through option
                    raise ConfigError(f"{title}: {' '.join(str(err).split())}") from err
                failures.append((base, err, reads.last_under(base)))  # no option given: the files are damaged
                continue
            except Exception as err:  # noqa: BLE001 - a damaged copy raises anything (AssertionError on an IDX header)
                failures.append((base, err, reads.last_under(base)))
                continue
            found = {needed[0]: first}
            for value in needed[1:]:
                try:
                    found[value] = _construct(plan, base, value, False, kwargs)
                except Exception as err:  # noqa: BLE001 - as above
                    last = reads.last_under(base)
                    where = f" (last file read: {last})" if last else ""
                    split = next((k for k, v in plan.splits.items() if v == value and k != "all"), value)
                    raise DataFileError(f"{title} under {base} is incomplete or corrupt: its {split!r} split failed"
                                        f"{where}: {one_line(err)}") from err
        return base, found, reads
    broken = [f for f in failures if not _absent(f[1])]
    if broken:
        base, err, last = broken[0]
        where = f" (last file read: {last})" if last else ""
        raise DataFileError(f"{title} under {base} is incomplete or corrupt{where}: {one_line(err)}")
    failures_text = [" ".join(str(err).split()) for _, err, _ in failures]
    where = getattr(plan.cls, "base_folder", None)
    if issubclass(plan.cls, torchvision.datasets.MNIST):
        where = f"{title}/raw"
    layout = f"{title}'s torchvision layout" + (f" ({where}/)" if isinstance(where, str) else "")
    hint = f" (torchvision: {failures_text[0]})" if failures_text else ""
    raise DataNotFoundError(f"{title} not found: looked for {layout} under {root} and {root / 'image'}{hint}. "
                            f"Pass --download to fetch it, or point --data-dir / SSLBENCH_DATA at a folder holding it.")


def _absent(err: BaseException) -> bool:
    """Whether torchvision's error says the set is not there (rather than there but damaged)."""
    return isinstance(err, FileNotFoundError) or "not found" in str(err).lower()


def _fingerprint_reads(base: Path, reads: set[Path], lazy: bool) -> tuple[str, str]:
    """(fingerprint, source) of what torchvision read under ``base``: the files it opened, by content, and, for a
    set whose images are read later (``lazy``), the names and sizes in the top folders it opened or listed."""
    base = base.resolve()
    files, tops = [], set()
    for p in reads:
        try:
            rel = p.relative_to(base)
        except ValueError:
            continue  # a Python module imported on the way, not data
        if p.is_file():
            files.append(p)
        if rel.parts and (p.is_dir() or len(rel.parts) > 1):
            tops.add(base / rel.parts[0])
    parts = [files_fingerprint(files)] if files else []
    if lazy or not files:
        parts += [f"{t.name}/={tree_fingerprint(t)}" for t in sorted(tops) if t.is_dir()]
    source = str(next(iter(tops))) if len(tops) == 1 else str(base)
    if not parts:
        return tree_fingerprint(base), source
    return combine_fingerprints(parts), source


@dataclass
class _Part:
    """One torchvision split: its dataset, labels and (when in memory) its images."""

    ds: Any
    labels: np.ndarray
    images: np.ndarray | None = None


def _sample(ds: Any, n: int) -> list[int]:
    k = min(n, len(ds))
    return sorted(np.random.default_rng(0).choice(len(ds), size=k, replace=False).tolist())


def _lazy_stats(ds: Any, indices: Sequence[int], cache: Path) -> dict[str, Any]:
    """Mode, sizes and mean/std of a seeded sample of a lazily read split (cached by fingerprint)."""
    path = cache / "stats.json"
    try:
        stats = json.loads(path.read_text())
        if (isinstance(stats, dict) and stats.get("mode") in ("L", "RGB") and stats.get("shapes")
                and all(isinstance(s, list) and len(s) == 2 for s in stats["shapes"])
                and len(stats.get("mean", ())) == len(stats.get("std", ())) == (1 if stats["mode"] == "L" else 3)):
            return stats
    except (OSError, ValueError, TypeError):
        pass  # missing or damaged: measure again
    sample = _sample(ds, STATS_SAMPLES) if indices is None else sorted(
        np.asarray(indices)[_sample(range(len(indices)), STATS_SAMPLES)].tolist())
    images = [_item(ds, i)[0] for i in sample]
    mode = "L" if all(_is_grey(im) for im in images) else "RGB"
    counts, shapes = None, []
    for im in images:
        t = to_uint8_chw(im, mode).numpy()
        shapes.append(list(t.shape[1:]))
        counts = _counts(t, counts)
    mean, std = _mean_std(counts)
    stats = {"mode": mode, "shapes": shapes, "mean": mean, "std": std}
    atomic_write_text(path, json.dumps(stats))
    return stats


def _decode_all(ds: Any, mode: str, shape: tuple[int, ...], cache: Path, key: str) -> np.ndarray | None:
    """Every image of ``ds`` as uint8 N x C x H x W (cached), or None as soon as one has another shape."""
    path = cache / f"{key}_images.npy"
    try:
        images = np.load(path)
        if images.dtype == np.uint8 and images.shape == (len(ds), *shape):
            return images
    except (OSError, ValueError, EOFError):
        pass  # missing or damaged: decode again
    images = np.empty((len(ds), *shape), dtype=np.uint8)
    for i in range(len(ds)):
        t = to_uint8_chw(_item(ds, i)[0], mode)
        if tuple(t.shape) != shape:
            return None
        images[i] = t.numpy()
    atomic_write(path, lambda f: np.save(f, images), binary=True)
    return images


def _option_fingerprint(options: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    return [f"{k}={options[k]!r}" for k in sorted(options) if options[k] != defaults.get(k)]


def load_torchvision(
    plan: Plan, root: Path, splits: Sequence[str], download: bool = False, **options: Any
) -> tuple[DataInfo, dict[str, Split]]:
    """Load ``splits`` of the torchvision set ``plan`` describes (see the module docstring)."""
    quirk = QUIRKS.get(plan.name, Quirk())
    valid_options = (*_OWN_OPTIONS, *quirk.fixed, *plan.pass_through)
    unknown = sorted(set(options) - set(valid_options))
    if unknown:
        raise ConfigError(f"Unknown dataset option {', '.join(repr(u) for u in unknown)} for {plan.name}. "
                          f"Valid: {', '.join(valid_options)}")
    if plan.split_arg is not None and not plan.splits:
        raise ConfigError(f"{plan.name}: could not read its split names from torchvision")
    splits = check_splits(plan.name, splits, plan.splits)
    kwargs = {kw: options.get(opt, default) for opt, (kw, default) in quirk.fixed.items()}
    kwargs.update({k: v for k, v in options.items() if k in plan.pass_through})
    defaults = {**{opt: default for opt, (_, default) in quirk.fixed.items()},
                **{k: p.default for k, p in plan.pass_through.items()},
                "image_size": None, "in_memory": None, "test_fraction": 0.2, "split_seed": 0}

    # which torchvision splits to read: the requested ones, plus train (for statistics) and test (so that the
    # fingerprint does not depend on which of the two a caller asks for)
    ours = list(dict.fromkeys([*splits, *(s for s in ("train", "test") if s in plan.splits)]))
    values = list(dict.fromkeys(plan.splits[s] for s in ours)) if plan.split_arg is not None else ["all"]
    base, found, reads = _open(plan, Path(root), values, download, kwargs)
    arrays = {v: _array_images(ds) for v, ds in found.items()}
    fingerprint, source = _fingerprint_reads(base, reads, lazy=any(a is None for a in arrays.values()))
    fingerprint = combine_fingerprints([fingerprint, *extra]) if (
        extra := _option_fingerprint(options, defaults)) else fingerprint
    cache = _decoded_dir(plan.name, fingerprint)

    parts = {v: _Part(ds, _labels_of(plan, ds, cache, _key(v)), arrays[v]) for v, ds in found.items()}
    if plan.split_arg is None:  # one set: our seeded, stratified split
        whole = parts["all"]
        index = stratified_split(whole.labels, float(options.get("test_fraction", 0.2)), int(options.get("split_seed", 0)))
    else:
        index = None
    train_value = plan.splits["train"] if plan.split_arg is not None else "all"
    train_part = parts[train_value]
    train_idx = index["train"] if index is not None else None

    # in memory: torchvision's own arrays, or every image decoded when all share one size and fit
    mean = std = None
    if all(p.images is not None for p in parts.values()):
        shape = tuple(train_part.images.shape[1:])
    else:
        stats = _lazy_stats(train_part.ds, train_idx, cache)
        shapes = {tuple(s) for s in stats["shapes"]}
        channels = 1 if stats["mode"] == "L" else 3
        shape = (channels, *next(iter(shapes))) if len(shapes) == 1 else None
        total = sum(len(p.ds) for p in parts.values())
        in_memory = options.get("in_memory")
        fits = shape is not None and total * int(np.prod(shape)) <= MAX_IN_MEMORY_BYTES
        if fits and in_memory is not False and not stats.get("mixed_sizes"):
            for v, part in parts.items():
                part.images = part.images if part.images is not None else _decode_all(
                    part.ds, stats["mode"], shape, cache, _key(v))
                if part.images is None:  # the sample had one size, the set has more: remember, stay lazy
                    atomic_write_text(cache / "stats.json", json.dumps({**stats, "mixed_sizes": True}))
                    break
        if not all(p.images is not None for p in parts.values()):
            for part in parts.values():
                part.images = None
            mean, std = tuple(stats["mean"]), tuple(stats["std"])
            sides = sorted(min(s) for s in stats["shapes"])
            shape = (channels, sides[len(sides) // 2], sides[len(sides) // 2])
    if mean is None:  # in memory: exact statistics of the train split
        train_images = train_part.images if train_idx is None else train_part.images[train_idx]
        mean, std = _mean_std(_counts(train_images, None))
    channels, height, width = shape
    image_size = int(options.get("image_size") or (min(height, width) if train_part.images is not None
                                                    else min(height, MAX_LAZY_SIZE)))

    labelled = train_part.labels if train_idx is None else train_part.labels[train_idx]
    classes = _classes(train_part.ds, labelled)
    result: dict[str, Split] = {}
    for s in splits:
        part = parts[plan.splits[s]] if plan.split_arg is not None else parts["all"]
        idx = index[s] if index is not None else None
        labels = torch.from_numpy(part.labels if idx is None else part.labels[idx])
        if s == "test" and len(labels) and bool((labels < 0).all()):
            raise DataNotFoundError(f"{plan.name}'s test split in {source} has no labels")
        if part.images is not None:
            images = part.images if idx is None else part.images[idx]
            result[s] = Split(labels=labels, images=torch.from_numpy(np.ascontiguousarray(images)))
        else:
            mode = "L" if channels == 1 else "RGB"
            result[s] = Split(labels=labels, dataset=TorchvisionImages(part.ds, mode, labels, idx),
                              extra={"root": source})
    info = DataInfo(
        name=plan.name,
        modality="image",
        num_classes=len(classes),
        classes=classes,
        channels=int(channels),
        image_size=image_size,
        mean=mean,
        std=std,
        fingerprint=fingerprint,
        source=source,
    )
    return info, result


def _key(value: Any) -> str:
    return str(value).replace("/", "_")


def _classes(ds: Any, labels: np.ndarray) -> list[str]:
    """torchvision's class names when it has them, else the label numbers."""
    n = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    for attr in ("classes", "categories"):
        names = getattr(ds, attr, None)
        if isinstance(names, (list, tuple)) and names and all(isinstance(c, str) for c in names) and len(names) >= n:
            return list(names)
    return [str(i) for i in range(n)]


# --------------------------------------------------------------------------- registration


def _loader(cls: type) -> Callable[..., tuple[DataInfo, dict[str, Split]]]:
    state: dict[str, Plan] = {}

    def load(root: Path, splits: Sequence[str], download: bool = False, **options: Any
             ) -> tuple[DataInfo, dict[str, Split]]:
        if "plan" not in state:
            state["plan"] = plan_for(cls)
        return load_torchvision(state["plan"], Path(root), splits, download, **options)

    load.__doc__ = f"{_describe(cls)}: torchvision.datasets.{cls.__name__}, read or downloaded in its own layout."
    load.__name__ = f"load_{cls.__name__.lower()}"
    return load


def _register_all() -> list[str]:
    names = []
    for name in sorted(torchvision.datasets.__all__):
        cls = getattr(torchvision.datasets, name, None)
        if _is_classification(cls):
            register_dataset(name, "image", _describe(cls))(_loader(cls))
            names.append(name)
    return names


TORCHVISION_DATASETS = _register_all()

__all__ = ["TORCHVISION_DATASETS", "TorchvisionImages", "load_torchvision", "plan_for", "split_values"]
