"""Hardening (issue 11), data faults and Planetoid's pickles: one row per damaged or hostile data file.

Every row runs ``sslbench run`` on a copy of a data set in its real layout under ``{tmp}/data`` (tiny
synthetic files, or a copy of Cora's raw folder) with one fault, and expects exit 2, one line naming the
file and what is wrong, no record under ``out/`` and no decoded-array cache entry. The unit tests below the
table check the cache's atomicity, the checksum memo and the restricted unpickler directly.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from hardening import Case, check_case
from PIL import Image

from sslbench.data import load_dataset
from sslbench.data.base import DataFileError
from sslbench.data.fingerprint import MEMO_NAME, file_sha256
from sslbench.data.graph import RestrictedUnpickler, load_pickle
from sslbench.data.image import _decoded_dir, _load_decoded, _save_decoded

CORA = SHARED_DATA / "graph" / "planetoid" / "Cora" / "raw"
needs_cora = pytest.mark.skipif(not CORA.is_dir(), reason=f"Cora not found at {CORA}")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
HAS_PROC_MEM = Path("/proc/self/mem").exists()
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NOTHING_WRITTEN = ("out/**/*.json", "cache/decoded/*", "cache/checked/*")
ENV = {"SSLBENCH_CACHE": "{tmp}/cache"}


def _run(suite: str, method: str = "simclr") -> tuple[str, ...]:
    return ("run", method, "--suite", suite, "--data-dir", "{tmp}/data", "--out", "{tmp}/out")


MNIST = _run("mnist-linear-small")
CIFAR = _run("cifar10-linear-small")
FOLDER = _run("imagenet100-linear-small")
FASHION = (*MNIST, "--set", "dataset.name=fashion_mnist")
CORA_RUN = _run("cora-dgi", "dgi")


class Hostile:
    """A pickle payload that creates ``marker`` when unpickled (``open(marker, "w")``): it must never exist."""

    def __init__(self, marker: str | Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ------------------------------------------------------------------ builders of damaged inputs


def _mnist_arrays(n: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), "y_train": np.arange(n) % 10,
            "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), "y_test": np.arange(10)}


def _mnist_npz(tmp: Path, compressed: bool = False, **changes) -> Path:
    """A tiny MNIST in the real layout ({data}/image/mnist.npz); ``changes`` replace (or with None drop) arrays."""
    arrays = {k: v for k, v in {**_mnist_arrays(), **changes}.items() if v is not None}
    path = tmp / "data" / "image" / "mnist.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _jpeg(size: int = 32, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def _cifar_members(bad: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """One 32x32 JPEG per class and split, CIFAR-10's tarball layout ({split}/{class}/{n}.jpg)."""
    members = {f"{s}/{c}/{i:04d}.jpg": _jpeg(seed=i) for s in ("train", "test") for i, c in enumerate(CIFAR_CLASSES)}
    return {**members, **(bad or {})}


