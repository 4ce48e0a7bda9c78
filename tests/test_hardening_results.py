"""Hardening (issue 11), Results: the regression gate, record loading in ``compare``, the HTML report.

One row per case (:class:`hardening.Case`): the ``compare`` arguments, the exit code, a fragment
of stderr, and the files that must (not) exist afterwards. What a row cannot see (the table on
stdout, the HTML structure) is checked by the plain tests below the table.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from hardening import Case, check_case

from sslbench.errors import SSLBenchError
from sslbench.results.gate import compare_to_baseline, parse_rule, write_baseline
from sslbench.results.records import SCHEMA_VERSION, load_records, write_json
from sslbench.results.table import comparison_table

TOP1 = "linear.top1"
SUITE = "digits-linear"
OLD, NEW = "2026-11-23T21:30:00+00:00", "2026-11-24T08:00:00+00:00"


def rec(seed: int = 0, value: float | None = 90.0, status: str = "ok", error: str | None = None,
        method: str = "simclr", run_id: str | None = None, created: str = OLD,
        metrics: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A record in the schema of sslbench.results.records (``fields`` override top-level keys)."""
    if metrics is None:
        metrics = {} if value is None else {TOP1: {"value": value, "higher_is_better": True, "unit": "%",
                                                   "protocol": "linear"}}
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id or f"{method}-{SUITE}-s{seed}-{status}",
        "status": status,
        "created": created,
        "method": {"name": method, "variant": None, "version": 1, "origin": "builtin"},
        "suite": {"name": SUITE, "version": 1, "data_fingerprint": "sha256:0123456789abcdef", "reference": None},
        "config": {"seed": seed},
        "config_hash": "aaaaaaaaaaaa",
        "seed": seed,
        "metrics": metrics,
        "timing": {},
        "train": {},
        "code": {"git_sha": "0" * 40, "git_dirty": False, "package_version": "0.1.0"},
        "environment": {},
        "hardware": {"cpu": "test cpu", "cpu_count": 2, "gpu": None, "gpu_count": 0, "device": "cpu"},
        "error": error,
    }
    record.update(fields)
    return record


def put(folder: Path, *records: dict[str, Any], name: str | None = None) -> None:
    for r in records:
        write_json(folder / (name or f"{r['run_id']}.json"), r)


def baseline(tmp: Path, *records: dict[str, Any]) -> Path:
    """``tmp/base.json`` from ok records (seeds 0 and 1 at 90 and 91 when none are given)."""
    put(tmp / "base-runs", *(records or (rec(0, 90.0), rec(1, 91.0))))
    return write_baseline(load_records([tmp / "base-runs"]), tmp / "base.json", "cpu-2core")


def runs(*records: dict[str, Any]):
    """A setup that writes a baseline and ``tmp/now`` holding ``records``."""
    def setup(tmp: Path) -> None:
        baseline(tmp)
        put(tmp / "now", *records)
    return setup


def files(**contents: bytes | str | dict[str, Any]):
    """A setup that writes one good record and then ``tmp/runs/<name>`` for each (bytes, text or a dict as JSON)."""
    def setup(tmp: Path) -> None:
        put(tmp / "runs", rec(0, 90.0))
        for name, body in contents.items():
            path = tmp / "runs" / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(body, dict):
                body = json.dumps(body)
            path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return setup


