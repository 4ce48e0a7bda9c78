"""``sslbench run``: resolve the config for each seed, execute, print a one-line summary per run."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .config import parse_set
from .runner import RunOptions, execute, preflight
from .suites import build_run_config, load_suite


def run_method(method: str, suite: str, seeds: tuple[int, ...], sets: tuple[str, ...], out_dir: Path,
               data_dir: str | None, download: bool, resume: bool, quiet: bool) -> int:
    """Returns the exit code: 0 when every seed ended ``ok``, 1 otherwise."""
    from .data import data_root

    console = Console(stderr=True, soft_wrap=True)
    overrides = parse_set(sets)
    if not seeds:
        raw, _ = load_suite(suite)
        seeds = tuple(int(s) for s in (raw.get("seeds") or [0]))
    # resolve every seed's config first: bad input fails before any run starts
    configs = [build_run_config(method, suite, overrides, seed) for seed in seeds]
    opts = RunOptions(out_dir=out_dir, data_root=data_root(data_dir), download=download, resume=resume,
                      progress=not quiet)
    preflight(*configs[0][:2], opts)  # a missing data set or a bad encoder/method/view option fails here
    code = 0
    for cfg, cls, _ in configs:
        console.print(f"[bold]{cfg.method}[/bold] on [bold]{cfg.suite}[/bold] v{cfg.suite_version} "
                      f"seed {cfg.seed}", highlight=False)
        try:
            record = execute(cfg, cls, opts)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: record saved with status 'interrupted'[/yellow]")
            return 130
        metrics = ", ".join(f"{k} {v['value']:.2f}" for k, v in record.metrics.items())
        colour = "green" if record.status == "ok" else "red"
        console.print(f"[{colour}]{record.status}[/{colour}] {metrics} "
                      f"({record.timing['wall_s']:.0f} s, {record.timing['samples_per_s']:.0f} samples/s) "
                      f"-> {out_dir / (record.run_id + '.json')}", highlight=False)
        if record.status != "ok":
            console.print(f"[red]{record.error}[/red]", highlight=False)
            code = 1
    return code
