"""Hardening of a run (issue 11): bad values and suite files, --out, --resume, signals, a second process, a full disk.

The table rows are the cases that end in one line and exit 2 before any work; the tests below the
table drive real processes (SIGINT at a random step, SIGTERM, two identical runs at once) and the
atomic writers under a failing disk.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA
from hardening import Case as _Case
from hardening import check_case


def Case(*args, **kwargs):  # noqa: N802 - the table's row type, run in this process (no plugins involved)
    return _Case(*args, in_process=True, **kwargs)


NOTHING = ("out", "out/*.json")  # nothing written: not even the --out folder


def _suite(name: str, text: str):
    def setup(tmp: Path) -> None:
        (tmp / f"{name}.yaml").write_text(text)

    return setup


def _run(*extra: str) -> tuple[str, ...]:
    return ("run", "simclr", "--out", "{tmp}/out", *extra)


def _suite_run(name: str) -> tuple[str, ...]:
    return _run("--suite", f"{{tmp}}/{name}.yaml")


CASES = [
    # values not checked before work started (tracebacks or failed records before)
    Case("epochs-negative", _run("--set", "pretrain.epochs=-1"), 2, "'pretrain.epochs': -1", absent=NOTHING),
    Case("batch-size-zero", _run("--set", "pretrain.batch_size=0"), 2, "'pretrain.batch_size': 0; valid: 1 or more",
         absent=NOTHING),
    Case("temperature-zero", _run("--set", "method.temperature=0"), 2, "'method.temperature': 0.0; valid: a number > 0",
         absent=NOTHING),
    Case("temperature-negative", _run("--set", "method.temperature=-0.5"), 2, "'method.temperature': -0.5",
         absent=NOTHING),
    Case("lr-nan", _run("--set", "pretrain.lr=.nan"), 2, "'pretrain.lr': nan; valid: a finite number", absent=NOTHING),
    Case("seed-too-large", _run("--seed", str(2**70)), 2, f"'seed': {2**70}; valid: an integer from 0 to 2**63 - 1",
         absent=NOTHING),
    Case("crop-scale-reversed", _run("--set", "views.crop_scale=[0.9, 0.2]"), 2,
         "'views.crop_scale': (0.9, 0.2); valid: [low, high] with 0 < low <= high <= 1", absent=NOTHING),
    Case("threads-negative", _run("--set", "pretrain.threads=-2"), 2, "'pretrain.threads': -2", absent=NOTHING),
    Case("probe-epochs-negative", _run("--set", "linear.epochs=-3"), 2, "'protocols.linear.epochs': -3",
         absent=NOTHING),
    Case("flip-probability", _run("--set", "views.flip_p=1.5"), 2, "'views.flip_p': 1.5; valid: a probability",
         absent=NOTHING),
    # suite files not validated
    Case("suite-without-dataset", _suite_run("nodata"), 2, "names no data set",
         setup=_suite("nodata", "suite: nodata\nversion: 1\npretrain: {epochs: 1}\n"), absent=NOTHING),
    Case("suite-method-typo", _suite_run("typo"), 2, "typo.yaml:4: Unknown method 'simclrr'. Did you mean: simclr",
         setup=_suite("typo", "include: digits-linear\nsuite: typo\nmethods:\n  simclrr: {temperature: 0.1}\n"),
         absent=NOTHING),
    Case("suite-protocols-mapping", _suite_run("pmap"), 2, "pmap.yaml:3: 'protocols' must be a list",
         setup=_suite("pmap", "include: digits-linear\nsuite: pmap\nprotocols:\n  linear: {epochs: 5}\n"),
         absent=NOTHING),
    Case("suite-version-type", _suite_run("badver"), 2, "badver.yaml:3: bad suite version 'two'",
         setup=_suite("badver", "include: digits-linear\nsuite: badver\nversion: two\n"), absent=NOTHING),
    Case("suite-seeds-type", _suite_run("badseeds"), 2, "badseeds.yaml:3: 'seeds' must be a non-empty list",
         setup=_suite("badseeds", "include: digits-linear\nsuite: badseeds\nseeds: zero\n"), absent=NOTHING),
    Case("suite-seed-value", _suite_run("bigseed"), 2, "bigseed.yaml:3: Bad value for 'seeds': -1",
         setup=_suite("bigseed", "include: digits-linear\nsuite: bigseed\nseeds: [-1]\n"), absent=NOTHING),
    Case("suite-unknown-key", _suite_run("unk"), 2, "unk.yaml:3: Unknown suite key 'protocls'. Did you mean: protocols?",
         setup=_suite("unk", "include: digits-linear\nsuite: unk\nprotocls: []\n"), absent=NOTHING),
    Case("suite-name-climbs-out", _suite_run("evil"), 2, "evil.yaml:2: bad suite name '../../evil'",
         setup=_suite("evil", "include: digits-linear\nsuite: ../../evil\n"), absent=NOTHING),
    Case("suite-value-located", _suite_run("badval"), 2, "badval.yaml:4: Bad value for 'pretrain.batch_size': 0",
         setup=_suite("badval", "include: digits-linear\nsuite: badval\npretrain:\n  batch_size: 0\n"),
         absent=NOTHING),
    Case("target-unknown", _run("--set", "dataset.targets=[speaker]"), 2,
         "Bad value in 'dataset.targets': 'speaker' is not a label set of digits; valid: none", absent=NOTHING),
    # text (issue 12): SimCSE, the sts protocol, input noise
    Case("simcse-temperature-zero", ("run", "simcse", "--suite", "sst2-simcse", "--set", "method.temperature=0",
                                     "--out", "{tmp}/out"), 2, "'method.temperature': 0.0; valid: a temperature > 0",
         absent=NOTHING),
    Case("sts-unknown-task", ("run", "simcse", "--suite", "sts", "--set", "sts.tasks=[sts12, sts17]",
                              "--out", "{tmp}/out"), 2, "'protocols.sts.tasks': ['sts12', 'sts17']", absent=NOTHING),
    Case("sts-files-missing", ("run", "simcse", "--suite", "sts", "--data-dir", "{tmp}/data", "--out", "{tmp}/out"), 2,
         "STS12-en-test/STS.input.MSRpar.txt not found", absent=NOTHING,
         setup=lambda tmp: __import__("shutil").copytree(SHARED_DATA / "text", tmp / "data" / "text")),
    Case("noisy-input-unknown-perturbation", ("run", "baseline.frozen", "--suite", "sst2-textnoise", "--set",
                                              "noisy_input.perturbation=word_drop", "--out", "{tmp}/out"), 2,
         "word_drop", absent=NOTHING),
    # output places and --resume
    Case("out-under-a-file", ("run", "simclr", "--out", "{tmp}/file/out"), 2, "Cannot write to --out",
         setup=lambda tmp: (tmp / "file").write_text("not a folder"), absent=("file/out",)),
    Case("resume-nothing", _run("--resume"), 2, "Nothing to resume: no checkpoint of simclr on digits-linear",
         absent=NOTHING),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case: Case, tmp_path: Path):
    check_case(case, tmp_path)


# ---------------------------------------------------------------- real processes

SHORT = ("--set", "pretrain.epochs=10")  # 90 steps on digits; default checkpoint settings


def _start(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "SSLBENCH_DATA": str(SHARED_DATA), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "sslbench", "run", "simclr", "--out", str(out), *SHORT, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_training(proc: subprocess.Popen) -> list[str]:
    """Read stderr until the first progress line (training has begun); returns what was read."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("pretrain "):
            return seen
    raise AssertionError(f"the run ended before training: {''.join(seen)}")


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _metrics(record: dict) -> dict:
    return {k: v["value"] for k, v in record["metrics"].items()}


