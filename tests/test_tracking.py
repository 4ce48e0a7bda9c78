"""Experiment tracking (issue 14, item 4): ``sslbench run --track tensorboard|wandb``.

A real tiny run on the embedded digits suite writes TensorBoard event files; they are read back with
TensorBoard's own EventAccumulator and compared with the run's record (the same loss steps and values, the
final metric, the learning rate against a naive transcription of warm-up + cosine). The W&B path runs against
a fake ``wandb`` module that records its calls (wandb is in the ``track`` extra, not in ``test``: installed, it
is imported by every process that imports timm); with the real package installed, an offline run is read
back from its ``.wandb`` file too. Without ``--track`` nothing is written and no tracker is imported; bad
``--track`` input is one line, exit 2, nothing on disk.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED_DATA
from hardening import Case, check_case

# 384 training images in batches of 64: 6 steps an epoch, 12 in all, every one kept in loss_history
# (steps_per_epoch // 20 == 0); warm-up over the first 3 steps, then cosine.
TINY = ("--suite", "digits-linear", "--seed", "0", "--quiet", "--set", "pretrain.epochs=2",
        "--set", "pretrain.batch_size=64", "--set", "dataset.max_train_samples=384",
        "--set", "pretrain.warmup_epochs=0.5", "--set", "linear.epochs=5")


def _run(out: Path, *extra: str, env: dict | None = None) -> dict:
    from sslbench.cli import cli

    res = CliRunner().invoke(cli, ["run", "simclr", *TINY, "--out", str(out), *extra], env=env,
                             catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    (record,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert record["status"] == "ok"
    return record


def _f32(x: float) -> float:
    return float(np.float32(x))


def _naive_lr(cfg: dict, steps_per_epoch: int, step: int) -> float:
    """The learning rate optimiser step ``step`` (0-based) used: linear warm-up, then cosine to 0."""
    p = cfg["pretrain"]
    base = {"none": p["lr"], "linear": p["lr"] * p["batch_size"] / 256,
            "sqrt": p["lr"] * math.sqrt(p["batch_size"])}[p["lr_scaling"]]
    total = math.ceil(p["epochs"] * steps_per_epoch)
    warmup = round(p["warmup_epochs"] * steps_per_epoch)
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory, data_root) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("tb") / "out"
    return _run(out, "--track", "tensorboard", env={"SSLBENCH_DATA": str(SHARED_DATA)}), out


def _events(out: Path, run_id: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = out / "tracking" / run_id
    assert list(folder.glob("events.out.tfevents.*")), sorted(p.name for p in out.rglob("*"))
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_loss_scalars_are_the_records_loss_history(tb_run):
    record, out = tb_run
    acc = _events(out, record["run_id"])
    history = record["train"]["loss_history"]
    assert len(history) == record["train"]["steps"] == 12  # every step kept: a real comparison, not a subset
    logged = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert logged == [(int(s), _f32(v)) for s, v in history]  # TensorBoard keeps float32


def test_tensorboard_final_metric_lr_throughput_memory_and_config(tb_run):
    record, out = tb_run
    acc = _events(out, record["run_id"])
    steps = record["train"]["steps"]
    for name, metric in record["metrics"].items():  # linear.top1, knn.top1
        (final,) = acc.Scalars(f"final/{name}")
        assert (final.step, final.value) == (steps, _f32(metric["value"]))
    spe = record["train"]["total_steps"] // record["config"]["pretrain"]["epochs"]
    lrs = [(e.step, e.value) for e in acc.Scalars("train/lr")]
    steps_logged = [int(s) for s, _ in record["train"]["loss_history"]]
    assert [s for s, _ in lrs] == steps_logged
    assert [v for _, v in lrs] == pytest.approx([_naive_lr(record["config"], spe, s - 1) for s in steps_logged],
                                                rel=1e-6)  # the lr step s - 1 used (float32)
    assert lrs[0][1] < lrs[2][1] and lrs[-1][1] < lrs[3][1]  # warm-up rises, cosine falls
    assert all(e.value > 0 for e in acc.Scalars("train/samples_per_s"))
    memory = [e.value for e in acc.Scalars("train/peak_memory_mb")]
    assert memory == sorted(memory) and memory[0] > 0  # a peak never falls
    assert memory[-1] <= _f32(record["timing"]["peak_memory_mb"]) + 0.1  # the record's is measured later
    (text,) = acc.Tensors("config/text_summary")
    logged = json.loads("\n".join(line[4:] for line in text.tensor_proto.string_val[0].decode().splitlines()))
    assert logged["config"] == record["config"] and logged["run_id"] == record["run_id"]
    assert logged["config_hash"] == record["config_hash"]
    (status,) = acc.Tensors("final/status/text_summary")
    assert status.tensor_proto.string_val[0].decode() == "ok"


class FakeWandb(types.ModuleType):
    """Records what sslbench asks of ``wandb``: init's arguments, each log, the summary, finish."""

    def __init__(self):
        super().__init__("wandb")
        self.inits: list[dict] = []
        self.logs: list[tuple[int, dict]] = []
        self.summary: dict = {}
        self.finished = 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        fake = self
        return types.SimpleNamespace(log=lambda m, step: fake.logs.append((step, dict(m))), summary=self.summary,
                                     finish=lambda: setattr(fake, "finished", fake.finished + 1))


