"""The numbers the engine logs at each loss-history step: loss, learning rate, throughput, peak memory."""

from __future__ import annotations

import time
from typing import Any

import torch

from ..provenance import peak_memory_mb


class StepMeter:
    """``meter(step, loss, optimizer)`` -> ``{"train/loss", "train/lr", "train/samples_per_s",
    "train/peak_memory_mb"}``: the loss of the step just taken, the learning rate of parameter group 0 (the
    one that step used), samples per second since the previous call (or since the meter was made, at
    ``start_step``), and :func:`~sslbench.provenance.peak_memory_mb` (CUDA: ``max_memory_allocated``; CPU:
    the process's peak RSS)."""

    def __init__(self, samples_per_step: int, device: torch.device, start_step: int = 0):
        self.samples_per_step, self.device = samples_per_step, device
        self._step, self._t = start_step, time.perf_counter()

    def __call__(self, step: int, loss: float, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        now = time.perf_counter()
        rate = (step - self._step) * self.samples_per_step / max(now - self._t, 1e-9)
        self._step, self._t = step, now
        return {"train/loss": float(loss), "train/lr": float(optimizer.param_groups[0]["lr"]),
                "train/samples_per_s": rate, "train/peak_memory_mb": peak_memory_mb(self.device)[0]}


def final_metrics(record: Any) -> dict[str, float | str]:
    """What ``log_final`` gets from a run's record: each metric's value, the timing numbers, the status."""
    out: dict[str, float | str] = {name: m["value"] for name, m in (record.metrics or {}).items()}
    for key in ("wall_s", "pretrain_s", "samples_per_s", "peak_memory_mb"):
        if isinstance((record.timing or {}).get(key), (int, float)):
            out[f"timing/{key}"] = record.timing[key]
    if (record.train or {}).get("final_loss") is not None:
        out["train/final_loss"] = record.train["final_loss"]
    out["status"] = record.status
    if record.error:
        out["error"] = str(record.error)
    return out
