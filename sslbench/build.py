"""The one run assembly: suite + method + overrides -> data, encoder, method, trainer; and the record skeleton.

``sslbench run`` (:mod:`sslbench.runner`), ``sslbench profile`` (each point, in its own process)
and the benchmarks all build their runs here, so a profiled step is exactly a step of a real
run:

    cfg, cls, _ = build_run_config("simclr", "digits-linear", overrides, seed)
    run = build_run(cfg, cls, RunOptions(data_root=...))      # seeded; data loaded once per process
    run.trainer.fit()   or   for batch in run.trainer.batches(10): run.trainer.train_step(batch)

The order inside :func:`build_run` (seed, encoder, method, trainer) is what makes a run's numbers
reproducible from its seed; do not reorder it.
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .components.encoders import build_encoder
from .config import RunConfig, config_hash, resolved_dict
from .data import data_root, load_dataset
from .data.base import DataInfo, Split
from .device import select_device
from .engine import Trainer, check_sync_bn
from .errors import ConfigError
from .method import Method
from .plugins import METHODS, PROTOCOLS, get_modality
from .results.records import RunRecord
from .seeding import seed_everything


@dataclass
class RunOptions:
    out_dir: Path = Path("results/runs")
    data_root: Path | None = None
    download: bool = False
    resume: bool = False
    progress: bool = True
    tracking: Any = None  # sslbench.tracking.TrackingOptions (--track); None: no tracking


@dataclass
class Run:
    """Everything one seed of one method on one suite is made of."""

    cfg: RunConfig
    method_cls: type
    info: DataInfo
    train: Split  # what the protocols train on
    test: Split | None
    pretrain: Split  # what the method pretrains on: ``train``, or ``dataset.pretrain_split``
    device: torch.device
    config_hash: str
    method: Method
    trainer: Trainer

    @property
    def modality(self) -> Any:
        return get_modality(self.info.modality)


_DATA: dict[tuple, tuple] = {}


def load_run_data(cfg: RunConfig, opts: RunOptions) -> tuple[DataInfo, dict[str, Split]]:
    """Load (and memoise for the other seeds and points) the suite's data set; raises DataNotFoundError
    before any run."""
    root = opts.data_root or data_root()
    wanted = list(dict.fromkeys(s for s in (cfg.dataset.train, cfg.dataset.test, cfg.dataset.pretrain_split) if s))
    key = (cfg.dataset.name, *wanted, str(root), repr(sorted(cfg.dataset.options.items())))
    if key not in _DATA:
        _DATA[key] = load_dataset(cfg.dataset.name, wanted, root, download=opts.download, **cfg.dataset.options)
    return _DATA[key]


def train_split(cfg: RunConfig, info: DataInfo, splits: dict[str, Split], name: str | None = None) -> Split:
    """The training split (or the split ``name``), or its fixed random subset of ``dataset.max_train_samples``
    samples (seeded independently of the run seed, so every run sees the same; the modality says how a split
    is cut)."""
    split, n = splits[name or cfg.dataset.train], cfg.dataset.max_train_samples
    if n is None or n >= len(split):
        return split
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:n].sort().values
    return get_modality(info.modality).subset(split, idx)


def pretrain_split(cfg: RunConfig, info: DataInfo, splits: dict[str, Split], train: Split | None = None) -> Split:
    """What the method pretrains on: ``dataset.pretrain_split`` when set, else the (capped) training split
    (``train``, when the caller has it already: the same object, not a second copy)."""
    if cfg.dataset.pretrain_split is None and train is not None:
        return train
    return train_split(cfg, info, splits, cfg.dataset.pretrain_split)


def build_method(cfg: RunConfig, cls: type, info: DataInfo, train: Split) -> Method:
    """The encoder and the method around it (draws from torch's global generator: seed first)."""
    encoder, dim = build_encoder(cfg.encoder, info)
    factory = functools.partial(build_encoder, cfg.encoder)  # the same architecture for other data (CMC's views)
    method = cls(cfg.method_config, encoder, dim, info, len(train), encoder_factory=factory)
    method.variant = cfg.method.partition(".")[2] or None
    return method


def build_run(cfg: RunConfig, cls: type, opts: RunOptions, checkpoint: Path | None = None,
              stop: Any = None, tracker: Any = None) -> Run:
    """Data, device, seeds, encoder, method and trainer of one run, in the order that fixes its numbers."""
    info, splits = load_run_data(cfg, opts)
    train = train_split(cfg, info, splits)
    pretrain = pretrain_split(cfg, info, splits, train)
    device = select_device(cfg.pretrain.device)
    if cfg.pretrain.threads:
        torch.set_num_threads(cfg.pretrain.threads)
    chash = config_hash(cfg)
    seed_everything(cfg.seed, cfg.pretrain.deterministic)
    method = build_method(cfg, cls, info, pretrain)
    trainer = Trainer(method, pretrain, info, cfg.views, cfg.pretrain, cfg.seed, device, checkpoint=checkpoint,
                      progress=opts.progress, config_hash=chash, stop=stop, tracker=tracker)
    return Run(cfg, cls, info, train, splits.get(cfg.dataset.test), pretrain, device, chash, trainer.method, trainer)


def check_distributed(cfg: RunConfig, opts: RunOptions, world: int) -> None:
    """Whether this run can be split over ``world`` processes (data parallel), checked before any process
    starts or joins a group: the data's modality must split its steps (graphs train full-graph and refuse),
    the global ``pretrain.batch_size`` must divide evenly, and ``pretrain.sync_bn`` needs CUDA. One line each."""
    if world <= 1:
        return
    info, _ = load_run_data(cfg, opts)
    get_modality(info.modality).check_distributed(world, cfg.pretrain)
    if cfg.pretrain.sync_bn:
        check_sync_bn(select_device(cfg.pretrain.device))


def preflight(cfg: RunConfig, cls: type, opts: RunOptions) -> None:
    """Load the data and build the encoder, the method and its view recipes once, so that a bad option
    (an encoder that does not take this modality, a method option, a view list of the wrong length)
    fails with one line before any run prints or writes anything. The run itself rebuilds all of it."""
    info, splits = load_run_data(cfg, opts)
    pretrain = pretrain_split(cfg, info, splits)
    with torch.random.fork_rng(devices=[]):
        method = build_method(cfg, cls, info, pretrain)
        get_modality(info.modality).check_views(cfg.views, method.views(cfg.views), pretrain)
    for target in cfg.dataset.targets:
        if target not in info.targets:
            raise ConfigError(f"Bad value in 'dataset.targets': {target!r} is not a label set of {info.name}; valid: "
                              f"{', '.join(info.targets) or 'none (it has one label set)'}")
    root = opts.data_root or data_root()
    for name, pcfg in cfg.protocols.items():
        PROTOCOLS.get(name)(pcfg).preflight(info, Path(root))


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def safe_component(text: str) -> str:
    """``text`` as one safe file-name component: characters other than letters, digits and ``._+-`` become
    ``_``, and leading dots go, so that no name (a plugin's method, a suite's) can climb out of ``--out``."""
    return _UNSAFE.sub("_", str(text)).lstrip(".") or "_"


def new_run_id(cfg: RunConfig, prefix: str = "", extra: str = "") -> str:
    """``<prefix><method>-<suite>[-<extra>]-s<seed>-<UTC stamp>-<6 hex>``: unique, readable, a safe file name."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    middle = f"-{extra}" if extra else f"-s{cfg.seed}"
    return safe_component(f"{prefix}{cfg.method}-{cfg.suite}{middle}-{stamp}-{uuid.uuid4().hex[:6]}")


def new_record(cfg: RunConfig, cls: type, info: DataInfo, *, run_id: str, config_hash: str,
               suite_name: str | None = None, protocol_versions: dict[str, int] | None = None,
               config: dict | None = None, status: str = "ok", **fields: Any) -> RunRecord:
    """The record skeleton every run and profile point shares: method, suite, config, seed, creation time."""
    name, _, variant = cfg.method.partition(".")
    if protocol_versions is None:
        protocol_versions = {p: PROTOCOLS.get(p).version for p in cfg.protocols}
    return RunRecord(
        run_id=run_id, status=status,
        method={"name": name, "variant": variant or None, "version": cls.version,
                "origin": METHODS.entry(name).origin},
        suite={"name": suite_name or cfg.suite, "version": cfg.suite_version, "data_fingerprint": info.fingerprint,
               "data_source": info.source, "reference": cfg.reference if suite_name is None else None,
               "protocol_versions": protocol_versions},
        config=config if config is not None else resolved_dict(cfg), config_hash=config_hash, seed=cfg.seed,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), **fields,
    )


__all__ = ["RunOptions", "Run", "safe_component", "build_run", "build_method", "load_run_data", "train_split", "pretrain_split",
           "preflight", "check_distributed",
           "new_run_id", "new_record"]
