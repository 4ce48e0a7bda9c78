"""results.frame / table / render: grouping, seed aggregation, not-comparable marking, formats."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from sslbench.errors import SSLBenchError
from sslbench.results.frame import GROUP_KEY, aggregate, records_frame
from sslbench.results.records import SCHEMA_VERSION, load_records, write_json
from sslbench.results.render import FORMATS, render_table
from sslbench.results.stats import t_quantile_975
from sslbench.results.table import DAGGER, comparison_table, format_mean_std

TOP1 = "linear.top1"


def make_record(
    method: str = "simclr",
    variant: str | None = None,
    suite: str = "digits-linear",
    suite_version: int = 1,
    config_hash: str = "aaaaaaaaaaaa",
    seed: int = 0,
    metrics: dict[str, float] | None = None,
    status: str = "ok",
    method_version: int | None = 1,
    data_fingerprint: str | None = "sha256:0123456789abcdef",
) -> dict[str, Any]:
    """A record dict in the schema of :mod:`sslbench.results.records` (only the fields compare reads, and a few more)."""
    name = f"{method}.{variant}" if variant else method
    metrics = {TOP1: 90.0} if metrics is None else metrics
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{name}-{suite}-v{suite_version}-{config_hash[:6]}-s{seed}-{status}",
        "status": status,
        "created": "2026-11-23T21:30:00+00:00",
        "method": {"name": method, "variant": variant, "version": method_version, "origin": "builtin"},
        "suite": {
            "name": suite,
            "version": suite_version,
            "data_fingerprint": data_fingerprint,
            "reference": None,
        },
        "config": {"seed": seed},
        "config_hash": config_hash,
        "seed": seed,
        "metrics": {
            k: {
                "value": v,
                "higher_is_better": True,
                "unit": "%",
                "per_seed": None,
                "protocol": k.split(".")[0],
            }
            for k, v in metrics.items()
        },
        "timing": {},
        "train": {},
        "code": {},
        "environment": {},
        "hardware": {},
        "error": None if status == "ok" else "loss is nan",
    }


def save_and_load(tmp_path: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for rec in records:
        write_json(tmp_path / f"{rec['run_id']}.json", rec)
    return load_records([tmp_path])


VALUES = [97.1, 97.5, 96.9]


@pytest.fixture
def three_seeds(tmp_path: Path) -> list[dict[str, Any]]:
    recs = [make_record(seed=s, metrics={TOP1: v, "knn.top1": v - 2}) for s, v in enumerate(VALUES)]
    recs.append(make_record(method="byol", seed=0, metrics={TOP1: 95.0, "knn.top1": 93.0}))
    return save_and_load(tmp_path, recs)


def test_records_frame_one_row_per_metric(three_seeds: list[dict[str, Any]]) -> None:
    df = records_frame(three_seeds)
    assert len(df) == 8
    assert set(GROUP_KEY) <= set(df.columns)
    assert df["path"].str.endswith(".json").all()
    assert set(df["metric"]) == {TOP1, "knn.top1"}


def test_variant_in_method_name(tmp_path: Path) -> None:
    df = records_frame(save_and_load(tmp_path, [make_record(method="moco", variant="v2")]))
    assert df["method"].tolist() == ["moco.v2"]


def test_mean_std_n_match_numpy(three_seeds: list[dict[str, Any]]) -> None:
    agg = aggregate(records_frame(three_seeds))
    row = agg[(agg["method"] == "simclr") & (agg["metric"] == TOP1)].iloc[0]
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(np.mean(VALUES))
    assert row["std"] == pytest.approx(np.std(VALUES, ddof=1))
    assert row["seeds"] == (0, 1, 2)
    single = agg[(agg["method"] == "byol") & (agg["metric"] == TOP1)].iloc[0]
    assert single["n"] == 1 and math.isnan(single["std"]) and math.isnan(single["ci95"])


def test_table_cells(three_seeds: list[dict[str, Any]]) -> None:
    table = comparison_table(three_seeds)
    col = f"digits-linear v1 / {TOP1}"
    mean, std = np.mean(VALUES), np.std(VALUES, ddof=1)
    assert table.frame.loc["simclr v1", col] == f"{mean:.2f} ± {std:.2f} (3)"
    assert table.frame.loc["byol v1", col] == "95.00 (1)"
    assert table.notes == []


def test_metric_selection(three_seeds: list[dict[str, Any]]) -> None:
    assert list(comparison_table(three_seeds, metrics=[TOP1]).frame.columns) == [f"digits-linear v1 / {TOP1}"]
    assert len(comparison_table(three_seeds, metrics=["top1"]).frame.columns) == 2
    with pytest.raises(SSLBenchError, match="available: knn.top1, linear.top1"):
        comparison_table(three_seeds, metrics=["top5"])


def test_ci_against_hand_computed_t_interval(three_seeds: list[dict[str, Any]]) -> None:
    mean, std = np.mean(VALUES), np.std(VALUES, ddof=1)
    half = 4.302652729911275 * std / math.sqrt(3)  # t_{0.975} with 2 degrees of freedom
    assert t_quantile_975(2) == pytest.approx(4.302652729911275, rel=1e-6)
    agg = aggregate(records_frame(three_seeds))
    row = agg[(agg["method"] == "simclr") & (agg["metric"] == TOP1)].iloc[0]
    assert row["ci95"] == pytest.approx(half, rel=1e-6)
    cell = comparison_table(three_seeds, ci=True).frame.loc["simclr v1", f"digits-linear v1 / {TOP1}"]
    assert cell == f"{mean:.2f} ± {std:.2f} (3) [{mean - half:.1f}, {mean + half:.1f}]"


def test_t_quantiles_table_and_normal_limit() -> None:
    assert t_quantile_975(1) == pytest.approx(12.7062, rel=1e-4)
    assert t_quantile_975(30) == pytest.approx(2.0423, rel=1e-4)
    assert t_quantile_975(1000) == pytest.approx(1.96, rel=2e-3)


def test_format_mean_std() -> None:
    assert format_mean_std(97.123, 0.3141, 3) == "97.12 ± 0.31 (3)"
    assert format_mean_std(97.123, float("nan"), 1) == "97.12 (1)"
    assert format_mean_std(97.123, 0.3141, 3, ci=0.77) == "97.12 ± 0.31 (3) [96.4, 97.9]"
    assert format_mean_std(float("nan"), float("nan"), 0) == "—"


def test_suite_versions_are_not_averaged(tmp_path: Path) -> None:
    recs = [make_record(suite_version=1, seed=s, metrics={TOP1: 90.0 + s}) for s in range(2)]
    recs += [make_record(suite_version=2, seed=s, metrics={TOP1: 80.0 + s}) for s in range(2)]
    table = comparison_table(save_and_load(tmp_path, recs))
    frame = table.frame
    assert frame.loc["simclr v1", f"digits-linear v1 / {TOP1}"] == f"90.50 ± 0.71 (2) {DAGGER}"
    assert frame.loc["simclr v1", f"digits-linear v2 / {TOP1}"] == f"80.50 ± 0.71 (2) {DAGGER}"
    assert len(table.notes) == 1
    note = table.notes[0]
    assert note.startswith(f"{DAGGER} not comparable: rows differ in suite_version")
    assert "config_hash" not in note


def test_config_hashes_get_own_rows(tmp_path: Path) -> None:
    recs = [make_record(config_hash="1a2b3c4d5e6f", seed=s, metrics={TOP1: 90.0 + s}) for s in range(3)]
    recs += [make_record(config_hash="ffffffffffff", seed=0, metrics={TOP1: 70.0})]
    recs += [make_record(method="byol", seed=0, metrics={TOP1: 85.0})]
    table = comparison_table(save_and_load(tmp_path, recs))
    frame, col = table.frame, f"digits-linear v1 / {TOP1}"
    assert list(frame.index) == ["byol v1", "simclr v1 [cfg 1a2b3c4d5e6f]", "simclr v1 [cfg ffffffffffff]"]
    assert frame.loc["simclr v1 [cfg 1a2b3c4d5e6f]", col] == f"91.00 ± 1.00 (3) {DAGGER}"
    assert frame.loc["simclr v1 [cfg ffffffffffff]", col] == f"70.00 (1) {DAGGER}"
    assert frame.loc["byol v1", col] == "85.00 (1)"
    assert any("rows differ in config_hash" in n and "simclr on digits-linear" in n for n in table.notes)


def test_data_fingerprints_get_own_rows(tmp_path: Path) -> None:
    recs = [
        make_record(data_fingerprint="sha256:111111111111aaaa"),
        make_record(data_fingerprint="sha256:222222222222bbbb", seed=1),
    ]
    table = comparison_table(save_and_load(tmp_path, recs))
    assert list(table.frame.index) == ["simclr v1 [data 111111111111]", "simclr v1 [data 222222222222]"]
    assert "rows differ in data_fingerprint" in table.notes[0]


def test_not_ok_runs_are_counted_not_averaged(tmp_path: Path) -> None:
    recs = [make_record(seed=s, metrics={TOP1: v}) for s, v in enumerate(VALUES)]
    recs.append(make_record(seed=3, metrics={TOP1: 10.0}, status="diverged"))
    recs.append(make_record(seed=4, metrics={}, status="failed"))
    loaded = save_and_load(tmp_path, recs)
    agg = aggregate(records_frame(loaded))
    assert agg["n"].tolist() == [3]
    assert agg["mean"].iloc[0] == pytest.approx(np.mean(VALUES))
    assert agg["n_not_ok"].tolist() == [2] and agg["not_ok"].tolist() == ["1 diverged, 1 failed"]
    table = comparison_table(loaded)
    assert table.frame.loc["simclr v1", f"digits-linear v1 / {TOP1}"].endswith("(3)")
    assert table.notes[0] == "2 runs not ok: 1 diverged, 1 failed (not averaged)"
    assert "seeds 3, 4" in table.notes[1]


def test_only_failed_runs(tmp_path: Path) -> None:
    table = comparison_table(save_and_load(tmp_path, [make_record(status="failed", metrics={})]))
    assert table.frame.empty
    assert "1 run not ok: 1 failed (not averaged)" in table.notes
    assert render_table(table, "md", None).startswith("| method |")


def _mixed(tmp_path: Path) -> list[dict[str, Any]]:
    recs = [make_record(seed=s, metrics={TOP1: v}) for s, v in enumerate(VALUES)]
    recs += [make_record(method="byol", config_hash=h, metrics={TOP1: 80.0}) for h in ("b" * 12, "c" * 12)]
    recs.append(make_record(method="byol", seed=9, status="diverged"))
    return save_and_load(tmp_path, recs)


def test_markdown(tmp_path: Path) -> None:
    table = comparison_table(_mixed(tmp_path))
    text = render_table(table, "md", "digits")
    assert text is not None
    lines = text.splitlines()
    assert lines[0] == "### digits"
    assert lines[2] == f"| method | digits-linear v1 / {TOP1} |"
    assert lines[3] == "| --- | ---: |"
    assert "| simclr v1 | 97.17 ± 0.31 (3) |" in lines
    assert f"| byol v1 [cfg bbbbbbbbbbbb] | 80.00 (1) {DAGGER} |" in lines
    assert any(line.startswith(f"{DAGGER} not comparable: rows differ in config_hash") for line in lines)
    assert any(line.startswith("1 run not ok: 1 diverged") for line in lines)


def test_csv(tmp_path: Path) -> None:
    text = render_table(comparison_table(_mixed(tmp_path)), "csv", None)
    assert text is not None
    lines = text.splitlines()
    assert lines[0] == f"method,digits-linear v1 / {TOP1}"
    assert "simclr v1,97.17 ± 0.31 (3)" in lines
    assert f"byol v1 [cfg cccccccccccc],80.00 (1) {DAGGER}" in lines
    assert any(line.startswith(f"# {DAGGER} not comparable") for line in lines)
    assert any(line.startswith("# 1 run not ok") for line in lines)


def test_html_and_rich(tmp_path: Path) -> None:
    table = comparison_table(_mixed(tmp_path))
    html = render_table(table, "html", "digits")
    assert html is not None and "<table" in html and "97.17 ± 0.31 (3)" in html and "not comparable" in html
    buf = io.StringIO()
    console = Console(file=buf, width=200, color_system=None)
    assert render_table(table, "rich", "digits", console=console) is None
    out = buf.getvalue()
    assert "97.17 ± 0.31 (3)" in out and "1 run not ok" in out and "digits" in out


def test_unknown_format_names_valid_ones(three_seeds: list[dict[str, Any]]) -> None:
    with pytest.raises(SSLBenchError) as exc:
        render_table(comparison_table(three_seeds), "latex", None)
    assert "latex" in str(exc.value)
    for fmt in FORMATS:
        assert fmt in str(exc.value)


def test_missing_fields_and_seed_order(tmp_path: Path) -> None:
    recs = [make_record(seed=s, data_fingerprint=None, method_version=None) for s in (10, 2, 1)]
    for rec in recs:
        del rec["method"]["variant"]
    recs.append(make_record(method="byol", seed=0, status="failed", metrics={}, data_fingerprint=None))
    agg = aggregate(records_frame(save_and_load(tmp_path, recs)))
    assert agg["seeds"].tolist() == [(1, 2, 10)]
    assert agg["method_version"].tolist() == [None] and agg["data_fingerprint"].tolist() == [None]
    table = comparison_table(save_and_load(tmp_path, recs))
    assert list(table.frame.index) == ["simclr"]
    assert table.notes[0] == "1 run not ok: 1 failed (not averaged)"
