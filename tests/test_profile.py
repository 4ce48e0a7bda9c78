"""``sslbench profile``: the sweep on digits (records, table, PNG, compare), bad input, an OOM point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import run_cli
from torch import nn

from sslbench.cli import cli
from sslbench.components.losses import per_sample_activation_bytes
from sslbench.errors import ConfigError, SSLBenchError
from sslbench.profiling.sweep import (
    Point,
    ProfileOptions,
    parse_negatives,
    profile_method,
    slope_ratios,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METRICS = {"samples_per_s", "step_ms", "peak_memory_mb", "memory_growth_mb", "analytic_memory_mb"}


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _table_rows(stdout: str) -> dict[int, str]:
    """First cell (negatives) -> the row's text, for the rows of the rich table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) >= 9 and cells[0].isdigit():
            rows[int(cells[0])] = line
    return rows


def test_parse_negatives():
    assert parse_negatives("256, 4096,65536") == [256, 4096, 65536]
    assert parse_negatives("64,64,32") == [64, 32]
    for bad in ("64,abc", "0", "-5", "64,", "1.5"):
        with pytest.raises(SSLBenchError, match="Bad --negatives value"):
            parse_negatives(bad)


def test_slope_ratio_compares_growth_with_analytic_slope():
    pts = [Point(4, 4, "ok", growth_mb=10.0, analytic_mb=1.0), Point(8, 4, "ok", growth_mb=12.0, analytic_mb=2.0),
           Point(16, 4, "oom", analytic_mb=4.0)]
    slope_ratios(pts)
    assert pts[0].slope_ratio is None and pts[1].slope_ratio == pytest.approx(2.0) and pts[2].slope_ratio is None


def test_per_sample_activation_bytes_counts_what_autograd_saves():
    # Linear saves its input (8 floats), ReLU its output (16 floats); the weights are not per sample
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
    before = [p.clone() for p in net.parameters()]
    assert per_sample_activation_bytes(net, (8,)) == (8 + 16) * 4
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_batch_size_is_rejected_when_the_negatives_are_the_batch():
    with pytest.raises(ConfigError, match="--batch-size does not apply to simclr"):
        profile_method("simclr", ProfileOptions(suite="digits-linear", negatives="16", batch_size=8))


def test_profile_simclr_digits_writes_records_plot_and_table(tmp_path: Path):
    out = tmp_path / "runs"
    p = run_cli("profile", "simclr", "--suite", "digits-linear", "--negatives", "16,32", "--steps", "2",
                "--warmup", "1", "--out", str(out))
    assert p.returncode == 0, p.stderr
    rows = _table_rows(p.stdout)
    assert set(rows) == {16, 32} and all(" ok " in r for r in rows.values()), p.stdout
    assert "meas/analytic slope" in p.stdout
    recs = _records(out)
    assert len(recs) == 2
    assert sorted(r["config"]["profile"]["negatives"] for r in recs) == [16, 32]
    assert sorted(r["config"]["pretrain"]["batch_size"] for r in recs) == [16, 32]
    assert len({r["config_hash"] for r in recs}) == 2
    for r in recs:
        assert r["status"] == "ok" and r["suite"]["name"] == "profile:digits-linear"
        assert set(r["metrics"]) == METRICS
        assert r["metrics"]["samples_per_s"]["value"] > 0 and r["metrics"]["samples_per_s"]["higher_is_better"]
        assert not r["metrics"]["peak_memory_mb"]["higher_is_better"]
        assert r["metrics"]["analytic_memory_mb"]["value"] > 0
        assert r["code"] and r["environment"]["torch"] and r["hardware"]["device"] == "cpu"
    png = out / "profile-simclr-digits-linear.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    c = CliRunner().invoke(cli, ["compare", str(out)], env={"COLUMNS": "200"})
    assert c.exit_code == 0, c.output
    assert "samples_per_s" in c.stdout


@pytest.mark.parametrize("value,bad", [("64,abc", "abc"), ("0", "0")])
def test_profile_bad_negatives_one_line_exit_2(tmp_path: Path, value: str, bad: str):
    p = CliRunner().invoke(cli, ["profile", "simclr", "--suite", "digits-linear", "--negatives", value,
                                 "--out", str(tmp_path)])
    assert p.exit_code == 2
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.output, p.output
    assert f"Bad --negatives value '{bad}'" in lines[0]
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux")
def test_profile_oom_point_is_recorded_and_the_sweep_goes_on(tmp_path: Path):
    # the big batch first: its step needs far more than 64 MB beyond the set-up, so its allocation fails
    p = run_cli("profile", "simclr", "--suite", "digits-linear", "--negatives", "1024,16", "--steps", "1",
                "--warmup", "0", "--memory-limit-mb", "64", "--out", str(tmp_path), "--plot", str(tmp_path / "p.png"))
    assert p.returncode == 0, p.stderr
    rows = _table_rows(p.stdout)
    assert " oom " in rows[1024] and " ok " in rows[16], p.stdout
    by_n = {r["config"]["profile"]["negatives"]: r for r in _records(tmp_path)}
    assert by_n[1024]["status"] == "failed" and by_n[1024]["error"] == "out of memory"
    assert by_n[1024]["config"]["profile"]["outcome"] == "oom" and not by_n[1024]["metrics"]
    assert by_n[16]["status"] == "ok" and by_n[16]["metrics"]["samples_per_s"]["value"] > 0
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


def test_profile_moco_queue_sizes(tmp_path: Path):
    from sslbench.plugins import METHODS

    if "moco" not in METHODS.names():
        pytest.skip("moco is not registered")
    p = run_cli("profile", "moco.v2", "--suite", "digits-linear", "--negatives", "256,4096", "--batch-size", "32",
                "--steps", "2", "--warmup", "1", "--exact-heap", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert set(_table_rows(p.stdout)) == {256, 4096}
    recs = sorted(_records(tmp_path), key=lambda r: r["config"]["profile"]["negatives"])
    assert [r["status"] for r in recs] == ["ok", "ok"]
    assert [r["config"]["method_options"]["queue_size"] for r in recs] == [256, 4096]
    assert all(r["config"]["pretrain"]["batch_size"] == 32 for r in recs)
    assert [r["config"]["profile"]["num_negatives"] for r in recs] == [256, 4096]
    assert all(r["config"]["profile"]["exact_heap"] for r in recs)
    if sys.platform.startswith("linux"):
        assert all(r["timing"]["malloc_mmap_threshold"] == "131072" for r in recs)
    analytic = [r["metrics"]["analytic_memory_mb"]["value"] for r in recs]
    assert analytic[1] > analytic[0] > 0
