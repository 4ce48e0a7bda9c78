"""What ``sslbench sweep`` was asked: the grid, where records go, and how the points are executed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

EXECUTORS = ("local", "submitit", "ray")
SUBMITIT_CLUSTERS = ("auto", "slurm", "local", "debug")


@dataclass
class SweepOptions:
    methods: tuple[str, ...]
    suites: tuple[str, ...] = ("digits-linear",)
    seeds: tuple[int, ...] = ()  # empty: each suite's own seeds
    sets: tuple[str, ...] = ()
    grid: tuple[str, ...] = ()
    out_dir: Path = Path("results/runs")
    data_dir: str | None = None
    download: bool = False
    jobs: int | None = None  # local: default 1; submitit: array parallelism; ray: tasks in flight
    executor: str = "local"
    dry_run: bool = False
    quiet: bool = False
    # submitit
    slurm_partition: str | None = None
    slurm_time: str | None = None  # minutes or [D-]HH:MM[:SS]
    slurm_gpus: int | None = None  # per task (gpus_per_node of a one-task job)
    slurm_cpus: int | None = None  # per task
    slurm_mem_gb: float | None = None
    slurm_account: str | None = None
    slurm_options: tuple[str, ...] = ()  # KEY=VALUE: any other sbatch parameter submitit knows
    submitit_cluster: str = "auto"
    submitit_folder: Path | None = None  # default <out>/.sweep/submitit
    # ray
    ray_address: str | None = None  # None: RAY_ADDRESS or a new local instance; "auto": the running cluster
    ray_cpus: float = 1.0  # per task
    ray_gpus: float = 0.0  # per task
    explicit: set[str] = field(default_factory=set)  # the backend options the user gave (checked against --executor)





def import_backend(name: str):
    """Import the optional package behind ``--executor NAME`` (submitit, ray); one line naming the pip command."""
    import importlib

    from ..errors import ConfigError

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ConfigError(f"--executor {name} needs the {name} package, which is not installed ({e.msg}): "
                          f"pip install 'sslbench[sweep]' (or pip install {name})") from None


def parse_minutes(text: str) -> int:
    """``--slurm-time``: ``MINUTES``, ``HH:MM:SS`` or ``D-HH:MM:SS`` -> whole minutes (seconds round up)."""
    import re

    from ..errors import ConfigError

    m = re.fullmatch(r"\s*(?:(?:(\d+)-)?(\d+):(\d{1,2}):(\d{1,2})|(\d+))\s*", str(text))
    minutes = 0
    if m and m.group(5):
        minutes = int(m.group(5))
    elif m:
        days, hours, mins, secs = (int(g or 0) for g in m.group(1, 2, 3, 4))
        if mins < 60 and secs < 60:
            minutes = (days * 24 + hours) * 60 + mins + (1 if secs else 0)
    if minutes < 1:
        raise ConfigError(f"Bad --slurm-time '{text}': expected MINUTES, HH:MM:SS or D-HH:MM:SS "
                          f"(e.g. 90, 1:30:00, 2-00:00:00), at least one minute")
    return minutes


__all__ = ["SweepOptions", "EXECUTORS", "SUBMITIT_CLUSTERS", "import_backend", "parse_minutes"]
