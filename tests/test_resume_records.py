"""Checkpoint/resume after SIGKILL, concurrent record writers, atomic records, diverged runs."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, run_cli

from sslbench.results.records import RunRecord, load_records, save_record, write_json

# digits, enough steps that a kill lands mid-way; checkpoints every 5 steps
RESUME_ARGS = ["run", "simclr", "--suite", "digits-linear", "--quiet", "--set", "pretrain.epochs=12",
               "--set", "pretrain.checkpoint_every=5", "--set", "linear.epochs=20", "--set", "pretrain.threads=1"]


def _metrics(out: Path) -> dict:
    (rec,) = load_records([out])
    assert rec["status"] == "ok", rec.get("error")
    return {k: v["value"] for k, v in rec["metrics"].items()} | {"final_loss": rec["train"]["final_loss"]}


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path):
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    p = run_cli(*RESUME_ARGS, "--out", str(ref_out))
    assert p.returncode == 0, p.stderr
    reference = _metrics(ref_out)

    env = {**os.environ, "SSLBENCH_DATA": str(SHARED_DATA)}
    proc = subprocess.Popen([sys.executable, "-m", "sslbench", *RESUME_ARGS, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = list((out / ".work").glob("*/checkpoint.pt")) if (out / ".work").exists() else []
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        ckpts = list((out / ".work").glob("*/checkpoint.pt")) if (out / ".work").exists() else []
        if ckpts:
            step = torch.load(ckpts[0], weights_only=False)["step"]
            if step >= 10:
                proc.send_signal(signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_at is not None, "the run finished before it could be killed"
    assert not list(out.glob("*.json")), "a killed run must not leave a record"

    p = run_cli(*RESUME_ARGS, "--out", str(out), "--resume")
    assert p.returncode == 0, p.stderr
    (rec,) = load_records([out])
    assert rec["train"]["resumed_from"] is not None and rec["train"]["resumed_from"] >= killed_at
    assert _metrics(out) == reference


def _writer(out: str, tag: int, n: int) -> None:
    for i in range(n):
        rec = RunRecord(run_id=f"w{tag}-{i}", status="ok", method={"name": "m"}, suite={"name": "s"},
                        config={"payload": "x" * 5000}, config_hash="h", seed=i)
        save_record(rec, Path(out))


def test_concurrent_writers_lose_nothing(tmp_path: Path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), t, 40)) for t in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    records = load_records([tmp_path])
    assert sorted(r["run_id"] for r in records) == sorted(f"w{t}-{i}" for t in range(2) for i in range(40))
    assert not list(tmp_path.glob(".*.tmp"))


def test_crash_mid_write_leaves_no_truncated_record(tmp_path: Path, monkeypatch):
    target = tmp_path / "r.json"
    write_json(target, {"schema_version": 1, "run_id": "old"})

    class Boom:
        def __repr__(self):
            raise RuntimeError("crash while serialising")

    def exploding_default(obj):
        raise RuntimeError("crash while serialising")

    monkeypatch.setattr("sslbench.results.records._json_default", exploding_default)
    with pytest.raises(RuntimeError):
        write_json(target, {"schema_version": 1, "run_id": "new", "bad": Boom()})
    assert json.loads(target.read_text())["run_id"] == "old"
    assert not [p for p in tmp_path.iterdir() if p.name != "r.json"]


def test_nan_loss_is_recorded_as_diverged(tmp_path: Path):
    # a learning rate of 1e12 blows the weights up within a few steps
    p = run_cli("run", "simclr", "--quiet", "--out", str(tmp_path), "--set", "pretrain.epochs=3",
                "--set", "pretrain.lr=1e12", "--set", "pretrain.optimizer=sgd", "--set", "pretrain.warmup_epochs=0")
    assert p.returncode == 1
    (rec,) = load_records([tmp_path])
    assert rec["status"] == "diverged"
    assert "loss became" in rec["error"] and rec["metrics"] == {}