def _tarball(tmp: Path, members: dict[str, bytes]) -> Path:
    path = tmp / "data" / "image" / "cifar10-jpg.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _cifar_folder(tmp: Path, members: dict[str, bytes]) -> None:
    for name, data in members.items():
        path = tmp / "data" / "image" / "cifar10" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _image_tree(tmp: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = tmp / "data" / "imagenet100" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _cora_copy(tmp: Path) -> Path:
    """A writable copy of Cora's raw folder under {tmp}/data (the shared one is read-only)."""
    raw = tmp / "data" / "graph" / "planetoid" / "Cora" / "raw"
    raw.mkdir(parents=True)
    for f in CORA.iterdir():
        shutil.copyfile(f, raw / f.name)
    return raw


def _cora_item(raw: Path, part: str):
    with open(raw / f"ind.cora.{part}", "rb") as f:
        with warnings.catch_warnings():  # scipy's deprecated scipy.sparse.csr module name in the real files
            warnings.simplefilter("ignore", DeprecationWarning)
            return pickle.load(f, encoding="latin1")  # the real file: trusted


def _cora_with(part: str, change) -> callable:
    """Setup: a Cora copy whose ``ind.cora.<part>`` is ``change(original)``, pickled again (protocol 4)."""
    def setup(tmp: Path) -> None:
        raw = _cora_copy(tmp)
        value = change(_cora_item(raw, part))
        (raw / f"ind.cora.{part}").write_bytes(pickle.dumps(value, protocol=4))
    return setup


def _cora_raw(part: str, write) -> callable:
    """Setup: a Cora copy whose ``ind.cora.<part>`` is replaced by ``write(path, tmp)``."""
    def setup(tmp: Path) -> None:
        raw = _cora_copy(tmp)
        write(raw / f"ind.cora.{part}", tmp)
    return setup


def _with_edge(graph):
    graph[0].append(5000)
    return graph


def _chmod0(path_of) -> callable:
    def setup(tmp: Path) -> None:
        path_of(tmp).chmod(0)
    return setup


def _mem_link(tmp: Path) -> None:
    """A file that cannot be read even by root: a link to /proc/self/mem (open succeeds, read fails with EIO)."""
    path = tmp / "data" / "image" / "mnist.npz"
    path.parent.mkdir(parents=True)
    path.symlink_to("/proc/self/mem")


def _fashion(tmp: Path, name: str, change) -> None:
    from test_datasets_registry import write_fashion_mnist

    write_fashion_mnist(tmp / "data" / "image", n_train=20, n_test=10)
    path = tmp / "data" / "image" / "FashionMNIST" / "raw" / name
    path.write_bytes(change(path.read_bytes()))


def _eurosat(tmp: Path) -> None:
    """EuroSAT's layout (eurosat/2750/<class>/*.png, no splits), one file not an image."""
    for c, name in enumerate(("AnnualCrop", "Forest", "River")):
        folder = tmp / "data" / "eurosat" / "2750" / name
        folder.mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((64, 64, 3), 40 * c + i, np.uint8)).save(folder / f"{name}_{i}.png")
    (tmp / "data" / "eurosat" / "2750" / "River" / "River_3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")


def _cifar_python_hostile(tmp: Path) -> None:
    folder = tmp / "data" / "image" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps(Hostile(tmp / "marker"), protocol=2))


def _bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _npy_as_npz(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.save(f, np.zeros((4, 28, 28), np.uint8))


def _corrupt_member(path: Path) -> None:
    """Overwrite bytes inside the first (compressed) member, keeping the zip's directory intact."""
    data = bytearray(path.read_bytes())
    data[200:400] = b"\x00" * 200
    path.write_bytes(bytes(data))


def _eval_payload(marker: Path) -> bytes:
    return b"cbuiltins\neval\n(V__import__('pathlib').Path(" + repr(str(marker)).encode() + b").touch()\ntR."


def _drop_last_line(path: Path, tmp: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))


not_as_root = pytest.mark.skipif(IS_ROOT, reason="root reads a chmod 000 file; mnist-read-error covers it")
needs_proc_mem = pytest.mark.skipif(not HAS_PROC_MEM, reason="no /proc/self/mem to emulate a read error")


# ------------------------------------------------------------------ the table

