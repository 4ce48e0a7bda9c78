"""The training device and its precision: ``pretrain.device`` and ``pretrain.precision``."""

from __future__ import annotations

import torch

from .errors import ConfigError


def select_device(name: str = "auto") -> torch.device:
    """``auto``: cuda if available, then mps, else cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"Bad value for 'pretrain.device': {name!r}. Valid: auto, cpu, cuda, cuda:N, mps") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("pretrain.device=cuda but no CUDA device is available; use auto or cpu")
    return dev


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA under ``auto``; fp32 (no autocast) elsewhere."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32":
        return None
    raise ConfigError(f"Bad value for 'pretrain.precision': {precision!r}. Valid: auto, fp32, bf16")


def rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose generators ``torch.random.fork_rng`` must save for work on ``device``."""
    return [device.index or 0] if device.type == "cuda" else []


__all__ = ["select_device", "autocast_dtype", "rng_devices"]