def torn(tmp: Path) -> None:
    """A good record and one cut in the middle (as a crash without the atomic writer would leave it)."""
    files()(tmp)
    text = json.dumps(rec(1, 91.0, run_id="simclr-torn-s1"), indent=2)
    (tmp / "runs" / "torn.json").write_text(text[: len(text) // 2])


def folder_named_json(tmp: Path) -> None:
    files()(tmp)
    (tmp / "runs" / "odd.json").mkdir()


def dangling_link(tmp: Path) -> None:
    files()(tmp)
    os.symlink(tmp / "deleted.json", tmp / "runs" / "gone.json")


def only_torn(tmp: Path) -> None:
    (tmp / "runs").mkdir()
    (tmp / "runs" / "torn.json").write_text('{"schema_version": 1, "run_id": "x", "sta')


def copies(n: int):
    """The same record file ``n`` times in sub-folders (a results folder copied into itself)."""
    def setup(tmp: Path) -> None:
        put(tmp / "runs", rec(0, 90.0), rec(1, 91.0))
        for i in range(1, n):
            put(tmp / "runs" / f"copy{i}", rec(0, 90.0))
    return setup


def repeated(tmp: Path) -> None:
    """Seed 0 measured twice under two run ids (70 then 90); seed 1 once (91)."""
    put(tmp / "runs", rec(0, 70.0, run_id="simclr-s0-first", created=OLD),
        rec(0, 90.0, run_id="simclr-s0-again", created=NEW), rec(1, 91.0))


def with_plots(tmp: Path) -> None:
    reps = {20: [40.0, 42.0, 44.0], 100: [60.0, 61.0, 62.0]}
    for seed in (0, 1):
        metrics = {TOP1: {"value": 90.0 + seed, "unit": "%"}}
        metrics.update({f"few_shot.acc@n{n}": {"value": sum(v) / 3 + seed, "unit": "%", "per_seed": v, "std": 2.0,
                                               "n": 3} for n, v in reps.items()})
        put(tmp / "runs", rec(seed, metrics=metrics))
    put(tmp / "runs", rec(2, method="byol", status="diverged", value=None, error="loss is nan at step 7"))


GATE = ("--baseline", "{tmp}/base.json", "--fail", "top1:1.0", "--format", "md")
NOW = ("compare", "{tmp}/now", *GATE)
RUNS = ("compare", "{tmp}/runs", "--format", "md")

CASES: list[Case] = [
    # ---- the regression gate: a baselined run that is not ok fails it, named (run id, status, error)
    Case("gate-diverged-run", NOW, 1, "not ok: digits-linear v1 / simclr: run simclr-digits-linear-s0-diverged "
         "diverged: loss is nan at step 12", one_line=False,
         setup=runs(rec(0, None, "diverged", "loss is nan at step 12"))),
    Case("gate-failed-run", NOW, 1, "run simclr-digits-linear-s1-failed failed: RuntimeError: out of memory",
         one_line=False, setup=runs(rec(0, 90.0), rec(1, None, "failed", "RuntimeError: out of memory"))),
    Case("gate-nan-metric-run", NOW, 1, "run simclr-digits-linear-s1-diverged diverged: loss is inf", one_line=False,
         setup=runs(rec(0, 90.0), rec(1, math.nan, "diverged", "loss is inf"))),
    Case("gate-interrupted-run", NOW, 1, "run simclr-digits-linear-s0-interrupted interrupted: interrupted by the user",
         one_line=False, setup=runs(rec(0, 90.0, "interrupted", "interrupted by the user"), rec(1, 91.0))),
    Case("gate-not-ok-other-config", NOW, 1, "run simclr-digits-linear-s0-diverged diverged", one_line=False,
         setup=runs(rec(0, None, "diverged", "loss is nan", config_hash="bbbbbbbbbbbb"))),
    Case("gate-failed-no-error-text", NOW, 1, "run simclr-digits-linear-s0-failed failed (no error recorded)",
         one_line=False, setup=runs(rec(0, None, "failed"))),
    Case("gate-summary-counts-not-ok", NOW, 1, "gate failed: 0 regression(s), 0 not comparable, 2 run(s) not ok",
         one_line=False, setup=runs(rec(0, None, "diverged", "loss is nan"), rec(1, None, "failed", "boom"))),
    Case("gate-diverged-rerun-ok", NOW, 0, "", one_line=False,  # the newest record of seed 0 is an ok rerun
         setup=runs(rec(0, None, "diverged", "loss is nan", created=OLD),
                    rec(0, 90.0, run_id="simclr-s0-rerun", created=NEW), rec(1, 91.0))),
    Case("gate-ok-then-diverged", NOW, 1, "run simclr-s0-later diverged: loss is nan", one_line=False,
         setup=runs(rec(0, 90.0, created=OLD), rec(0, None, "diverged", "loss is nan", run_id="simclr-s0-later",
                                                   created=NEW), rec(1, 91.0))),
    Case("gate-not-ok-unbaselined-method", NOW, 0, "", one_line=False,  # reported as new, never failed
         setup=runs(rec(0, 90.0), rec(1, 91.0), rec(0, None, "diverged", "loss is nan", method="byol"))),
    Case("gate-not-ok-without-rule", ("compare", "{tmp}/now", "--baseline", "{tmp}/base.json", "--format", "md"), 0,
         "", one_line=False, setup=runs(rec(0, None, "diverged", "loss is nan"))),
    # ---- schema versions: refused, one line naming the file, its version and the one read
    Case("schema-future", RUNS, 2, "future.json' has schema_version 2; this sslbench reads schema_version 1 only",
         setup=files(**{"future.json": rec(1, 91.0, run_id="f", schema_version=2)})),
    Case("schema-old", RUNS, 2, "old.json' has schema_version 0; this sslbench reads schema_version 1",
         setup=files(**{"old.json": rec(1, run_id="o", schema_version=0)})),
    Case("schema-as-text", RUNS, 2, "text.json' has schema_version '1';",
         setup=files(**{"text.json": rec(1, run_id="t", schema_version="1")})),
    Case("schema-null", RUNS, 2, "null.json' has schema_version None;",
         setup=files(**{"null.json": rec(1, run_id="n", schema_version=None)})),
    Case("schema-future-named-file", ("compare", "{tmp}/runs/sub/future.json", "--format", "md"), 2,
         "future.json' has schema_version 3", setup=files(**{"sub__future.json": rec(run_id="f", schema_version=3)})),
    # ---- unreadable, torn or non-JSON files: skipped, one warning line each, the table still printed
    Case("torn-record", RUNS, 0, "warning: skipped", setup=torn),
    Case("torn-record-named", RUNS, 0, "torn.json': not JSON, torn or corrupt", setup=torn),
    Case("empty-record-file", RUNS, 0, "empty.json': not JSON", setup=files(**{"empty.json": b""})),
    Case("binary-junk-file", RUNS, 0, "junk.json': not JSON", setup=files(**{"junk.json": b"\x89PNG\r\n\x1a\n\x00\xff"})),
    Case("html-saved-as-json", RUNS, 0, "page.json': not JSON", setup=files(**{"page.json": "<html>oops</html>"})),
    Case("folder-named-json", RUNS, 0, "odd.json': cannot read it", setup=folder_named_json),
    Case("dangling-symlink", RUNS, 0, "gone.json': cannot read it", setup=dangling_link),
    Case("two-bad-files", RUNS, 0, "b.json': not JSON", one_line=False,
         setup=files(**{"a.json": "{", "b.json": "[1, 2"})),
    Case("metrics-not-a-mapping", RUNS, 0, "bad.json': not a valid sslbench record (metrics is not a mapping)",
         setup=files(**{"bad.json": rec(1, run_id="b", metrics=[1, 2])})),
    Case("unknown-status", RUNS, 0, "status.json': not a valid sslbench record (status 'exploded'",
         setup=files(**{"status.json": rec(1, run_id="s", status="exploded")})),
    Case("metric-value-text", RUNS, 0, "text.json': not a valid sslbench record (metric linear.top1",
         setup=files(**{"text.json": rec(1, run_id="t", metrics={TOP1: {"value": "ninety"}})})),
    Case("run-id-not-text", RUNS, 0, "id.json': not a valid sslbench record (run_id",
         setup=files(**{"id.json": rec(1, run_id=None) | {"run_id": 7}})),
    Case("only-torn-files", RUNS, 2, "No run records found", one_line=False, setup=only_torn),
    Case("other-json-passed-over", RUNS, 0, "", one_line=False,  # a baseline or profile table: not a record, silent
         setup=files(**{"other.json": {"format": "something else"}, "list.json": "[1, 2, 3]"})),
    # ---- duplicate run ids: one record per run id, the count said once
    Case("duplicate-run-id", RUNS, 0, "warning: dropped 1 duplicate record (a run id read from more than one file",
         setup=copies(2)),
    Case("triplicate-run-id", RUNS, 0, "dropped 2 duplicate records", setup=copies(3)),
    # ---- one measurement recorded twice (same method, suite, config hash, seed): n counted once (note on stdout)
    Case("repeated-measurement", RUNS, 0, "", one_line=False, setup=repeated),
    # ---- --format html: one standalone document, plots embedded (structure checked below)
    Case("html-document", ("compare", "{tmp}/runs", "--format", "html", "--plot", "{tmp}/plots"), 0, "",
         one_line=False, setup=with_plots, present=("plots/*.png",)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case: Case, tmp_path: Path) -> None:
    check_case(dataclasses.replace(case, in_process=True), tmp_path)  # no plugins: click's runner, no start-up


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


# ---------------------------------------------------------------- what a row cannot see


def _md_cell(stdout: str, row: str) -> str:
    line = next(x for x in stdout.splitlines() if x.startswith(f"| {row} |"))
    return line.split("|")[2].strip()


def test_torn_file_leaves_the_table_whole(tmp_path: Path) -> None:
    torn(tmp_path)
    proc = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in RUNS])
    assert proc.returncode == 0, proc.stderr
    assert _md_cell(proc.stdout, "simclr v1") == "90.00 (1)"
    assert [x for x in proc.stderr.splitlines() if x.strip()] == [
        f"warning: skipped '{tmp_path / 'runs' / 'torn.json'}': not JSON, torn or corrupt "
        + proc.stderr.split("torn or corrupt ", 1)[1].strip()
    ]


def test_duplicate_run_ids_count_once(tmp_path: Path) -> None:
    copies(3)(tmp_path)
    proc = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in RUNS])
    assert proc.returncode == 0, proc.stderr
    assert _md_cell(proc.stdout, "simclr v1") == "90.50 ± 0.71 (2)"
    assert proc.stderr.count("duplicate") == 1


