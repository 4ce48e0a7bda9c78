"""End to end on real data: the default job and MNIST pretraining beating the random-init floor."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from sslbench.results.records import load_records


def _run(out: Path, *args: str) -> dict:
    p = run_cli("run", "simclr", "--quiet", "--out", str(out), *args)
    assert p.returncode == 0, p.stderr
    records = load_records([out])
    assert len(records) == 1
    return records[0]


@pytest.mark.slow
def test_default_job_digits(tmp_path: Path):
    """`sslbench run simclr` as the README runs it: a complete record, linear probe >= 95% on digits."""
    rec = _run(tmp_path)
    assert rec["status"] == "ok"
    assert rec["suite"]["name"] == "digits-linear" and rec["suite"]["data_fingerprint"].startswith("sha256:")
    assert rec["metrics"]["linear.top1"]["value"] >= 95.0
    assert rec["metrics"]["linear.top1"]["higher_is_better"] is True
    assert rec["metrics"]["knn.top1"]["value"] >= 90.0
    for section in ("config", "code", "environment", "hardware", "timing", "train"):
        assert rec[section], section
    assert rec["environment"]["torch"] and rec["hardware"]["cpu_count"] >= 1
    assert rec["timing"]["peak_memory_mb"] > 0 and rec["timing"]["samples_per_s"] > 0
    assert len(rec["config_hash"]) == 12
    losses = [loss for _, loss in rec["train"]["loss_history"]]
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_mnist_pretraining_beats_random_init(tmp_path: Path):
    """On real MNIST (10k training images, 2 epochs) SimCLR beats the same encoder at random init by >= 5 points."""
    common = ("--suite", "mnist-linear", "--set", "dataset.max_train_samples=10000", "--set", "linear.epochs=30")
    random_init = _run(tmp_path / "random", *common, "--set", "pretrain.epochs=0")
    trained = _run(tmp_path / "trained", *common, "--set", "pretrain.epochs=2")
    floor = random_init["metrics"]["linear.top1"]["value"]
    got = trained["metrics"]["linear.top1"]["value"]
    assert random_init["train"]["steps"] == 0
    assert got >= floor + 5.0, (got, floor)
    # same data, different config: the two runs must not be averaged together by compare
    assert random_init["config_hash"] != trained["config_hash"]
    assert random_init["suite"]["data_fingerprint"] == trained["suite"]["data_fingerprint"]
