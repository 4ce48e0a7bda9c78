"""Provenance for run records: code version, software environment, hardware, peak memory."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("torch", "torchvision", "torchaudio", "timm", "kornia", "torch_geometric", "transformers", "numpy",
            "scikit-learn", "pandas")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def code_info() -> dict:
    """Git sha and dirty flag of the source tree sslbench runs from (None outside git), package version."""
    src = Path(__file__).resolve().parent.parent
    sha = dirty = None
    try:
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip() or None
        if sha:
            status = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=5).stdout
            dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"git_sha": sha, "git_dirty": dirty, "package_version": _version("sslbench")}


def environment_info() -> dict:
    env = {"python": platform.python_version()}
    for p in PACKAGES:
        env[p] = _version(p)
    env["cuda"] = torch.version.cuda
    env["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    env["torch_threads"] = torch.get_num_threads()
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_info(device: torch.device) -> dict:
    import os

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(0) if gpus else None, "gpu_count": gpus, "device": str(device)}


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """CUDA: max allocated by torch; CPU: the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10  # macOS reports bytes
    return rss_kb * scale, "cpu_peak_rss"