def test_repeated_measurement_counts_the_seed_once(tmp_path: Path) -> None:
    repeated(tmp_path)
    proc = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in RUNS])
    assert proc.returncode == 0, proc.stderr
    # seeds 0 (the newer record, 90) and 1 (91): n = 2, not 3; the older 70 is not averaged in
    assert _md_cell(proc.stdout, "simclr v1") == "90.50 ± 0.71 (2)"
    assert ("1 measurement was recorded more than once (same method, suite, config hash and seed): "
            "counted once, the newest record kept, 1 dropped") in proc.stdout
    assert "simclr on digits-linear [cfg aaaaaaaaaaaa] seed 0: 2 records, kept simclr-s0-again" in proc.stdout
    assert proc.stderr.strip() == ""
    # the library says the same; records of other seeds or other configs are not merged
    loaded = load_records([tmp_path / "runs"])
    table = comparison_table(loaded)
    assert table.frame.iloc[0, 0] == "90.50 ± 0.71 (2)"
    first = next(r for r in loaded if r["run_id"] == "simclr-s0-first")
    other = [rec(0, 80.0, run_id="cfg-b", config_hash="bbbbbbbbbbbb"), rec(5, 80.0, run_id="s5")]
    assert not any("more than once" in n for n in comparison_table([first, *other]).notes)


