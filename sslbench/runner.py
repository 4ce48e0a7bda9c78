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

from .build import RunOptions, build_run, load_run_data, new_record, new_run_id, safe_component
from .config import RunConfig, config_hash
from .device import select_device
from .distributed import is_main, local_only, world_size
from .engine import TrainResult
from .errors import SSLBenchError
from .interrupt import GracefulStop, Interrupted
from .locks import RunLock
from .plugins import PROTOCOLS
from .protocols.base import EvalContext
from .provenance import code_info, environment_info, hardware_info, peak_memory_mb
from .results.records import RunRecord, save_record
from .tracking import final_metrics, make_tracker


def work_dir(opts: RunOptions, cfg: RunConfig, chash: str) -> Path:
    """The run's own folder for checkpoints: one per (method, suite, config, seed), which ``--resume`` finds
    again and :class:`~sslbench.locks.RunLock` keeps to one process at a time."""
    return opts.out_dir / ".work" / safe_component(f"{cfg.method}-{cfg.suite}-{chash}-s{cfg.seed}")


def run_lock(opts: RunOptions, cfg: RunConfig) -> RunLock:
    """The lock that keeps a second identical run (same method, suite, config, seed, --out) from starting."""
    chash = config_hash(cfg)
    return RunLock(work_dir(opts, cfg, chash), f"Run {cfg.method} on {cfg.suite} seed {cfg.seed} (config {chash})")


def has_checkpoint(opts: RunOptions, cfg: RunConfig) -> bool:
    return (work_dir(opts, cfg, config_hash(cfg)) / CHECKPOINT).is_file()


def execute(cfg: RunConfig, method_cls: type, opts: RunOptions, stop: GracefulStop | None = None) -> RunRecord:
    """Run one seed of one method on one suite and save its record; returns the record. The caller holds the
    run's lock (:func:`run_lock`); ``stop`` turns SIGINT/SIGTERM into a checkpoint and :class:`Interrupted`."""
    t_start = time.perf_counter()
    chash = config_hash(cfg)
    info, _ = load_run_data(cfg, opts)
    device = select_device(cfg.pretrain.device)
    record = new_record(cfg, method_cls, info, run_id=new_run_id(cfg), config_hash=chash, code=code_info(),
                        environment=environment_info(), hardware=hardware_info(device))
    wdir = work_dir(opts, cfg, chash)
    record.world_size, record.global_batch = world_size(), cfg.pretrain.batch_size  # data parallel: W ranks
    if not opts.resume and wdir.exists() and is_main():
        shutil.rmtree(wdir)  # a fresh start; safe: the caller (rank 0) holds this run's lock
    result, unit, run, started = TrainResult(), "samples", None, False
    tracker = make_tracker(opts.tracking, opts.out_dir, enabled=is_main())  # --track; else a NullTracker
    try:
        run = build_run(cfg, method_cls, opts, checkpoint=wdir / CHECKPOINT, stop=stop, tracker=tracker)
        unit = run.trainer.unit
        if opts.resume:
            run.trainer.resume()  # a refused checkpoint is bad input: one line, exit 2, no record
        started = True
        tracker.start(record.config, record.run_id, config_hash=chash)
        result = run.trainer.fit()
        record.status, record.error = result.status, result.error
        if result.status == "ok" and is_main():  # data parallel: rank 0 evaluates alone, collectives off
            ctx = EvalContext(run.method, info, {"train": run.train, "test": run.test}, device, seed=cfg.seed,
                              data_root=opts.data_root)
            for target, tctx in [(None, ctx), *((t, ctx.retarget(t)) for t in cfg.dataset.targets)]:
                prefix = f"{target}:" if target else ""  # the primary labels unprefixed; features computed once
                for pname, pcfg in cfg.protocols.items():
                    protocol = PROTOCOLS.get(pname)(pcfg)
                    if target and not protocol.per_target:
                        continue  # it reads labels of its own: the same numbers again
                    with local_only():
                        metrics = protocol.run(tctx)
                    for mname, metric in metrics.items():
                        record.add_metric(f"{prefix}{pname}.{mname}", metric)
    except KeyboardInterrupt as e:
        why = e.reason if isinstance(e, Interrupted) else "interrupted by the user"
        if run is not None:
            result.steps, result.total_steps = run.trainer.step, run.trainer.total_steps
            why += f" at step {run.trainer.step} of {run.trainer.total_steps}"
            if run.trainer.checkpoint is not None and run.trainer.checkpoint.is_file():
                why += "; --resume continues from its checkpoint"
        record.status, record.error = "interrupted", why
        raise
    except SSLBenchError as e:
        if not started:  # bad input found while setting up (a refused checkpoint): nothing is written
            record = None
        else:
            record.status, record.error = "failed", f"{type(e).__name__}: {e}".splitlines()[0]
        raise
    except Exception as e:
        record.status, record.error = "failed", f"{type(e).__name__}: {e}".splitlines()[0]
        raise
    finally:
        if record is not None:
            _finish(record, result, device, t_start, cfg, unit)
            tracker.log_final(final_metrics(record), step=result.steps)
        tracker.close()  # a failing tracker is one warning, never an exception
        if record is not None and is_main():  # one record per run, whatever the number of ranks
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


CHECKPOINT = "checkpoint.pt"

__all__ = ["execute", "work_dir", "run_lock", "has_checkpoint"]
