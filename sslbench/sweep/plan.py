"""Resolve and check every point of a sweep before any runs, and decide which are done, resumed or run.

Each point's config is resolved exactly as ``sslbench run`` resolves it (:func:`sslbench.suites.build_run_config`:
defaults <- variant <- suite <- ``--set`` <- the point's ``--grid`` values), so an unknown method or suite, a bad
key or value is one line before anything starts. The points that will run are then preflighted
(:func:`sslbench.build.preflight`: data, encoder, method, views, protocol files), once per distinct config.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..build import RunOptions, preflight
from ..config import RunConfig, config_hash, parse_set
from ..runner import has_checkpoint
from ..suites import build_run_config, load_suite, validate_suite
from .grid import GridPoint, expand, parse_grid
from .options import SweepOptions
from .point import PointSpec
from .skip import PointKey, index_records, ok_record


@dataclass
class PlannedPoint:
    point: GridPoint
    cfg: RunConfig
    cls: type
    key: PointKey
    state: str  # done (an ok record exists) | resume (a checkpoint exists) | run
    record: str | None = None  # the ok record of a done point
    spec: PointSpec | None = None  # for the points that run


def suite_seeds(suites: tuple[str, ...], seeds: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """``--seed`` values, or each suite's own ``seeds:`` (as ``sslbench run`` does)."""
    out = {}
    for suite in suites:
        if seeds:
            out[suite] = tuple(dict.fromkeys(seeds))
        else:
            raw, where = load_suite(suite)
            validate_suite(raw, where)
            out[suite] = tuple(raw.get("seeds") or [0])
    return out


def resolve(opts: SweepOptions, note: Callable[[str], Any]) -> list[PlannedPoint]:
    """Every point's config and key (duplicates of one key are run once), with its state; raises on bad input."""
    axes = parse_grid(opts.grid, opts.sets)
    overrides = parse_set(opts.sets)
    suites = tuple(dict.fromkeys(opts.suites))
    points = expand(tuple(opts.methods), suites, suite_seeds(suites, opts.seeds), axes)
    planned: dict[PointKey, PlannedPoint] = {}
    for p in points:
        cfg, cls, _ = build_run_config(p.method, p.suite, [*overrides, *parse_set(p.sets(()))], p.seed)
        key: PointKey = (cfg.method, cls.version, cfg.suite, config_hash(cfg), cfg.seed)
        planned.setdefault(key, PlannedPoint(p, cfg, cls, key, "run"))
    if len(planned) < len(points):
        note(f"{len(points) - len(planned)} duplicate point(s) (the same method, suite, config and seed) run once")
    index = index_records(opts.out_dir, warn=note)
    run_opts = RunOptions(out_dir=opts.out_dir)
    for pp in planned.values():
        rec = ok_record(index.get(pp.key, []))
        if rec is not None:
            pp.state, pp.record = "done", rec["_path"]
        elif has_checkpoint(run_opts, pp.cfg):
            pp.state = "resume"
    return list(planned.values())


def check_points(planned: list[PlannedPoint], data_root: Path, download: bool) -> None:
    """Preflight every point that will run, once per method, suite and config (the seed changes no file)."""
    seen = set()
    opts = RunOptions(data_root=data_root, download=download)
    for pp in planned:
        if pp.state != "done" and pp.key[:4] not in seen:
            seen.add(pp.key[:4])
            preflight(pp.cfg, pp.cls, opts)


def point_argv(pp: PlannedPoint, sets: tuple[str, ...], out: Path, data_root: Path) -> list[str]:
    """The ``sslbench`` arguments of a point: plugin folders and allowed overrides (explicit, for remote workers),
    then ``run METHOD --suite SUITE --seed N --set ... --out OUT --data-dir ROOT --resume-if-any --quiet``."""
    from ..plugins import _extra_plugin_dirs
    from ..registry import ALLOW_OVERRIDE_ENV

    head: list[str] = []
    for d in _extra_plugin_dirs:
        head += ["--plugins", str(Path(d).resolve())]
    for name in dict.fromkeys(n.strip() for n in os.environ.get(ALLOW_OVERRIDE_ENV, "").split(",") if n.strip()):
        head += ["--allow-override", name]
    suite = pp.point.suite
    if Path(suite).suffix in (".yaml", ".yml") and Path(suite).exists():
        suite = str(Path(suite).resolve())  # a suite file: found from any working directory
    items: list[str] = []
    for item in pp.point.sets(sets):
        items += ["--set", item]
    return [*head, "run", pp.point.method, "--suite", suite, "--seed", str(pp.point.seed), *items,
            "--out", str(out), "--data-dir", str(data_root), "--resume-if-any", "--quiet"]


def make_specs(planned: list[PlannedPoint], sets: tuple[str, ...], out: Path, data_root: Path,
               threads: int | None, env: dict[str, str] | None = None) -> list[PointSpec]:
    """A :class:`PointSpec` for every point that is not done (``--set`` items first, then the point's grid)."""
    specs = []
    for i, pp in enumerate(planned, 1):
        if pp.state == "done":
            continue
        argv = point_argv(pp, sets, out, data_root)
        pp.spec = PointSpec(index=i, label=pp.point.label, argv=argv, out=str(out), key=list(pp.key),
                            threads=threads, env=dict(env or {}))
        specs.append(pp.spec)
    return specs


__all__ = ["PlannedPoint", "resolve", "check_points", "make_specs", "suite_seeds"]
