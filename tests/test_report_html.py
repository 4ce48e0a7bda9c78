"""compare --format html --out: the standalone report, opened in a real headless Chromium (Debian's binary
driven by playwright), plus --out's checks and the escaping of untrusted record strings."""

from __future__ import annotations

import math
import os
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from test_compare_gate import REFERENCE_YAML, metric, record, save

from sslbench.cli import cli

TOP1 = "linear.top1"
VALUES = [90.0, 91.0, 92.5]  # simclr's linear.top1 over pretraining seeds 0, 1, 2
PUBLISHED = 88.25  # simclr's linear.top1 in REFERENCE_YAML
T975_DF2 = 4.302652729911275  # t_{0.975} with 2 degrees of freedom (scipy.stats.t.ppf(0.975, 2))
GIT_SHA = "0" * 40  # what test_compare_gate.record carries
HOSTILE = {
    "cpu": '"><img src=x onerror="window.__pwned=1">',
    "env": "<script>window.__pwned=2</script>",
    "version": "0.1.0<b onmouseover=alert(3)>",
}


def chromium_binary() -> str | None:
    """$SSLBENCH_CHROMIUM, else chromium or chromium-browser on PATH (Debian: ``apt-get install chromium``)."""
    return os.environ.get("SSLBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def make_runs(folder: Path) -> Path:
    """Three seeds of simclr (linear.top1, few-shot curve with within-run repeats), one moco.v2 run whose
    provenance strings are hostile HTML, and a reference file; returns the runs folder."""
    recs = []
    for seed, value in enumerate(VALUES):
        m: dict[str, Any] = {TOP1: value}
        for n, base in ((20, 40.0), (100, 60.0)):
            reps = [base + seed + d for d in (-1.0, 0.0, 1.0)]
            m[f"few_shot.acc@n{n}"] = metric(float(np.mean(reps)), per_seed=reps)
        rec = record(seed=seed, metrics=m)
        rec["environment"] = {"python": "3.11.7", "torch": "2.11.0"}
        recs.append(rec)
    evil = record(method="moco", variant="v2", metrics={TOP1: 92.0})
    evil["hardware"]["cpu"] = HOSTILE["cpu"]
    evil["environment"] = {"python": HOSTILE["env"]}
    evil["code"]["package_version"] = HOSTILE["version"]
    recs.append(evil)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "demo.yaml").write_text(REFERENCE_YAML)
    return save(folder / "runs", recs)


def compare(*args: str):
    return CliRunner().invoke(cli, ["compare", *args], catch_exceptions=False)