def test_repeated_measurement_in_the_baseline_and_gate(tmp_path: Path) -> None:
    repeated(tmp_path)
    path = write_baseline(load_records([tmp_path / "runs"]), tmp_path / "b.json")
    (entry,) = json.loads(path.read_text())["entries"]
    assert entry["n"] == 2 and entry["values"] == [90.0, 91.0] and "simclr-s0-first" not in entry["run_ids"]


def test_gate_finding_names_the_run(tmp_path: Path) -> None:
    base = baseline(tmp_path)
    now = [rec(0, 90.0), rec(1, None, "diverged", "loss is nan at step 3")]
    report = compare_to_baseline(now, base, [parse_rule("top1:1.0")])
    (bad,) = [f for f in report.findings if f.status == "not ok"]
    assert bad.failed and bad.covered and bad.method == "simclr"
    assert bad.message() == "not ok: digits-linear v1 / simclr: run simclr-digits-linear-s1-diverged diverged: " \
                            "loss is nan at step 3"
    # without a rule it is reported, not failed
    (shown,) = [f for f in compare_to_baseline(now, base, []).findings if f.status == "not ok"]
    assert not shown.failed


def test_gate_failure_lines_on_stderr_report_on_stdout(tmp_path: Path) -> None:
    runs(rec(0, None, "diverged", "loss is nan"))(tmp_path)
    proc = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in NOW])
    assert proc.returncode == 1
    err = [x for x in proc.stderr.splitlines() if x.strip()]
    assert err[0].startswith("not ok: digits-linear v1 / simclr: run ")
    assert err[-1] == "gate failed: 0 regression(s), 0 not comparable, 1 run(s) not ok, 1 baseline entries covered " \
                      "by top1:1.0"
    assert "| simclr | digits-linear v1 | (run) |" in proc.stdout  # the gate table shows it too


def test_rows_without_a_message_leave_stderr_empty(tmp_path: Path) -> None:
    """The exit-0 rows with an empty message: nothing on stderr, and what they mean is on stdout."""
    quiet = {c.id: c for c in CASES if c.message == ""}
    assert set(quiet) == {"gate-diverged-rerun-ok", "gate-not-ok-unbaselined-method", "gate-not-ok-without-rule",
                          "other-json-passed-over", "repeated-measurement", "html-document"}
    expect = {"gate-diverged-rerun-ok": "gate passed: 1 baseline entries checked against top1:1.0",
              "gate-not-ok-unbaselined-method": "gate passed: 1 baseline entries checked",
              "gate-not-ok-without-rule": "| simclr | digits-linear v1 | (run) |"}
    for case_id, text in expect.items():
        case = quiet[case_id]
        tmp = tmp_path / case_id
        tmp.mkdir()
        case.setup(tmp)
        proc = run_cli(*[a.replace("{tmp}", str(tmp)) for a in case.argv])
        assert proc.returncode == case.exit_code and proc.stderr.strip() == "", (case_id, proc.stderr)
        assert text in proc.stdout, (case_id, proc.stdout)


