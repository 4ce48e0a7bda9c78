"""compare --baseline/--fail (regression gate), --write-baseline, --reference, --plot, significance marks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import run_cli

from sslbench.cli import cli
from sslbench.errors import SSLBenchError
from sslbench.results.gate import (
    check_against_baseline,
    compare_to_baseline,
    load_baseline,
    parse_rule,
    write_baseline,
)
from sslbench.results.plots import parse_curve_metric, plot_curves
from sslbench.results.records import SCHEMA_VERSION, load_records, write_json
from sslbench.results.reference import load_references, method_matches
from sslbench.results.stats import diff_ci95_halfwidth, different, t_quantile_975
from sslbench.results.table import DAGGER, SIGNIFICANT, WITHIN_RUN, comparison_table

TOP1 = "linear.top1"
SUITE = "digits-linear"


def metric(value: float, higher: bool = True, unit: str = "%", per_seed: list[float] | None = None,
           protocol: str | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"value": value, "higher_is_better": higher, "unit": unit}
    if protocol:
        m["protocol"] = protocol
    if per_seed is not None:
        m.update(per_seed=per_seed, std=float(np.std(per_seed, ddof=1)), n=len(per_seed))
    return m


def record(method: str = "simclr", variant: str | None = None, suite: str = SUITE, suite_version: int = 1,
           config_hash: str = "aaaaaaaaaaaa", seed: int = 0, metrics: dict[str, Any] | None = None,
           timing: dict[str, float] | None = None, fingerprint: str = "sha256:0123456789abcdef",
           reference: str | None = None) -> dict[str, Any]:
    """A record in the schema of sslbench.results.records; ``metrics`` values are numbers or metric dicts."""
    name = f"{method}.{variant}" if variant else method
    metrics = {TOP1: 90.0} if metrics is None else metrics
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{name}-{suite}-v{suite_version}-{config_hash[:6]}-s{seed}",
        "status": "ok",
        "created": "2026-11-23T21:30:00+00:00",
        "method": {"name": method, "variant": variant, "version": 1, "origin": "builtin"},
        "suite": {"name": suite, "version": suite_version, "data_fingerprint": fingerprint, "reference": reference},
        "config": {"seed": seed},
        "config_hash": config_hash,
        "seed": seed,
        "metrics": {k: v if isinstance(v, dict) else metric(v) for k, v in metrics.items()},
        "timing": timing or {},
        "train": {},
        "code": {"git_sha": "0" * 40, "git_dirty": False, "package_version": "0.1.0"},
        "environment": {},
        "hardware": {"cpu": "test cpu", "cpu_count": 2, "gpu": None, "gpu_count": 0, "device": "cpu"},
        "error": None,
    }


def save(folder: Path, records: list[dict[str, Any]]) -> Path:
    for rec in records:
        write_json(folder / f"{rec['run_id']}.json", rec)
    return folder


def runs(tmp_path: Path, name: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return load_records([save(tmp_path / name, records)])


def invoke(*args: str):
    return CliRunner().invoke(cli, ["compare", *args], catch_exceptions=False)


# ---------------------------------------------------------------- rules and statistics


def test_rule_syntax() -> None:
    r = parse_rule("top1:1.0")
    assert (r.metric, r.threshold, r.relative) == ("top1", 1.0, False)
    assert r.matches("linear.top1") and r.matches("knn.top1") and not r.matches("linear.top5")
    rel = parse_rule("samples_per_s:10%")
    assert rel.relative and rel.limit(200.0) == pytest.approx(20.0)
    assert parse_rule("knn.*:0.5").matches("knn.top1")
    for bad in ("top1", "top1:", ":1.0", "top1:abc", "top1:-1", "top1:1.0pt"):
        with pytest.raises(SSLBenchError, match=r"Bad --fail rule .*METRIC:THRESHOLD"):
            parse_rule(bad)


def test_seed_spread_is_the_pooled_t_interval_of_the_difference() -> None:
    # 3 + 3 seeds, std 2 on both sides: t_{0.975}(4) * 2 * sqrt(2/3)
    assert diff_ci95_halfwidth(2.0, 3, 2.0, 3) == pytest.approx(2.776445 * 2 * math.sqrt(2 / 3), rel=1e-5)
    # one side n=1: its variance is unknown, the other side's spread (df 2) is used
    assert diff_ci95_halfwidth(None, 1, 1.0, 3) == pytest.approx(4.302653 * math.sqrt(1 + 1 / 3), rel=1e-5)
    assert math.isnan(diff_ci95_halfwidth(None, 1, None, 1))


def test_different_needs_non_overlapping_intervals() -> None:
    assert different(90.0, 1.0, 95.0, 1.0)
    assert not different(90.0, 3.0, 95.0, 3.0)
    assert not different(90.0, math.nan, 99.0, 0.1)
    assert not different(90.0, None, 99.0, 0.1)


# ---------------------------------------------------------------- the gate


def _baseline(tmp_path: Path, records: list[dict[str, Any]], name: str = "base.json") -> Path:
    return write_baseline(runs(tmp_path, "base-runs", records), tmp_path / name, "cpu-2core")


def test_baseline_file_carries_statistics_and_provenance(tmp_path: Path) -> None:
    recs = [record(seed=s, metrics={TOP1: v}, timing={"samples_per_s": 100.0 + s, "peak_memory_mb": 500.0})
            for s, v in enumerate([90.0, 91.0, 92.0])]
    for suffix in ("json", "yaml"):
        data = load_baseline(_baseline(tmp_path, recs, f"base.{suffix}"))
        assert data["format"] == "sslbench-baseline" and data["hardware_class"] == "cpu-2core"
        by_metric = {e["metric"]: e for e in data["entries"]}
        assert set(by_metric) == {TOP1, "timing.samples_per_s", "timing.peak_memory_mb"}
        e = by_metric[TOP1]
        assert (e["mean"], e["n"], e["seeds"], e["values"]) == (91.0, 3, [0, 1, 2], [90.0, 91.0, 92.0])
        assert e["std"] == pytest.approx(1.0) and e["higher_is_better"] is True and e["unit"] == "%"
        assert e["config_hash"] == "aaaaaaaaaaaa" and e["data_fingerprint"] == "sha256:0123456789abcdef"
        assert e["suite"] == SUITE and e["suite_version"] == 1 and e["method"] == "simclr"
        assert len(e["run_ids"]) == 3 and e["git_sha"] == ["0" * 40] and e["git_dirty"] is False
        assert by_metric["timing.peak_memory_mb"]["higher_is_better"] is False


def test_gate_passes_on_identical_numbers(tmp_path: Path) -> None:
    recs = [record(seed=s, metrics={TOP1: 90.0 + s, "knn.top1": 85.0}) for s in range(2)]
    base = _baseline(tmp_path, recs)
    save(tmp_path / "now", recs)
    res = invoke(str(tmp_path / "now"), "--baseline", str(base), "--fail", "top1:1.0", "--format", "md")
    assert res.exit_code == 0, res.output
    assert "gate passed: 2 baseline entries checked" in res.output
    assert check_against_baseline(load_records([tmp_path / "now"]), base, [parse_rule("top1:1.0")]) == []


def test_gate_fails_on_a_drop_beyond_the_threshold_one_seed(tmp_path: Path) -> None:
    base = _baseline(tmp_path, [record(metrics={TOP1: 90.0})])
    save(tmp_path / "now", [record(metrics={TOP1: 88.5})])
    proc = run_cli("compare", str(tmp_path / "now"), "--baseline", str(base), "--fail", "top1:1.0",
                   "--format", "md", timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # the report (the md tables) on stdout, why the gate failed on stderr
    assert "| simclr |" in proc.stdout and "regression:" not in proc.stdout
    line = next(x for x in proc.stderr.splitlines() if x.startswith("regression:"))
    assert SUITE in line and "simclr" in line and TOP1 in line
    assert "baseline 90.00" in line and "current 88.50" in line and "drop 1.50 > threshold 1.00" in line
    # a drop of exactly the threshold passes
    save(tmp_path / "edge", [record(metrics={TOP1: 89.0})])
    assert invoke(str(tmp_path / "edge"), "--baseline", str(base), "--fail", "top1:1.0").exit_code == 0


def test_gate_ignores_a_drop_within_the_seed_spread(tmp_path: Path) -> None:
    base = _baseline(tmp_path, [record(seed=s, metrics={TOP1: v}) for s, v in enumerate([90.0, 92.0, 94.0])])
    now = runs(tmp_path, "now", [record(seed=s, metrics={TOP1: v}) for s, v in enumerate([88.5, 90.5, 92.5])])
    report = compare_to_baseline(now, base, [parse_rule("top1:1.0")])
    (f,) = report.findings
    assert f.drop == pytest.approx(1.5) and f.status == "within noise"
    assert f.spread == pytest.approx(t_quantile_975(4) * 2.0 * math.sqrt(2 / 3))
    assert report.failures == []
    # the same drop with a tight spread is a regression
    tight = _baseline(tmp_path, [record(seed=s, metrics={TOP1: v}) for s, v in enumerate([92.0, 92.1, 91.9])],
                      "tight.json")
    now2 = runs(tmp_path, "now2", [record(seed=s, metrics={TOP1: v}) for s, v in enumerate([90.5, 90.6, 90.4])])
    (reg,) = check_against_baseline(now2, tight, [parse_rule("top1:1.0")])
    assert reg.status == "regression" and reg.drop == pytest.approx(1.5) and reg.spread < 0.5


def test_relative_rule_and_direction(tmp_path: Path) -> None:
    base_recs = [record(metrics={TOP1: 90.0, "profile.samples_per_s": metric(200.0, unit="samples/s")},
                        timing={"peak_memory_mb": 1000.0})]
    base = _baseline(tmp_path, base_recs)
    rules = [parse_rule("samples_per_s:10%"), parse_rule("peak_memory_mb:10%")]
    # throughput -5%, memory -20% (both improvements or within the threshold): pass
    ok = runs(tmp_path, "ok", [record(metrics={TOP1: 90.0, "profile.samples_per_s": metric(190.0, unit="samples/s")},
                                      timing={"peak_memory_mb": 800.0})])
    assert check_against_baseline(ok, base, rules) == []
    # throughput -15% and memory +15%: both regressions (memory is lower-is-better)
    bad = runs(tmp_path, "bad", [record(metrics={TOP1: 90.0, "profile.samples_per_s": metric(170.0, unit="samples/s")},
                                        timing={"peak_memory_mb": 1150.0})])
    regs = {r.metric: r for r in check_against_baseline(bad, base, rules)}
    assert set(regs) == {"profile.samples_per_s", "timing.peak_memory_mb"}
    assert regs["profile.samples_per_s"].drop == pytest.approx(30.0)
    assert regs["profile.samples_per_s"].threshold == pytest.approx(20.0)
    assert regs["timing.peak_memory_mb"].drop == pytest.approx(150.0)
    assert regs["timing.peak_memory_mb"].threshold == pytest.approx(100.0)
    res = invoke(str(tmp_path / "bad"), "--baseline", str(base), "--fail", "samples_per_s:10%", "--format", "md")
    assert res.exit_code == 1
    assert "regression: digits-linear v1 / simclr / profile.samples_per_s" in res.output


def test_performance_on_other_hardware_is_not_comparable(tmp_path: Path) -> None:
    base = _baseline(tmp_path, [record(metrics={TOP1: 90.0}, timing={"samples_per_s": 100.0})])
    gpu = record(metrics={TOP1: 90.0}, timing={"samples_per_s": 5000.0})
    gpu["hardware"] = {"cpu": "x", "cpu_count": 16, "gpu": "NVIDIA H100", "gpu_count": 1, "device": "cuda"}
    report = compare_to_baseline(runs(tmp_path, "gpu", [gpu]), base, [parse_rule("samples_per_s:10%")])
    by_metric = {f.metric: f for f in report.findings}
    assert by_metric["timing.samples_per_s"].status == "not comparable"
    assert "hardware differs: baseline cpu x2" in by_metric["timing.samples_per_s"].detail
    assert by_metric[TOP1].status == "unchecked"  # accuracy is still compared (no rule covers it here)


def test_not_comparable_config_hash_is_reported_and_fails_with_a_rule(tmp_path: Path) -> None:
    base = _baseline(tmp_path, [record(metrics={TOP1: 90.0})])
    save(tmp_path / "now", [record(config_hash="bbbbbbbbbbbb", metrics={TOP1: 95.0})])
    report = compare_to_baseline(load_records([tmp_path / "now"]), base, [])
    (f,) = report.findings
    assert f.status == "not comparable" and "config_hash aaaaaaaaaaaa in the baseline, bbbbbbbbbbbb now" in f.detail
    assert not f.failed  # reported, but no rule covers it
    res = invoke(str(tmp_path / "now"), "--baseline", str(base), "--format", "md")
    assert res.exit_code == 0 and "not comparable" in res.output
    res = invoke(str(tmp_path / "now"), "--baseline", str(base), "--fail", "top1:1.0", "--format", "md")
    assert res.exit_code == 1
    assert f"not comparable: {SUITE} v1 / simclr / {TOP1}: config_hash" in res.output
    assert "gate failed: 0 regression(s), 1 not comparable" in res.output


def test_suite_version_mismatch_and_missing_entries(tmp_path: Path) -> None:
    base = _baseline(tmp_path, [record(metrics={TOP1: 90.0}), record(method="byol", metrics={TOP1: 80.0})])
    now = runs(tmp_path, "now", [record(suite_version=2, metrics={TOP1: 90.0})])
    report = compare_to_baseline(now, base, [parse_rule("top1:1.0")])
    status = {f.method: f for f in report.findings if f.status != "new"}
    assert status["simclr"].status == "not comparable" and "suite_version 1 in the baseline, 2 now" in status["simclr"].detail
    assert status["byol"].status == "missing" and not status["byol"].failed
    assert [f.method for f in report.failures] == ["simclr"]


def test_bad_fail_input_exits_2(tmp_path: Path) -> None:
    base = _baseline(tmp_path, [record()])
    save(tmp_path / "now", [record()])
    for args in (["--baseline", str(base), "--fail", "top1"],
                 ["--baseline", str(base), "--fail", "top1:lots"],
                 ["--fail", "top1:1.0"],
                 ["--baseline", str(base), "--fail", "top5:1.0"],
                 ["--baseline", str(tmp_path / "nope.json")]):
        res = CliRunner().invoke(cli, ["compare", str(tmp_path / "now"), *args])
        assert res.exit_code == 2, (args, res.output)
    proc = run_cli("compare", str(tmp_path / "now"), "--baseline", str(base), "--fail", "top1=1", timeout=120)
    assert proc.returncode == 2 and "top1=1" in proc.stderr and "METRIC:THRESHOLD" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_write_baseline_via_cli(tmp_path: Path) -> None:
    save(tmp_path / "now", [record(seed=s, metrics={TOP1: 90.0 + s}) for s in range(2)])
    res = invoke(str(tmp_path / "now"), "--write-baseline", str(tmp_path / "b.yaml"), "--hardware-class", "cpu-4core",
                 "--format", "md")
    assert res.exit_code == 0 and "baseline: wrote 1 entries (cpu-4core)" in res.output
    data = load_baseline(tmp_path / "b.yaml")
    assert data["entries"][0]["mean"] == 90.5 and data["entries"][0]["hardware_class"] == "cpu-4core"


# ---------------------------------------------------------------- table statistics


def test_significance_marks_only_non_overlapping_intervals(tmp_path: Path) -> None:
    recs = [record(seed=s, metrics={TOP1: v}) for s, v in enumerate([95.0, 95.2, 94.8])]
    recs += [record(method="byol", seed=s, metrics={TOP1: v}) for s, v in enumerate([90.0, 90.2, 89.8])]
    recs += [record(method="moco", seed=s, metrics={TOP1: v}) for s, v in enumerate([94.0, 96.0, 95.0])]
    recs += [record(method="instdisc", metrics={TOP1: 80.0})]  # one seed, no interval: never marked
    table = comparison_table(runs(tmp_path, "r", recs))
    col = f"{SUITE} v1 / {TOP1}"
    assert table.frame.loc["byol v1", col].endswith(f"(3) {SIGNIFICANT}")
    assert table.frame.loc["moco v1", col].endswith("(3)")  # overlaps the best
    assert table.frame.loc["simclr v1", col].endswith("(3)")  # the best
    assert table.frame.loc["instdisc v1", col] == "80.00 (1)"
    assert any(n.startswith(f"{SIGNIFICANT} differs from the best") for n in table.notes)


def test_within_run_interval_for_one_seed(tmp_path: Path) -> None:
    reps = [60.0, 62.0, 61.0, 59.0, 63.0]
    recs = [record(metrics={"few_shot.acc@n100": metric(float(np.mean(reps)), per_seed=reps)})]
    table = comparison_table(runs(tmp_path, "r", recs), ci=True)
    cell = table.frame.iloc[0, 0]
    half = t_quantile_975(4) * np.std(reps, ddof=1) / math.sqrt(5)
    assert cell == f"61.00 (1) [{61 - half:.1f}, {61 + half:.1f}] {WITHIN_RUN}"
    assert any(n.startswith(f"{WITHIN_RUN} one pretraining seed") and "few_shot.acc@n100" in n for n in table.notes)


def test_two_suite_versions_and_configs_shown_apart(tmp_path: Path) -> None:
    recs = [record(suite_version=1, seed=s, metrics={TOP1: 90.0 + s}) for s in range(2)]
    recs += [record(suite_version=2, seed=s, metrics={TOP1: 80.0 + s}) for s in range(2)]
    recs += [record(method="byol", config_hash=h, metrics={TOP1: 85.0}) for h in ("b" * 12, "c" * 12)]
    res = invoke(str(save(tmp_path / "r", recs)), "--format", "md")
    assert res.exit_code == 0
    assert f"| simclr v1 | 90.50 ± 0.71 (2) {DAGGER} | 80.50 ± 0.71 (2) {DAGGER} |" in res.output
    assert f"| byol v1 [cfg bbbbbbbbbbbb] | 85.00 (1) {DAGGER} |" in res.output
    assert "not comparable: rows differ in suite_version" in res.output
    assert "not comparable: rows differ in config_hash" in res.output


# ---------------------------------------------------------------- reference


REFERENCE_YAML = """\
# a reference file in the format of results/reference/*.yaml
project: demo-paper
source: arXiv 0000.00000
entries:
  digits:
    suite: digits-linear
    protocol: {dataset: digits official split, encoder: small CNN, epochs: 10, evaluation: linear probe, metric: top-1}
    results:
      - {method: simclr, metric: linear.top1, value: 88.25, status: verified, table: "Table 2"}
      - {method: moco.v2, metric: linear.top1, value: 93.0, status: to verify, note: "read from a figure"}
      - {method: moco.v1, metric: linear.top1, value: 50.0, status: verified}