@pytest.fixture
def no_wandb_key(monkeypatch, tmp_path):
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_wandb_gets_config_steps_and_final_metrics_offline_without_a_key(tmp_path, monkeypatch, no_wandb_key,
                                                                         data_root):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    out = tmp_path / "out"
    record = _run(out, "--track", "wandb", "--wandb-project", "proj", "--track-dir", str(tmp_path / "trk"))
    (init,) = fake.inits
    assert init["project"] == "proj" and init["name"] == record["run_id"]
    assert init["mode"] == "offline"  # no WANDB_MODE and no key: offline, never a login prompt
    assert init["dir"] == str(tmp_path / "trk")
    assert {k: init["config"][k] for k in record["config"]} == record["config"]
    assert [(s, m["train/loss"]) for s, m in fake.logs] == [(s, v) for s, v in record["train"]["loss_history"]]
    for name, metric in record["metrics"].items():
        assert fake.summary[f"final/{name}"] == metric["value"]
    assert fake.summary["final/status"] == "ok" and fake.finished == 1
    assert not (out / "tracking").exists()  # --track-dir moved it


def test_wandb_project_from_the_environment_and_wandb_mode_respected(tmp_path, monkeypatch, no_wandb_key):
    from sslbench.tracking import TrackingOptions, make_tracker

    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    tracker = make_tracker(TrackingOptions(("wandb",)), tmp_path)
    tracker.start({"a": 1}, "rid")
    tracker.close()
    assert fake.inits[0]["project"] == "from-env" and fake.inits[0]["mode"] is None  # wandb reads WANDB_MODE


def test_wandb_mode_and_api_key_resolution(tmp_path):
    from sslbench.errors import ConfigError
    from sslbench.tracking.wandb import has_api_key, resolve_mode

    none = {"NETRC": str(tmp_path / "absent")}
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password k3y\n")
    assert not has_api_key(none) and resolve_mode(none) == "offline"
    assert has_api_key({"NETRC": str(netrc)}) and resolve_mode({"NETRC": str(netrc)}) is None
    assert not has_api_key({"NETRC": str(netrc), "WANDB_BASE_URL": "https://wandb.example.org"})
    assert resolve_mode({**none, "WANDB_API_KEY": "k"}) is None
    assert resolve_mode({**none, "WANDB_MODE": "offline"}) is None
    with pytest.raises(ConfigError, match="WANDB_MODE=online but no W&B API key"):
        resolve_mode({**none, "WANDB_MODE": "online"})