@pytest.mark.slow
def test_sigint_at_a_random_step_then_resume_gives_the_uninterrupted_numbers(tmp_path: Path):
    ref = subprocess.run([sys.executable, "-m", "sslbench", "run", "simclr", "--quiet", "--out", str(tmp_path / "ref"),
                          *SHORT], capture_output=True, text=True, env={**os.environ, "SSLBENCH_DATA": str(SHARED_DATA)})
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    proc = _start(out)
    _wait_for_training(proc)
    time.sleep(random.uniform(0.0, 1.5))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    (stopped,) = _records(out)
    assert stopped["status"] == "interrupted" and "SIGINT" in stopped["error"], stopped["error"]
    assert 0 < stopped["train"]["steps"] < stopped["train"]["total_steps"] == 90
    resumed = subprocess.run([sys.executable, "-m", "sslbench", "run", "simclr", "--quiet", "--resume", "--out", str(out),
                              *SHORT], capture_output=True, text=True,
                             env={**os.environ, "SSLBENCH_DATA": str(SHARED_DATA)})
    assert resumed.returncode == 0, resumed.stderr
    done = [r for r in _records(out) if r["status"] == "ok"]
    assert len(done) == 1 and done[0]["train"]["resumed_from"] == stopped["train"]["steps"]
    assert _metrics(done[0]) == _metrics(_records(tmp_path / "ref")[0])