CASES = [
    # MNIST's npz: archive, members, keys, dtypes, shapes, labels, pickles, permissions
    Case("mnist-truncated", MNIST, 2, "mnist.npz is not a readable .npz archive (truncated or corrupt?)",
         setup=lambda t: _truncate(_mnist_npz(t)), absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-member-corrupt", MNIST, 2, "mnist.npz: array x_train cannot be read",
         setup=lambda t: _corrupt_member(_mnist_npz(t, compressed=True)), absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-not-an-archive", MNIST, 2, "mnist.npz is not an .npz archive (a zip of .npy arrays): it starts with",
         setup=lambda t: _bytes(t / "data" / "image" / "mnist.npz", b"not an archive\n" * 100),
         absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-single-npy", MNIST, 2, "mnist.npz holds a single .npy array, not an .npz archive",
         setup=lambda t: _npy_as_npz(t / "data" / "image" / "mnist.npz"), absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-missing-key", MNIST, 2, "mnist.npz has no array x_test",
         setup=lambda t: _mnist_npz(t, x_test=None), absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-wrong-dtype", MNIST, 2, "mnist.npz: x_train is float32 20 x 28 x 28, expected uint8 N x 28 x 28",
         setup=lambda t: _mnist_npz(t, x_train=np.zeros((20, 28, 28), np.float32)), absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-wrong-shape", MNIST, 2, "mnist.npz: x_test is uint8 10 x 32 x 32, expected uint8 N x 28 x 28",
         setup=lambda t: _mnist_npz(t, x_test=np.zeros((10, 32, 32), np.uint8)), absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-empty", MNIST, 2, "mnist.npz: x_train is uint8 0 x 28 x 28, expected uint8 N x 28 x 28 with N > 0",
         setup=lambda t: _mnist_npz(t, x_train=np.zeros((0, 28, 28), np.uint8), y_train=np.zeros(0, np.int64)),
         absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-labels-count", MNIST, 2, "mnist.npz: y_train is int64 19, expected 20 integer labels",
         setup=lambda t: _mnist_npz(t, y_train=np.arange(19) % 10), absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-labels-float", MNIST, 2, "mnist.npz: y_test is float64 10, expected 10 integer labels",
         setup=lambda t: _mnist_npz(t, y_test=np.arange(10.0)), absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-labels-range", MNIST, 2, "mnist.npz: y_test holds labels 1..10, expected 0..9",
         setup=lambda t: _mnist_npz(t, y_test=np.arange(1, 11)), absent=NOTHING_WRITTEN, env=ENV),
    Case("mnist-object-array-pickle", MNIST, 2, "mnist.npz: array y_train cannot be read",
         setup=lambda t: _mnist_npz(t, y_train=np.array([Hostile(t / "marker")] * 20, dtype=object)),
         absent=(*NOTHING_WRITTEN, "marker"), env=ENV),
    pytest.param(Case("mnist-unreadable", MNIST, 2, "mnist.npz cannot be read: PermissionError",
                      setup=lambda t: _chmod0(lambda u: _mnist_npz(u))(t), absent=NOTHING_WRITTEN, env=ENV),
                 marks=not_as_root),
    pytest.param(Case("mnist-read-error", MNIST, 2, "mnist.npz cannot be read: OSError: [Errno 5]",
                      setup=_mem_link, absent=NOTHING_WRITTEN, env=ENV), marks=needs_proc_mem),
    # CIFAR-10's tarball: truncated, not gzip, damaged or odd members, no class folders
    Case("cifar-tar-truncated", CIFAR, 2, "cifar10-jpg.tar.gz is not a readable tar archive (truncated or corrupt?)",
         setup=lambda t: _truncate(_tarball(t, _cifar_members())), absent=NOTHING_WRITTEN, env=ENV),
    Case("cifar-tar-not-gzip", CIFAR, 2, "cifar10-jpg.tar.gz is not a readable tar archive",
         setup=lambda t: _bytes(t / "data" / "image" / "cifar10-jpg.tar.gz", os.urandom(4096)),
         absent=NOTHING_WRITTEN, env=ENV),
    Case("cifar-tar-undecodable-image", CIFAR, 2, "cifar10-jpg.tar.gz: test/frog/0006.jpg is not a decodable image",
         setup=lambda t: _tarball(t, _cifar_members({"test/frog/0006.jpg": b"\xff\xd8\xff\xe0 not a jpeg"})),
         absent=NOTHING_WRITTEN, env=ENV),
    Case("cifar-tar-wrong-size", CIFAR, 2, "cifar10-jpg.tar.gz: train/cat/0003.jpg is 16x16, expected 32x32",
         setup=lambda t: _tarball(t, _cifar_members({"train/cat/0003.jpg": _jpeg(16)})),
         absent=NOTHING_WRITTEN, env=ENV),
    Case("cifar-tar-no-class-folders", CIFAR, 2, "cifar10-jpg.tar.gz has no train, test images in class folders",
         setup=lambda t: _tarball(t, {f"train/{i}.jpg": _jpeg() for i in range(3)}), absent=NOTHING_WRITTEN,
         env=ENV),
    # CIFAR-10 in torchvision's python layout: its pickles are read only after their official MD5s match
    Case("cifar-python-hostile-batch", CIFAR, 2, "cifar-10-batches-py is incomplete or fails its checksums",
         setup=_cifar_python_hostile, absent=(*NOTHING_WRITTEN, "marker"), env=ENV),
    # CIFAR-10 as an ImageFolder tree
    Case("cifar-folder-undecodable-image", CIFAR, 2, "cifar10: train/dog/0005.jpg is not a decodable image",
         setup=lambda t: _cifar_folder(t, _cifar_members({"train/dog/0005.jpg": b"GIF89a broken"})),
         absent=NOTHING_WRITTEN, env=ENV),
    Case("cifar-folder-split-without-classes", CIFAR, 2, "cifar10 has no train images in class folders",
         setup=lambda t: _cifar_folder(t, {**{k: v for k, v in _cifar_members().items() if k.startswith("test")},
                                           "train/0000.jpg": _jpeg()}),
         absent=NOTHING_WRITTEN, env=ENV),
    # an ImageNet-style folder read lazily (imagefolder): checked before any run
    Case("imagefolder-no-split-folders", FOLDER, 2, "imagenet100 has no split folders",
         setup=lambda t: (t / "data" / "imagenet100").mkdir(parents=True), absent=NOTHING_WRITTEN, env=ENV),
    Case("imagefolder-split-without-classes", FOLDER, 2, "imagenet100/train has no class folders",
         setup=lambda t: _image_tree(t, {"train/0.jpg": _jpeg(), "val/cat/0.jpg": _jpeg()}),
         absent=NOTHING_WRITTEN, env=ENV),
    Case("imagefolder-undecodable-image", FOLDER, 2, "imagenet100/val/dog/1.png is not a readable image",
         setup=lambda t: _image_tree(t, {"train/cat/0.jpg": _jpeg(), "train/dog/0.jpg": _jpeg(),
                                         "val/cat/0.jpg": _jpeg(), "val/dog/1.png": b"\x89PNG\r\n\x1a\n broken"}),
         absent=NOTHING_WRITTEN, env=ENV),
    # torchvision's own layouts (FashionMNIST's IDX files, EuroSAT's folder)
    Case("torchvision-idx-truncated", FASHION, 2, "/image/FashionMNIST/raw/train-images-idx3-ubyte): RuntimeError",
         setup=lambda t: _fashion(t, "train-images-idx3-ubyte", lambda b: b[: len(b) // 2]),
         absent=NOTHING_WRITTEN, env=ENV),
    Case("torchvision-idx-bad-header", FASHION, 2, "is incomplete or corrupt: its 'test' split failed (last file "
         "read: ",
         setup=lambda t: _fashion(t, "t10k-labels-idx1-ubyte", lambda b: b"\x00\x00\x08\x09" + b[4:]),
         absent=NOTHING_WRITTEN, env=ENV),
    Case("torchvision-undecodable-image", (*MNIST, "--set", "dataset.name=eurosat"), 2,
         "eurosat/2750/River/River_3.png cannot be read (a damaged image?)", setup=_eurosat,
         absent=(*NOTHING_WRITTEN, "cache/decoded/*/*.npy"), env=ENV),
    # Planetoid's pickles: hostile, damaged, of the wrong type, disagreeing with each other
    pytest.param(Case("cora-hostile-pickle", CORA_RUN, 2, "ind.cora.x: refused to unpickle io.open",
                      setup=_cora_raw("x", lambda p, t: p.write_bytes(pickle.dumps(Hostile(t / "marker"),
                                                                                   protocol=2))),
                      absent=(*NOTHING_WRITTEN, "marker"), env=ENV), marks=needs_cora),
    pytest.param(Case("cora-hostile-graph", CORA_RUN, 2, "ind.cora.graph: refused to unpickle builtins.eval",
                      setup=_cora_raw("graph", lambda p, t: p.write_bytes(_eval_payload(t / "marker"))),
                      absent=(*NOTHING_WRITTEN, "marker"), env=ENV), marks=needs_cora),
    pytest.param(Case("cora-truncated-pickle", CORA_RUN, 2, "ind.cora.allx is not a readable Planetoid pickle",
                      setup=_cora_raw("allx", lambda p, t: _truncate(p)), absent=NOTHING_WRITTEN, env=ENV),
                 marks=needs_cora),
    pytest.param(Case("cora-empty-file", CORA_RUN, 2, "ind.cora.ty is not a readable Planetoid pickle",
                      setup=_cora_raw("ty", lambda p, t: p.write_bytes(b"")), absent=NOTHING_WRITTEN, env=ENV),
                 marks=needs_cora),
    pytest.param(Case("cora-features-not-a-matrix", CORA_RUN, 2,
                      "ind.cora.tx holds a float64 array of 1 dimensions, expected a two-dimensional numeric matrix",
                      setup=_cora_with("tx", lambda v: np.zeros(5)), absent=NOTHING_WRITTEN, env=ENV),
                 marks=needs_cora),
    pytest.param(Case("cora-label-rows", CORA_RUN, 2, "ind.cora.y has 100 rows but ind.cora.x has 140",
                      setup=_cora_with("y", lambda v: v[:100]), absent=NOTHING_WRITTEN, env=ENV), marks=needs_cora),
    pytest.param(Case("cora-feature-columns", CORA_RUN, 2, "ind.cora.tx has 1432 feature columns but ind.cora.x has "
                      "1433", setup=_cora_with("tx", lambda v: v[:, :1432]), absent=NOTHING_WRITTEN, env=ENV),
                 marks=needs_cora),
    pytest.param(Case("cora-label-columns", CORA_RUN, 2, "ind.cora.ally has 6 label columns but ind.cora.y has 7",
                      setup=_cora_with("ally", lambda v: v[:, :6]), absent=NOTHING_WRITTEN, env=ENV),
                 marks=needs_cora),
    pytest.param(Case("cora-graph-node-out-of-range", CORA_RUN, 2,
                      "ind.cora.graph refers to node 5000, but the features (ind.cora.allx + ind.cora.tx) have 2708",
                      setup=_cora_with("graph", _with_edge), absent=NOTHING_WRITTEN, env=ENV), marks=needs_cora),
    pytest.param(Case("cora-graph-not-a-dict", CORA_RUN, 2, "ind.cora.graph holds a list, expected a dict",
                      setup=_cora_with("graph", lambda v: [1, 2, 3]), absent=NOTHING_WRITTEN, env=ENV),
                 marks=needs_cora),
    pytest.param(Case("cora-test-index-count", CORA_RUN, 2, "ind.cora.test.index has 999 rows but ind.cora.tx has 1000",
                      setup=_cora_raw("test.index", _drop_last_line), absent=NOTHING_WRITTEN, env=ENV),
                 marks=needs_cora),
    pytest.param(Case("cora-test-index-text", CORA_RUN, 2, "ind.cora.test.index is not a list of node indices",
                      setup=_cora_raw("test.index", lambda p, t: p.write_text("12\nabc\n")),
                      absent=NOTHING_WRITTEN, env=ENV), marks=needs_cora),
    pytest.param(Case("cora-test-index-range", CORA_RUN, 2, "ind.cora.test.index holds node 0..",
                      setup=_cora_raw("test.index", lambda p, t: p.write_text("".join(f"{i}\n" for i in range(1000)))),
                      absent=NOTHING_WRITTEN, env=ENV), marks=needs_cora),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_data_fault(case: Case, tmp_path: Path) -> None:
    check_case(dataclasses.replace(case, in_process=True), tmp_path)  # no plugins: click's runner, no start-up


def test_the_table_has_every_kind_of_fault() -> None:
    ids = [(c.values[0] if hasattr(c, "values") else c).id for c in CASES]
    assert len(ids) == len(set(ids)) >= 30
    for prefix in ("mnist-", "cifar-tar-", "cifar-folder-", "imagefolder-", "cora-"):
        assert any(i.startswith(prefix) for i in ids), prefix


# ------------------------------------------------------------------ the restricted unpickler


def test_hostile_payloads_are_live_under_plain_pickle_and_refused_here(tmp_path: Path) -> None:
    """The payloads of the table do run code under pickle.load (so the rows above test something), and
    RestrictedUnpickler refuses them before anything runs."""
    for n, payload in enumerate((pickle.dumps(Hostile(tmp_path / "a"), protocol=2), _eval_payload(tmp_path / "b"))):
        marker = tmp_path / "ab"[n]
        pickle.loads(payload)
        assert marker.exists()
        marker.unlink()
        with pytest.raises(pickle.UnpicklingError):
            RestrictedUnpickler(io.BytesIO(payload)).load()
        assert not marker.exists()
        path = tmp_path / f"ind.cora.{n}"
        path.write_bytes(payload)
        with pytest.raises(DataFileError, match=f"{path}: refused to unpickle"):
            load_pickle(path)
        assert not marker.exists()


@needs_cora
def test_restricted_unpickler_reads_the_real_files_exactly() -> None:
    """Every real Cora pickle comes out equal to what plain pickle reads (values, types, dtypes)."""
    import scipy.sparse as sp

    for part in ("x", "tx", "allx", "y", "ty", "ally", "graph"):
        ours, plain = load_pickle(CORA / f"ind.cora.{part}"), _cora_item(CORA, part)
        assert type(ours) is type(plain), part
        if sp.issparse(plain):
            assert ours.dtype == plain.dtype and (ours != plain).nnz == 0, part
        elif isinstance(plain, np.ndarray):
            assert ours.dtype == plain.dtype and np.array_equal(ours, plain), part
        else:
            assert ours == plain and ours.default_factory is list, part


@needs_cora
def test_cora_tensors_equal_torch_geometrics_reader() -> None:
    """Our reader builds the same Data as torch_geometric's read_planetoid_data (which unpickles freely): the
    trusted real files, compared tensor by tensor."""
    from torch_geometric.io import read_planetoid_data

    from sslbench.data.graph import read_planetoid

    ours, theirs = read_planetoid(CORA, "cora"), read_planetoid_data(str(CORA), "cora")
    for key in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        a, b = getattr(ours, key), getattr(theirs, key)
        assert a.dtype == b.dtype and torch.equal(a, b), key
    info, splits = load_dataset("cora", ["train", "val", "test"], SHARED_DATA)
    assert (info.num_nodes, info.num_features, info.fingerprint) == (2708, 1433, "sha256:f0f14667a61249d8")
    assert [len(splits[s]) for s in ("train", "val", "test")] == [140, 500, 1000]


# ------------------------------------------------------------------ Amazon / Coauthor npz


def _amazon(tmp: Path, **changes) -> None:
    import scipy.sparse as sp

    n, f = 30, 8
    adj = sp.random(n, n, density=0.1, format="csr", random_state=1)
    attr = sp.random(n, f, density=0.3, format="csr", random_state=2)
    arrays = dict(adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape,
                  attr_data=attr.data, attr_indices=attr.indices, attr_indptr=attr.indptr, attr_shape=attr.shape,
                  labels=np.arange(n) % 3)
    arrays = {k: v for k, v in {**arrays, **changes}.items() if v is not None}
    folder = tmp / "graph" / "amazon" / "Photo" / "raw"
    folder.mkdir(parents=True)
    np.savez(folder / "amazon_electronics_photo.npz", **arrays)


@pytest.mark.parametrize("changes, message", [
    ({"labels": None}, "has no array labels"),
    ({"labels": np.arange(29)}, "labels is int64 (29,), expected 30 integer labels"),
    ({"adj_shape": np.array([31, 31])}, "adj_shape is (31, 31) but the features (attr_shape) have 30 rows"),
    ({"attr_indptr": np.arange(5)}, "its sparse arrays do not form a matrix"),
    ({"labels": "hostile"}, "an array cannot be read"),
], ids=["missing-key", "labels-count", "adjacency-shape", "bad-csr", "object-array-pickle"])
def test_amazon_npz_faults(tmp_path: Path, changes: dict, message: str) -> None:
    if isinstance(changes.get("labels"), str):
        changes = {"labels": np.array([Hostile(tmp_path / "marker")] * 30, dtype=object)}
    _amazon(tmp_path, **changes)
    with pytest.raises(DataFileError, match=".*amazon_electronics_photo.npz.*" + _re(message)):
        load_dataset("amazon-photo", ["train"], tmp_path)
    assert not (tmp_path / "marker").exists()


def test_amazon_npz_truncated(tmp_path: Path) -> None:
    _amazon(tmp_path)
    path = tmp_path / "graph" / "amazon" / "Photo" / "raw" / "amazon_electronics_photo.npz"
    _truncate(path)
    with pytest.raises(DataFileError, match=f"{path} is not a readable .npz archive"):
        load_dataset("amazon-photo", ["train"], tmp_path)


def _re(text: str) -> str:
    import re

    return re.escape(text)


# ------------------------------------------------------------------ the decoded-array cache and the memo


def _arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {s: (rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8), np.arange(4, dtype=np.int64))
            for s in ("train", "test")}


def test_a_cache_write_that_fails_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk after the first array: no entry, no temporary folder, and the next read is a miss."""
    import sslbench.data.image as image

    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    folder = _decoded_dir("cifar10", "sha256:00ff00ff00ff00ff")
    written = []
    real_save = image._save_npy

    def failing_save(path: Path, array: np.ndarray) -> None:
        if written:
            raise OSError(28, "No space left on device")
        written.append(path)
        real_save(path, array)

    monkeypatch.setattr(image, "_save_npy", failing_save)
    assert _save_decoded(folder, _arrays(), list("abcd")) is False
    assert written and list(folder.parent.iterdir()) == []
    assert _load_decoded(folder, ["train"]) is None


def test_partial_or_damaged_cache_entries_are_misses_and_get_replaced(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    folder = _decoded_dir("cifar10", "sha256:0123456789abcdef")
    arrays = _arrays()
    assert _save_decoded(folder, arrays, list("abcd")) is True
    loaded, classes = _load_decoded(folder, ["train", "test"], 32)
    assert classes == list("abcd") and all(np.array_equal(loaded[s][0], arrays[s][0]) for s in arrays)
    # damaged: a truncated array, labels outside the classes, a wrong size, no classes.json (an old partial write)
    _truncate(folder / "train_images.npy")
    assert _load_decoded(folder, ["train"]) is None and _load_decoded(folder, ["test"], 32) is not None
    assert _save_decoded(folder, arrays, list("abcd")) is True  # replaces the damaged entry
    assert _load_decoded(folder, ["train", "test"], 32) is not None
    assert _load_decoded(folder, ["train"], 64) is None
    np.save(folder / "test_labels.npy", np.arange(4, dtype=np.int64) + 3)
    assert _load_decoded(folder, ["test"]) is None
    (folder / "classes.json").unlink()
    assert _load_decoded(folder, ["train"]) is None
    assert _save_decoded(folder, arrays, list("abcd")) is True
    assert _load_decoded(folder, ["train", "test"], 32) is not None
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no .tmp or .old left over


def test_a_damaged_tarball_cache_entry_is_decoded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    _tarball(tmp_path, _cifar_members())
    info, first = load_dataset("cifar10", ["train", "test"], tmp_path / "data")
    entry = _decoded_dir("cifar10", info.fingerprint)
    _truncate(entry / "test_images.npy", 0.3)
    _, again = load_dataset("cifar10", ["train", "test"], tmp_path / "data")
    assert all(torch.equal(first[s].images, again[s].images) for s in ("train", "test"))
    assert _load_decoded(entry, ["train", "test"], 32) is not None


def test_the_checksum_memo_ignores_damaged_entries_and_records_no_failed_read(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "f.bin"
    data.write_bytes(b"x" * 1000)
    right = file_sha256(data)
    memo = tmp_path / "cache" / MEMO_NAME
    key = next(iter(json.loads(memo.read_text())))
    for damaged in (json.dumps({key: 5}), json.dumps({key: "sha256:bogus"}), "[1, 2]", "{not json"):
        memo.write_text(damaged)
        assert file_sha256(data) == right
    if HAS_PROC_MEM:
        link = tmp_path / "unreadable"
        link.symlink_to("/proc/self/mem")
        before = memo.read_text()
        with pytest.raises(DataFileError, match=f"Cannot read {link}: OSError"):
            file_sha256(link)
        assert memo.read_text() == before
