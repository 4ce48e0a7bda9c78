"""One run end to end: data -> method -> pretraining -> protocols -> one atomic record.

Bad input (unknown names, bad config, missing data) raises before anything is
written. Once training starts, every outcome ends in a complete record: ``ok``,
``diverged`` (NaN/inf loss), ``failed`` (an exception, re-raised after saving) or
``interrupted`` (Ctrl-C).
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from .components.encoders import build_encoder
from .config import RunConfig, config_hash, resolved_dict
from .data import load_dataset
from .data.base import Split
from .engine import Trainer, TrainResult, seed_everything, select_device
from .plugins import METHODS, PROTOCOLS
from .protocols.base import EvalContext
from .provenance import code_info, environment_info, hardware_info, peak_memory_mb
from .records import RunRecord, save_record


@dataclass
class RunOptions:
    out_dir: Path = Path("results/runs")
    data_root: Path | None = None
    download: bool = False
    resume: bool = False
    progress: bool = True


def subset(split: Split, n: int | None, seed: int = 0) -> Split:
    """A fixed random subset of ``n`` samples (seeded independently of the run seed, so every run sees the same)."""
    if n is None or n >= len(split):
        return split
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    if split.graph is not None:  # fewer labelled nodes; the graph itself stays whole
        return Split(labels=split.labels[idx], graph=split.graph, nodes=split.nodes[idx], extra=split.extra)
    if split.in_memory:
        return Split(labels=split.labels[idx], images=split.images[idx])
    return Split(labels=split.labels[idx], dataset=torch.utils.data.Subset(split.dataset, idx.tolist()))


_DATA: dict[tuple, tuple] = {}


def load_run_data(cfg: RunConfig, opts: RunOptions):
    """Load (and memoise for the other seeds) the suite's data set; raises DataNotFoundError before any run."""
    from .data import data_root

    root = opts.data_root or data_root()
    key = (cfg.dataset.name, cfg.dataset.train, cfg.dataset.test, str(root), repr(sorted(cfg.dataset.options.items())))
    if key not in _DATA:
        _DATA[key] = load_dataset(cfg.dataset.name, [cfg.dataset.train, cfg.dataset.test], root,
                                  download=opts.download, **cfg.dataset.options)
    return _DATA[key]


def preflight(cfg: RunConfig, method_cls: type, opts: RunOptions) -> None:
    """Load the data and build the encoder, the method and its view recipes once, so that a bad option
    (an encoder that does not take this modality, a method option, a view list of the wrong length)
    fails with one line before any run prints or writes anything. The run itself rebuilds all of it."""
    info, splits = load_run_data(cfg, opts)
    train = subset(splits[cfg.dataset.train], cfg.dataset.max_train_samples)
    with torch.random.fork_rng(devices=[]):
        encoder, dim = build_encoder(cfg.encoder, info)
        method = method_cls(cfg.method_config, encoder, dim, info, len(train))
        recipes = method.views(cfg.views)
    if train.graph is not None:
        from .views.graph import resolve_views

        resolve_views(recipes)


def work_dir(opts: RunOptions, cfg: RunConfig, chash: str) -> Path:
    return opts.out_dir / ".work" / f"{cfg.method}-{cfg.suite}-{chash}-s{cfg.seed}"


def new_run_id(cfg: RunConfig) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{cfg.method}-{cfg.suite}-s{cfg.seed}-{stamp}-{uuid.uuid4().hex[:6]}"


def execute(cfg: RunConfig, method_cls: type, opts: RunOptions) -> RunRecord:
    """Run one seed of one method on one suite and save its record; returns the record."""
    t_start = time.perf_counter()
    chash = config_hash(cfg)
    info, splits = load_run_data(cfg, opts)
    train = subset(splits[cfg.dataset.train], cfg.dataset.max_train_samples)
    test = splits[cfg.dataset.test]
    device = select_device(cfg.pretrain.device)
    if cfg.pretrain.threads:
        torch.set_num_threads(cfg.pretrain.threads)
    name = cfg.method.partition(".")[0]
    record = RunRecord(
        run_id=new_run_id(cfg), status="ok",
        method={"name": name, "variant": cfg.method.partition(".")[2] or None, "version": method_cls.version,
                "origin": METHODS.entry(name).origin},
        suite={"name": cfg.suite, "version": cfg.suite_version, "data_fingerprint": info.fingerprint,
               "data_source": info.source, "reference": cfg.reference,
               "protocol_versions": {p: PROTOCOLS.get(p).version for p in cfg.protocols}},
        config=resolved_dict(cfg), config_hash=chash, seed=cfg.seed,
        code=code_info(), environment=environment_info(), hardware=hardware_info(device),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    wdir = work_dir(opts, cfg, chash)
    if not opts.resume and wdir.exists():
        shutil.rmtree(wdir)
    result = TrainResult()
    try:
        seed_everything(cfg.seed, cfg.pretrain.deterministic)
        encoder, dim = build_encoder(cfg.encoder, info)
        method = method_cls(cfg.method_config, encoder, dim, info, len(train))
        method.variant = record.method["variant"]
        trainer = Trainer(method, train, info, cfg.views, cfg.pretrain, cfg.seed, device,
                          checkpoint=wdir / "checkpoint.pt", progress=opts.progress, config_hash=chash)
        if opts.resume:
            trainer.resume()
        result = trainer.fit()
        record.status, record.error = result.status, result.error
        if result.status == "ok":
            ctx = EvalContext(method, info, {"train": train, "test": test}, device, seed=cfg.seed)
            for pname, pcfg in cfg.protocols.items():
                for mname, metric in PROTOCOLS.get(pname)(pcfg).run(ctx).items():
                    record.add_metric(f"{pname}.{mname}", metric)
    except KeyboardInterrupt:
        record.status, record.error = "interrupted", "interrupted by the user"
        raise
    except Exception as e:
        record.status, record.error = "failed", f"{type(e).__name__}: {e}".splitlines()[0]
        raise
    finally:
        _finish(record, result, device, t_start, cfg)
        save_record(record, opts.out_dir)
    return record


def _finish(record: RunRecord, result: TrainResult, device: torch.device, t_start: float, cfg: RunConfig) -> None:
    peak, kind = peak_memory_mb(device)
    record.timing = {"wall_s": round(time.perf_counter() - t_start, 3), "pretrain_s": round(result.wall_s, 3),
                     "samples_per_s": round(result.samples_per_s, 2), "peak_memory_mb": round(peak, 1),
                     "peak_memory_kind": kind}
    record.train = {"steps": result.steps, "total_steps": result.total_steps, "epochs": round(result.epochs, 4),
                    "final_loss": result.final_loss, "resumed_from": result.resumed_from,
                    "loss_history": result.loss_history}
    if result.early_stopping:
        record.train["early_stopping"] = result.early_stopping
    if record.status == "ok" and not record.metrics and cfg.protocols:
        record.status, record.error = "failed", "no metrics were produced"


__all__ = ["execute", "load_run_data", "preflight", "RunOptions"]
