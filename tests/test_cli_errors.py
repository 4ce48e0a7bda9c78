"""Bad input: one clear line naming the bad value and the valid choices, exit code 2, no record."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli


def _one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_unknown_method_suggests(tmp_path: Path):
    p = run_cli("run", "simclrr", "--out", str(tmp_path))
    assert p.returncode == 2
    assert "Unknown method 'simclrr'. Did you mean: simclr" in _one_error_line(p)
    assert not list(tmp_path.glob("*.json"))


def test_unknown_suite_suggests(tmp_path: Path):
    p = run_cli("run", "simclr", "--suite", "mnist-linaer", "--out", str(tmp_path))
    assert p.returncode == 2
    assert "Unknown suite 'mnist-linaer'. Did you mean: mnist-linear" in _one_error_line(p)


def test_unknown_set_key_names_valid_keys(tmp_path: Path):
    p = run_cli("run", "simclr", "--set", "pretrain.epoch=3", "--out", str(tmp_path))
    assert p.returncode == 2
    line = _one_error_line(p)
    assert "pretrain.epoch" in line and "pretrain.epochs" in line


def test_set_wrong_type(tmp_path: Path):
    p = run_cli("run", "simclr", "--set", "pretrain.batch_size=big", "--out", str(tmp_path))
    assert p.returncode == 2
    line = _one_error_line(p)
    assert "pretrain.batch_size" in line and "'big'" in line and "integer" in line


def test_unknown_method_option(tmp_path: Path):
    p = run_cli("run", "simclr", "--set", "method.temprature=0.1", "--out", str(tmp_path))
    assert p.returncode == 2
    assert "method.temperature" in _one_error_line(p)


def test_malformed_suite_yaml_names_file_and_line(tmp_path: Path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("suite: broken\nversion: 1\ndataset: {name: digits\npretrain: {epochs: 1}\n")
    p = run_cli("run", "simclr", "--suite", str(bad), "--out", str(tmp_path))
    assert p.returncode == 2
    line = _one_error_line(p)
    assert str(bad) in line and ":4" in line


def test_bad_key_in_suite_names_file_and_line(tmp_path: Path):
    bad = tmp_path / "badkey.yaml"
    bad.write_text("suite: badkey\nversion: 1\ndataset: {name: digits}\npretrain:\n  epochz: 1\n")
    p = run_cli("run", "simclr", "--suite", str(bad), "--out", str(tmp_path))
    assert p.returncode == 2
    line = _one_error_line(p)
    assert f"{bad}:5" in line and "pretrain.epochz" in line and "pretrain.epochs" in line


def test_missing_dataset_offline(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_cli("run", "simclr", "--suite", "mnist-linear", "--data-dir", str(empty), "--out", str(tmp_path / "o"))
    assert p.returncode == 2
    line = _one_error_line(p)
    assert "MNIST" in line and str(empty) in line and "--download" in line
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.json"))