def test_load_records_without_a_callback_warns_through_python(tmp_path: Path) -> None:
    torn(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_records([tmp_path / "runs"])
    assert [r["run_id"] for r in loaded] == ["simclr-digits-linear-s0-ok"]
    assert len(caught) == 1 and "torn.json" in str(caught[0].message)
    put(tmp_path / "future", rec(schema_version=2))
    with pytest.raises(SSLBenchError, match="schema_version 2; this sslbench reads schema_version 1"):
        load_records([tmp_path / "future"])


# ---------------------------------------------------------------- the HTML document

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Checker(HTMLParser):
    """Records the doctype, every element with its parent chain, and asserts tags nest and close."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.decls: list[str] = []
        self.stack: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = []
        self.text: dict[str, list[str]] = {}
        self.errors: list[str] = []
        self.outside: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.decls.append(decl)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), tuple(self.stack)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), tuple(self.stack)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.text.setdefault(self.stack[-1], []).append(data)
        elif data.strip():
            self.outside.append(data.strip())


def parse_document(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors
    assert checker.stack == [], f"unclosed: {checker.stack}"
    assert checker.outside == [], f"text outside <html>: {checker.outside}"
    return checker


def test_html_is_a_complete_standalone_document(tmp_path: Path) -> None:
    with_plots(tmp_path)
    proc = run_cli("compare", str(tmp_path / "runs"), "--format", "html", "--plot", str(tmp_path / "plots"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    doc = parse_document(out)
    assert [d.lower() for d in doc.decls] == ["doctype html"]
    tags = [tag for tag, _, _ in doc.elements]
    assert tags[0] == "html" and tags.count("html") == tags.count("head") == tags.count("body") == 1
    parents = {tag: chain for tag, _, chain in doc.elements}
    assert parents["head"] == ("html",) and parents["body"] == ("html",)
    metas = [attrs for tag, attrs, chain in doc.elements if tag == "meta" and chain == ("html", "head")]
    assert {"charset": "utf-8"} in metas
    assert parents["title"] == ("html", "head") and "".join(doc.text["title"]) == "sslbench compare"
    assert parents["style"] == ("html", "head") and "border-collapse" in "".join(doc.text["style"])
    assert not any(tag in ("link", "script") for tag in tags)  # nothing fetched from elsewhere
    # the table: in the body, header row(s) and one row per method
    assert all(chain[:2] == ("html", "body") for tag, _, chain in doc.elements if tag == "table")
    rows = [chain for tag, _, chain in doc.elements if tag == "tr"]
    body_rows = [c for c in rows if "tbody" in c]
    assert len(body_rows) == 1 and len(rows) > len(body_rows)  # simclr; byol diverged (a note)
    assert any("90.50 ± 0.71 (2)" in t for t in doc.text.get("td", []))
    assert any("1 run not ok: 1 diverged" in t for t in doc.text.get("li", []))
    # the plot, inlined as a PNG
    imgs = [attrs for tag, attrs, _ in doc.elements if tag == "img"]
    assert len(imgs) == len(list((tmp_path / "plots").glob("*.png"))) == 1
    src = str(imgs[0]["src"])
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot: " not in out  # the figure's caption names the file instead


def test_html_with_a_failing_gate_stays_one_document(tmp_path: Path) -> None:
    runs(rec(0, None, "diverged", "loss is <b>nan</b>"))(tmp_path)
    proc = run_cli("compare", str(tmp_path / "now"), *[a.replace("{tmp}", str(tmp_path)) for a in GATE[:4]],
                   "--format", "html")
    assert proc.returncode == 1
    doc = parse_document(proc.stdout)
    assert [tag for tag, _, _ in doc.elements].count("table") == 2  # the comparison and vs baseline
    assert "<b>nan</b>" not in proc.stdout and "&lt;b&gt;nan&lt;/b&gt;" in proc.stdout  # escaped
    assert "gate failed" in proc.stderr and "gate failed" not in proc.stdout
