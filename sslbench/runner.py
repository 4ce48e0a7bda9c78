"""One run end to end: data -> method -> pretraining -> protocols -> one atomic record.

Bad input (unknown names, bad config, missing data) raises before anything is
written. Once training starts, every outcome ends in a complete record: ``ok``,
``diverged`` (NaN/inf loss), ``failed`` (an exception, re-raised after saving) or
``interrupted`` (Ctrl-C).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from .build import RunOptions, build_run, load_run_data, new_record, new_run_id
from .config import RunConfig, config_hash
from .device import select_device
from .engine import TrainResult
from .plugins import PROTOCOLS
from .protocols.base import EvalContext
from .provenance import code_info, environment_info, hardware_info, peak_memory_mb
from .results.records import RunRecord, save_record


def work_dir(opts: RunOptions, cfg: RunConfig, chash: str) -> Path:
    return opts.out_dir / ".work" / f"{cfg.method}-{cfg.suite}-{chash}-s{cfg.seed}"


def execute(cfg: RunConfig, method_cls: type, opts: RunOptions) -> RunRecord:
    """Run one seed of one method on one suite and save its record; returns the record."""
    t_start = time.perf_counter()
    chash = config_hash(cfg)
    info, _ = load_run_data(cfg, opts)
    device = select_device(cfg.pretrain.device)
    record = new_record(cfg, method_cls, info, run_id=new_run_id(cfg), config_hash=chash, code=code_info(),
                        environment=environment_info(), hardware=hardware_info(device))
    wdir = work_dir(opts, cfg, chash)
    if not opts.resume and wdir.exists():
        shutil.rmtree(wdir)
    result, unit = TrainResult(), "samples"
    try:
        run = build_run(cfg, method_cls, opts, checkpoint=wdir / "checkpoint.pt")
        unit = run.trainer.unit
        if opts.resume:
            run.trainer.resume()
        result = run.trainer.fit()
        record.status, record.error = result.status, result.error
        if result.status == "ok":
            ctx = EvalContext(run.method, info, {"train": run.train, "test": run.test}, device, seed=cfg.seed)
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
        _finish(record, result, device, t_start, cfg, unit)
        save_record(record, opts.out_dir)
    return record


def _finish(record: RunRecord, result: TrainResult, device: torch.device, t_start: float, cfg: RunConfig,
            unit: str) -> None:
    peak, kind = peak_memory_mb(device)
    record.timing = {"wall_s": round(time.perf_counter() - t_start, 3), "pretrain_s": round(result.wall_s, 3),
                     "samples_per_s": round(result.samples_per_s, 2), "throughput_unit": f"{unit}/s",
                     "peak_memory_mb": round(peak, 1), "peak_memory_kind": kind}
    record.train = {"steps": result.steps, "total_steps": result.total_steps, "epochs": round(result.epochs, 4),
                    "final_loss": result.final_loss, "resumed_from": result.resumed_from,
                    "loss_history": result.loss_history}
    if result.early_stopping:
        record.train["early_stopping"] = result.early_stopping
    if record.status == "ok" and not record.metrics and cfg.protocols:
        record.status, record.error = "failed", "no metrics were produced"


__all__ = ["execute", "work_dir"]