def write_report(tmp_path: Path) -> Path:
    """The report of :func:`make_runs` with --ci and --reference, through the CLI, into a folder not yet made."""
    runs = make_runs(tmp_path)
    out = tmp_path / "report" / "report.html"  # its folder does not exist yet
    res = compare(str(runs), "--ci", "--reference", str(tmp_path / "refs"), "--format", "html", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"report: wrote {out} (html)"
    return out


def expected_cell() -> str:
    """simclr's linear.top1 cell, from numpy and a hand-copied t quantile (not from sslbench)."""
    mean, std = float(np.mean(VALUES)), float(np.std(VALUES, ddof=1))
    half = T975_DF2 * std / math.sqrt(len(VALUES))
    return f"{mean:.2f} ± {std:.2f} (3) [{mean - half:.1f}, {mean + half:.1f}]"


# ---------------------------------------------------------------- in a real browser


def test_report_in_headless_chromium(tmp_path: Path) -> None:
    binary = chromium_binary()
    if not binary:
        pytest.skip("chromium is not installed (apt-get install chromium, or set SSLBENCH_CHROMIUM=/path/to/it)")
    from playwright.sync_api import sync_playwright

    out = write_report(tmp_path)
    mean = float(np.mean(VALUES))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            fetched: list[str] = []
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
            page.on("request", lambda r: fetched.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(out.as_uri(), wait_until="load")

            text = page.inner_text("body")
            cell_text = expected_cell()
            assert cell_text in text  # the table, with --ci's interval
            assert f"{PUBLISHED:.2f}" in text and f"{mean - PUBLISHED:+.2f}" in text  # published beside it
            assert "92.00 (1)" in text  # moco.v2's single run
            # the few-shot curve is embedded and decodes as an image; no other image exists
            imgs = page.locator("img")
            assert imgs.count() == 1
            assert imgs.first.get_attribute("src").startswith("data:image/png;base64,")
            assert imgs.first.evaluate("img => img.complete && img.naturalWidth > 100")

            # provenance of simclr's linear.top1: on hover (title) ...
            cell = page.locator("td.prov").filter(has_text=cell_text)
            assert cell.count() == 2  # the comparison table and the reproduced column of the reference table
            cell = cell.first
            cell.hover()
            title = cell.get_attribute("title")
            run_ids = [f"simclr-digits-linear-v1-aaaaaa-s{s}" for s in range(3)]
            assert all(r in title for r in run_ids)
            assert all(f"seed {s}: {v:g}" in title for s, v in enumerate(VALUES))
            assert "config aaaaaaaaaaaa" in title and "sha256:0123456789abcdef" in title
            assert f"published {PUBLISHED:g}" in title
            # ... and in its details, closed until clicked
            detail = cell.locator("div.detail")
            assert not detail.is_visible()
            cell.locator("summary").click()
            assert cell.locator("details").evaluate("d => d.open")
            assert detail.is_visible()
            shown = detail.inner_text()
            for needle in (*run_ids, GIT_SHA, "aaaaaaaaaaaa", "sha256:0123456789abcdef", "test cpu", "torch: 2.11.0",
                           "demo.yaml#digits"):
                assert needle in shown, needle
            assert all(f"seed {s}: {v:g}" in shown for s, v in enumerate(VALUES))

            # hostile record strings are text, never markup: nothing ran, nothing was fetched
            moco = page.locator("td.prov").filter(has_text="92.00 (1)").first
            assert HOSTILE["cpu"] in moco.get_attribute("title")
            moco.locator("summary").click()
            shown = moco.locator("div.detail").inner_text()
            assert all(HOSTILE[k] in shown for k in HOSTILE)
            assert page.evaluate("window.__pwned") is None
            assert page.locator("script, b[onmouseover], img[onerror]").count() == 0
            assert errors == [] and fetched == []
        finally:
            browser.close()


# ---------------------------------------------------------------- without a browser


ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h3", "table", "thead", "tbody", "tr", "th", "td",
                "details", "summary", "div", "dl", "dt", "dd", "ul", "li", "b", "figure", "img", "figcaption"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.titles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "td" and dict(attrs).get("title"):
            self.titles.append(str(dict(attrs)["title"]))


def test_report_is_escaped_and_self_contained(tmp_path: Path) -> None:
    out = write_report(tmp_path)
    doc = out.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(doc)
    assert {tag for tag, _ in parser.tags} <= ALLOWED_TAGS  # no script, link, iframe, object ...
    assert all(not k.startswith("on") for _, attrs in parser.tags for k in attrs)  # no event handlers
    srcs = [attrs.get("src") or "" for tag, attrs in parser.tags if tag == "img"]
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")  # the curve, no external resource
    assert "http://" not in doc.replace("http://www.w3.org", "") and "https://" not in doc
    assert any(HOSTILE["cpu"] in t for t in parser.titles)  # the attribute holds the text itself
    assert "&lt;script&gt;window.__pwned=2&lt;/script&gt;" in doc
    assert not (tmp_path / "report" / "plots").exists() and not list(tmp_path.glob("*.png"))


def test_out_holds_exactly_what_stdout_would(tmp_path: Path) -> None:
    runs = make_runs(tmp_path)
    for fmt in ("md", "html"):
        out = tmp_path / f"report.{fmt}"
        to_file = compare(str(runs), "--ci", "--out", str(out))  # the format from the suffix
        assert to_file.exit_code == 0 and to_file.output == f"report: wrote {out} ({fmt})\n"
        to_stdout = compare(str(runs), "--ci", "--format", fmt)
        assert out.read_text(encoding="utf-8") == to_stdout.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def _bad_outs(tmp_path: Path) -> list[tuple[list[str], str]]:
    (tmp_path / "a-file").write_text("x")
    cases = [
        (["--format", "html", "--out", str(tmp_path)], "is a folder"),
        (["--format", "html", "--out", str(tmp_path / "a-file" / "report.html")], "is not a folder"),
        (["--out", str(tmp_path / "report.txt")], "name a --format (md, csv or html)"),
        (["--format", "rich", "--out", str(tmp_path / "report.html")], "--out needs --format md, csv or html"),
    ]
    if sys.platform.startswith("linux") and os.path.isdir("/sys"):  # not writable, even by root
        cases.append((["--format", "html", "--out", "/sys/sslbench-report.html"], "cannot write in '/sys'"))
    return cases


def test_bad_out_is_one_line_exit_2_before_any_work(tmp_path: Path) -> None:
    missing_runs = str(tmp_path / "no-runs-here")  # read after --out is checked: its error must not come first
    for args, message in _bad_outs(tmp_path):
        res = CliRunner().invoke(cli, ["compare", missing_runs, *args])
        assert res.exit_code == 2, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, res.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing written