@pytest.mark.slow
def test_sigterm_writes_an_interrupted_record_and_exits_143(tmp_path: Path):
    proc = _start(tmp_path / "out")
    _wait_for_training(proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    (record,) = _records(tmp_path / "out")
    assert record["status"] == "interrupted" and "SIGTERM" in record["error"]
    assert list((tmp_path / "out" / ".work").glob("*/checkpoint.pt"))


@pytest.mark.slow
def test_a_second_identical_run_stops_at_once_and_the_first_completes(tmp_path: Path):
    out = tmp_path / "out"
    first = _start(out)
    _wait_for_training(first)
    # the first run is short (a few seconds on a fast machine, less than the second's start-up): hold it still
    # while the second starts, so the race the test is about is the only one it sees
    first.send_signal(signal.SIGSTOP)
    try:
        second = subprocess.run([sys.executable, "-m", "sslbench", "run", "simclr", "--out", str(out), *SHORT],
                                capture_output=True, text=True, env={**os.environ, "SSLBENCH_DATA": str(SHARED_DATA)},
                                timeout=120)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2, second.stderr
    assert f"already running in process {first.pid}" in second.stderr
    assert len([ln for ln in second.stderr.splitlines() if ln.strip()]) == 1
    first.communicate(timeout=600)
    assert first.returncode == 0
    (record,) = _records(out)
    assert record["status"] == "ok" and record["train"]["steps"] == 90 and record["metrics"]


# ---------------------------------------------------------------- a full disk


def _fail_midway(real_save):
    def write(obj, f, *args, **kwargs):
        f.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path, monkeypatch):
    from sslbench.engine import save_checkpoint

    path = tmp_path / "work" / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", _fail_midway(torch.save))
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]  # no temporary file left behind


def test_a_failed_record_write_keeps_the_record_store(tmp_path: Path, monkeypatch):
    from sslbench import atomic

    store = tmp_path / "runs"
    atomic.atomic_write_text(store / "a.json", '{"ok": 1}')

    def failing(path, write, binary=False):
        def torn(f):
            f.write('{"tor')
            raise OSError(errno.ENOSPC, "No space left on device")

        return original(path, torn, binary)

    original = atomic.atomic_write
    monkeypatch.setattr(atomic, "atomic_write", failing)
    with pytest.raises(OSError):
        atomic.atomic_write_text(store / "b.json", '{"ok": 2}')
    assert sorted(p.name for p in store.iterdir()) == ["a.json"]
    assert (store / "a.json").read_text() == '{"ok": 1}'


def test_names_that_become_paths_cannot_climb_out_of_out(tmp_path: Path):
    """A plugin method or a suite named with '../' or an absolute path still writes under --out."""
    from sslbench.build import RunOptions, new_run_id
    from sslbench.config import RunConfig
    from sslbench.runner import work_dir

    for name in ("../../evil", "/etc/evil", "..", "a/../../b"):
        cfg = RunConfig(method=name, suite=name, seed=0)
        run_id = new_run_id(cfg)
        assert "/" not in run_id and not run_id.startswith(".")
        wdir = work_dir(RunOptions(out_dir=tmp_path), cfg, "h")
        assert wdir.resolve().parent == (tmp_path / ".work").resolve()