"""


def test_reference_beside_reproduced(tmp_path: Path) -> None:
    ref = tmp_path / "refs" / "demo.yaml"
    ref.parent.mkdir()
    ref.write_text(REFERENCE_YAML)
    refs = load_references(ref.parent)
    assert len(refs) == 3 and refs["unverified"].tolist() == [False, True, False]
    assert method_matches("simclr", "simclr.v2") and method_matches("moco.v2", "moco.v2")
    assert not method_matches("moco.v2", "moco.v1") and not method_matches("moco.v2", "moco")
    recs = [record(seed=s, metrics={TOP1: v}) for s, v in enumerate([90.0, 91.0])]
    recs.append(record(method="moco", variant="v2", metrics={TOP1: 92.0}))
    res = invoke(str(save(tmp_path / "r", recs)), "--format", "md", "--reference", str(ref.parent))
    assert res.exit_code == 0, res.output
    assert f"| simclr | {SUITE} v1 | {TOP1} | 90.50 ± 0.71 (2) | 88.25 | +2.25 | [2] |" in res.output
    assert f"| moco.v2 | {SUITE} v1 | {TOP1} | 92.00 (1) | 93.00 (unverified) | -1.00 | [1] |" in res.output
    assert "[2] demo-paper: arXiv 0000.00000, Table 2 (demo.yaml#digits, status: verified)" in res.output
    assert "[1] demo-paper: arXiv 0000.00000 (demo.yaml#digits, status: to verify)" in res.output
    assert "1 published number has no reproduced run here" in res.output  # moco.v1


def test_reference_by_suite_link_and_bad_path(tmp_path: Path) -> None:
    ref = tmp_path / "demo.yaml"
    ref.write_text(REFERENCE_YAML)
    # a suite of another name that points at the entry through suite.reference
    recs = [record(suite="digits-small", metrics={TOP1: 87.0}, reference="results/reference/demo.yaml#digits")]
    res = invoke(str(save(tmp_path / "r", recs)), "--format", "md", f"--reference={ref}")
    assert "| simclr | digits-small v1 | linear.top1 | 87.00 (1) | 88.25 | -1.25 | [1] |" in res.output
    res = CliRunner().invoke(cli, ["compare", str(tmp_path / "r"), "--reference", str(tmp_path / "none")])
    assert res.exit_code == 2


def test_published_references_ship_with_the_package(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no results/reference here: the installed copy (sslbench_references) answers
    recs = [record(method="dgi", suite="cora-dgi", metrics={"logreg.top1": 82.0},
                   reference="results/reference/dgi-paper.yaml#cora")]
    runs_dir = str(save(tmp_path / "r", recs))
    row = "| dgi | cora-dgi v1 | logreg.top1 | 82.00 (1) | 82.30 ± 0.60 | -0.30 | [1] |"
    for how in (["--reference"], ["--reference", "results/reference/dgi-paper.yaml#cora"]):
        res = invoke(runs_dir, "--format", "md", *how)
        assert res.exit_code == 0, res.output
        assert row in res.output and "(dgi-paper.yaml#cora, status: verified)" in res.output
    # a results/reference folder in the working folder (a checkout) comes first
    local = tmp_path / "results" / "reference"
    local.mkdir(parents=True)
    (local / "demo.yaml").write_text(REFERENCE_YAML)
    res = invoke(runs_dir, "--format", "md", "--reference")
    assert res.exit_code == 0 and "no published number matches" in res.output


# ---------------------------------------------------------------- plots


def test_curve_metric_names() -> None:
    assert parse_curve_metric("few_shot.acc@n20") == ("few_shot", "acc", "n", 20.0)
    assert parse_curve_metric("few_shot.acc@k5") == ("few_shot", "acc", "k", 5.0)
    assert parse_curve_metric("few_shot.acc@p1") == ("few_shot", "acc", "p", 1.0)
    assert parse_curve_metric("noisy_label.acc@asym0.4") == ("noisy_label", "acc", "asym", 0.4)
    assert parse_curve_metric("noisy_label.noise@sym0.2") is None
    assert parse_curve_metric(TOP1) is None


def test_plot_writes_pngs(tmp_path: Path) -> None:
    recs = []
    for method, shift in (("simclr", 0.0), ("byol", -5.0)):
        for s in range(2):
            m: dict[str, Any] = {TOP1: 90.0}
            for n, base in ((20, 40.0), (100, 60.0), (1000, 80.0)):
                reps = [base + shift + s + d for d in (-1.0, 0.0, 1.0)]
                m[f"few_shot.acc@n{n}"] = metric(float(np.mean(reps)), per_seed=reps)
            for rate, acc in ((0.0, 90.0), (0.2, 85.0), (0.4, 75.0)):
                m[f"noisy_label.acc@sym{rate}"] = metric(acc + shift + s, per_seed=[acc + shift + s] * 2)
                m[f"noisy_label.noise@sym{rate}"] = metric(rate, unit="")
            recs.append(record(method=method, seed=s, metrics=m))
    recs.append(record(method="moco", variant="v2", metrics={"few_shot.acc@n20": metric(30.0, per_seed=[29.0, 31.0])}))
    loaded = runs(tmp_path, "r", recs)
    paths = plot_curves(loaded, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    assert names == [f"{SUITE}-v1-few_shot-n.png", f"{SUITE}-v1-noisy_label-sym.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    res = invoke(str(tmp_path / "r"), "--format", "md", "--plot", str(tmp_path / "cli-plots"))
    assert res.exit_code == 0
    assert res.output.count("plot: ") == 2 and (tmp_path / "cli-plots" / names[0]).is_file()
    assert plot_curves(runs(tmp_path, "plain", [record()]), tmp_path / "none") == []


def test_records_json_roundtrip_of_baseline_is_plain_json(tmp_path: Path) -> None:
    path = _baseline(tmp_path, [record()])
    data = json.loads(path.read_text())
    assert data["entries"][0]["std"] is None  # NaN is written as null, the file stays strict JSON