def _wandb_records(path: Path) -> list:
    """The protobuf records of a ``.wandb`` file: W&B's LevelDB-log framing (a 7-byte ':W&B' header, 32 KiB
    blocks, each record chunk with a 7-byte header: crc32, length, type FULL 1 / FIRST 2 / MIDDLE 3 / LAST 4)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, chunks, out = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        chunks = chunk if kind in (1, 2) else chunks + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(chunks)
            out.append(record)
    return out


def test_real_wandb_offline_run_holds_config_history_and_summary(tmp_path, monkeypatch, no_wandb_key, data_root):
    pytest.importorskip("wandb", reason="the real W&B path needs pip install 'sslbench[track]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    record = _run(tmp_path / "out", "--track", "wandb")
    (path,) = (tmp_path / "out" / "tracking" / "wandb").glob("offline-run-*/run-*.wandb")
    recs = _wandb_records(path)
    (run,) = [r.run for r in recs if r.WhichOneof("record_type") == "run"]
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert run.display_name == record["run_id"]
    assert {k: config[k]["value"] if isinstance(config[k], dict) and "value" in config[k] else config[k]
            for k in record["config"]} == record["config"]
    history = {}
    summary = {}
    for r in recs:
        if r.WhichOneof("record_type") == "history":
            row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            history[row["_step"]] = row["train/loss"]
        elif r.WhichOneof("record_type") == "summary":
            summary.update({u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in r.summary.update})
    assert sorted(history.items()) == [(s, v) for s, v in record["train"]["loss_history"]]
    for name, metric in record["metrics"].items():
        assert summary[f"final/{name}"] == metric["value"]
    assert summary["final/status"] == "ok"


def test_without_track_nothing_is_written_and_no_tracker_is_imported(tmp_path, data_root):
    out = tmp_path / "out"
    trackers = ("tensorboard", "torch.utils.tensorboard", "sslbench.tracking.tensorboard", "sslbench.tracking.wandb")
    code = ("import sys\nfrom sslbench.cli import cli\n"
            "try:\n    cli(sys.argv[1:])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            f"print(sorted(m for m in sys.modules if m.startswith({trackers!r})))")
    argv = ["run", "simclr", *TINY, "--set", "pretrain.epochs=1", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SSLBENCH_DATA": str(SHARED_DATA)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    (record,) = out.glob("*.json")
    assert sorted(p.name for p in out.iterdir() if p.name != ".work") == [record.name]  # no tracking folder


def test_a_failing_tracker_is_one_warning_and_the_others_go_on():
    from sslbench.tracking import MultiTracker

    calls, warnings = [], []

    class Broken:
        name = "broken"

        def start(self, config, run_id, **info):
            pass

        def log_step(self, step, metrics):
            raise OSError("disk full")

        def close(self):
            calls.append("broken closed")

    class Good:
        name = "good"

        def start(self, config, run_id, **info):
            calls.append("start")

        def log_step(self, step, metrics):
            calls.append(step)

        def log_final(self, metrics, step=None):
            calls.append(metrics)

        def close(self):
            calls.append("closed")

    tracker = MultiTracker([Broken(), Good()], warn=warnings.append)
    tracker.start({}, "r")
    tracker.log_step(1, {"train/loss": 1.0})
    tracker.log_step(2, {"train/loss": 0.5})
    tracker.log_final({"x": 1.0})
    tracker.close()
    assert calls == ["start", "broken closed", 1, 2, {"x": 1.0}, "closed"]
    assert len(warnings) == 1 and "broken failed in log_step() (OSError: disk full)" in warnings[0]


def test_track_values_split_on_commas_repeat_and_fold():
    from sslbench.tracking import parse_track

    both = ("tensorboard", "wandb")
    assert parse_track(["tensorboard,wandb"]) == parse_track(["TensorBoard", " wandb", "tb", "wandb,"]) == both
    assert parse_track([]) == ()


OUT = ("out", "out/*", "tracking")  # nothing written: not even --out


def _track_run(*extra: str) -> tuple[str, ...]:
    return ("run", "simclr", "--out", "{tmp}/out", "--set", "pretrain.epochs=0", *extra)


# (case, modules made unimportable in the CLI's process, a fake wandb present)
ROWS = [
    (Case("unknown-tracker", _track_run("--track", "tensorbord"), 2,
          "Bad value for '--track': Unknown tracker 'tensorbord'. Did you mean: tensorboard?", absent=OUT,
          in_process=True), (), False),
    (Case("unknown-in-comma-list", _track_run("--track", "tensorboard,mlflow"), 2,
          "Unknown tracker 'mlflow'. Valid: tensorboard, wandb", absent=OUT, in_process=True), (), False),
    (Case("tensorboard-missing", _track_run("--track", "tensorboard"), 2,
          "--track tensorboard needs the package 'tensorboard', which is not installed", absent=OUT,
          in_process=True),
     ("tensorboard", "torch.utils.tensorboard"), False),
    (Case("wandb-missing", _track_run("--track", "tensorboard", "--track", "wandb"), 2,
          "pip install 'sslbench[track]'", absent=OUT, in_process=True), ("wandb",), False),
    (Case("wandb-online-without-key", _track_run("--track", "wandb"), 2,
          "WANDB_MODE=online but no W&B API key", absent=OUT, in_process=True, env={"WANDB_MODE": "online"}),
     (), True),
]


@pytest.mark.parametrize(("case", "missing", "fake_wandb"), ROWS, ids=[r[0].id for r in ROWS])
def test_bad_track_input_is_one_line_exit_2_and_nothing_on_disk(case, missing, fake_wandb, tmp_path, monkeypatch,
                                                                no_wandb_key):
    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)  # the import fails as if the package were not installed
    if fake_wandb:
        monkeypatch.setitem(sys.modules, "wandb", FakeWandb())
    check_case(case, tmp_path)
