"""``sslbench sweep`` (issue 14): the grid, the one-line refusals, skip/resume, and the three executors.

The runs are real: SimCLR and MoCo v2 on the embedded ``digits`` set (one pretraining epoch, a 5-epoch linear
probe: seconds a point, most of it the interpreter start-up). Ray is not in the test extra (285 MB installed, its
own processes); its path runs here with a fake ``ray`` module that runs each task inline, and with the real
package only where it is installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from click.testing import CliRunner
from conftest import SHARED_DATA
from hardening import Case as _Case
from hardening import check_case

from sslbench.build import RunOptions
from sslbench.cli import cli
from sslbench.config import config_hash, parse_set
from sslbench.errors import ConfigError
from sslbench.interrupt import Interrupted
from sslbench.runner import execute, has_checkpoint, run_lock
from sslbench.suites import build_run_config
from sslbench.sweep.grid import expand, parse_grid, split_values
from sslbench.sweep.local import slot_env, threads_per_job
from sslbench.sweep.options import parse_minutes

FAST = ("--set", "pretrain.epochs=1", "--set", "linear.epochs=5")
FAST_SETS = ["pretrain.epochs=1", "linear.epochs=5"]
HAS_RAY = importlib.util.find_spec("ray") is not None


def Case(*args, **kwargs):  # noqa: N802 - the table's row type, run in this process
    return _Case(*args, in_process=True, **kwargs)


def _sweep(*args: str) -> tuple[str, ...]:
    return ("sweep", *args, "--out", "{tmp}/out")


def _records(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def _expected_hash(method: str, seed: int, sets: list[str]) -> str:
    """The config hash ``sslbench run`` gives this point, computed here without the sweep."""
    cfg, _, _ = build_run_config(method, "digits-linear", parse_set(sets), seed)
    return config_hash(cfg)


def _in_process(*args: str) -> SimpleNamespace:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "400"})
    return SimpleNamespace(returncode=res.exit_code, stdout=res.stdout, stderr=res.stderr)


# ---------------------------------------------------------------- the grid, pure


def test_grid_values_split_on_top_level_commas_only():
    assert split_values("0.1,0.2") == ["0.1", "0.2"]
    assert split_values("[0.2,1.0],[0.5, 1.0]") == ["[0.2,1.0]", "[0.5, 1.0]"]
    assert split_values("'a,b',{x: 1, y: 2}") == ["'a,b'", "{x: 1, y: 2}"]
    assert split_values("[0.2,1.0") is None and split_values("0.1]") is None and split_values("'a,b") is None


def test_expand_is_the_product_of_methods_suites_seeds_and_axes():
    axes = parse_grid(["method.temperature=0.1,0.2,0.1", "pretrain.batch_size=64,128"])
    assert axes == [("method.temperature", ["0.1", "0.2"]), ("pretrain.batch_size", ["64", "128"])]
    points = expand(("simclr", "moco.v2"), ("a", "b"), {"a": (0, 1), "b": (3,)}, axes)
    naive = []  # the same product written out as nested loops
    for method in ("simclr", "moco.v2"):
        for suite, seeds in (("a", (0, 1)), ("b", (3,))):
            for seed in seeds:
                for t in ("0.1", "0.2"):
                    for b in ("64", "128"):
                        naive.append((method, suite, seed, (("method.temperature", t), ("pretrain.batch_size", b))))
    assert [(p.method, p.suite, p.seed, p.grid) for p in points] == naive
    assert points[1].sets(("pretrain.epochs=1",)) == ("pretrain.epochs=1", "method.temperature=0.1",
                                                      "pretrain.batch_size=128")
    assert len(expand(("m",), ("a",), {"a": (0,)}, [])) == 1


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30:00", 90), ("0:00:30", 1), ("2-01:00:00", 2940)])
def test_slurm_time(text: str, minutes: int):
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize("text", ["1:30", "0", "1:75:00", "abc", "-5", ""])
def test_slurm_time_refused(text: str):
    with pytest.raises(ConfigError, match="--slurm-time"):
        parse_minutes(text)


def test_threads_and_gpus_per_job_slot():
    assert [threads_per_job(j, cores=16) for j in (1, 2, 3, 16, 40)] == [16, 8, 5, 1, 1]
    assert slot_env(0, [], 4) == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4"}
    assert "CUDA_VISIBLE_DEVICES" not in slot_env(1, ["0"], 1)  # one GPU: every job shares it
    assert [slot_env(s, ["2", "5"], 1)["CUDA_VISIBLE_DEVICES"] for s in range(4)] == ["2", "5", "2", "5"]


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing on disk

NOTHING = ("out",)
CASES = [
    Case("unknown-method", _sweep("simclr", "simcl"), 2, "Unknown method 'simcl'. Did you mean: simclr",
         absent=NOTHING),
    Case("unknown-suite", _sweep("simclr", "--suite", "digits-linaer"), 2, "digits-linaer", absent=NOTHING),
    Case("grid-no-equals", _sweep("simclr", "--grid", "method.temperature"), 2,
         "Bad --grid 'method.temperature': expected KEY=V1,V2,...", absent=NOTHING),
    Case("grid-empty-value", _sweep("simclr", "--grid", "method.temperature=0.1,,0.2"), 2,
         "Bad --grid 'method.temperature=0.1,,0.2'", absent=NOTHING),
    Case("grid-unbalanced", _sweep("simclr", "--grid", "views.crop_scale=[0.2,1.0"), 2, "Bad --grid",
         absent=NOTHING),
    Case("grid-key-twice", _sweep("simclr", "--grid", "method.temperature=0.1", "--grid",
                                  "method.temperature=0.2"), 2, "already a --grid axis", absent=NOTHING),
    Case("grid-and-set", _sweep("simclr", "--grid", "pretrain.epochs=1,2", "--set", "pretrain.epochs=3"), 2,
         "'pretrain.epochs' is also given with --set", absent=NOTHING),
    Case("grid-unknown-key", _sweep("simclr", "--grid", "method.temprature=0.1,0.2"), 2, "temprature",
         absent=NOTHING),
    Case("grid-bad-value", _sweep("simclr", "moco.v2", "--grid", "pretrain.epochs=1,-1"), 2, "'pretrain.epochs'",
         absent=NOTHING),
    Case("bad-set", _sweep("simclr", "--set", "pretrain.batch_size=many"), 2, "pretrain.batch_size",
         absent=NOTHING),
    Case("unknown-executor", _sweep("simclr", "--executor", "slurm"), 2,
         "Unknown executor 'slurm'. Valid: local, ray, submitit", absent=NOTHING),
    Case("jobs-zero", _sweep("simclr", "--jobs", "0"), 2, "Bad --jobs 0", absent=NOTHING),
    Case("slurm-option-local", _sweep("simclr", "--slurm-partition", "gpu"), 2,
         "--slurm-partition applies to --executor submitit only", absent=NOTHING),
    Case("ray-option-submitit", _sweep("simclr", "--executor", "submitit", "--ray-gpus", "1"), 2,
         "--ray-gpus applies to --executor ray only", absent=NOTHING),
    Case("slurm-unknown-parameter", _sweep("simclr", "--executor", "submitit", "--slurm-option", "qoz=high"), 2,
         "Unknown SLURM parameter 'qoz'. Did you mean: qos?", absent=NOTHING),
    Case("slurm-bad-time", _sweep("simclr", "--executor", "submitit", "--slurm-time", "1:30"), 2,
         "Bad --slurm-time '1:30'", absent=NOTHING),
    Case("submitit-unknown-cluster", _sweep("simclr", "--executor", "submitit", "--submitit-cluster", "slrum"), 2,
         "Unknown submitit cluster 'slrum'", absent=NOTHING),
    # not an error: the plan of a fresh sweep on stderr (the table and the commands on stdout), nothing written
    Case("dry-run", _sweep("simclr", "moco.v2", "--seed", "0", "--seed", "1", "--dry-run"), 0,
         "4 points: 0 done already, 4 to run with --executor local", absent=NOTHING),
    Case("duplicates-run-once", _sweep("simclr", "simclr", "--seed", "0", "--dry-run"), 0,
         "1 point: 0 done already, 1 to run", absent=NOTHING, one_line=False),
]
if not HAS_RAY:
    CASES.append(Case("ray-missing", _sweep("simclr", "--executor", "ray"), 2,
                      "--executor ray needs the ray package, which is not installed", absent=NOTHING))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case: _Case, tmp_path: Path):
    check_case(case, tmp_path)


# ---------------------------------------------------------------- real sweeps


def test_two_methods_two_seeds_with_two_jobs_then_nothing_to_run(tmp_path: Path):
    out = tmp_path / "out"
    args = ("sweep", "simclr", "moco.v2", "--seed", "0", "--seed", "1", *FAST, "--jobs", "2", "--out", str(out))
    p = _in_process(*args)  # the sweep here, its points in processes of their own
    assert p.returncode == 0, p.stderr
    assert "4 points: 0 done already, 4 to run with --executor local" in p.stderr
    records = _records(out)
    expected = [*itertools.product(["simclr"], [None], [0, 1], ["ok"]), *itertools.product(["moco"], ["v2"], [0, 1],
                                                                                           ["ok"])]
    assert sorted(((r["method"]["name"], r["method"]["variant"], r["seed"], r["status"]) for r in records.values()),
                  key=str) == sorted(expected, key=str)
    for r in records.values():  # each point is the run `sslbench run` would have made
        method = r["method"]["name"] + (f".{r['method']['variant']}" if r["method"]["variant"] else "")
        assert r["config_hash"] == _expected_hash(method, r["seed"], FAST_SETS)
        assert r["config"]["pretrain"]["epochs"] == 1 and r["metrics"]["linear.top1"]["value"] > 0
        assert r["run_id"] in p.stdout  # the summary table
    before = {name: (out / name).read_bytes() for name in records}

    again = _in_process(*args)
    assert again.returncode == 0, again.stderr
    assert "4 points: 4 done already, 0 to run" in again.stderr
    assert {p.name: p.read_bytes() for p in out.glob("*.json")} == before  # nothing ran, nothing rewritten
    assert again.stdout.count("ok (done already)") == 4


class _StopAfter:
    """A GracefulStop stand-in that asks for a stop after ``n`` training steps (as a Ctrl-C would)."""

    def __init__(self, n: int):
        self.n, self.seen = n, 0

    @property
    def requested(self) -> int | None:
        self.seen += 1
        return signal.SIGINT if self.seen >= self.n else None

    @contextlib.contextmanager
    def deferred(self):
        yield

    def raise_if_requested(self) -> None:
        if self.seen >= self.n:
            raise Interrupted(signal.SIGINT)


def test_an_interrupted_point_is_resumed_from_its_checkpoint(tmp_path: Path):
    out = tmp_path / "out"
    sets = ["linear.epochs=5", "pretrain.epochs=3"]
    cfg, cls, _ = build_run_config("simclr", "digits-linear", parse_set(sets), 0)
    opts = RunOptions(out_dir=out, data_root=SHARED_DATA, resume=False, progress=False)
    with run_lock(opts, cfg), pytest.raises(Interrupted):  # the point, stopped after 4 steps as by a Ctrl-C
        execute(cfg, cls, opts, stop=_StopAfter(4))
    assert has_checkpoint(opts, cfg)
    (stopped,) = _records(out).values()
    assert stopped["status"] == "interrupted" and 0 < stopped["train"]["steps"] < stopped["train"]["total_steps"]

    p = _in_process("sweep", "simclr", "--seed", "0", "--set", sets[0], "--set", sets[1], "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "1 point: 0 done already, 1 to run (1 resumed from a checkpoint)" in p.stderr
    (resumed,) = [r for r in _records(out).values() if r["run_id"] != stopped["run_id"]]
    assert resumed["status"] == "ok" and resumed["config_hash"] == stopped["config_hash"]
    assert resumed["train"]["resumed_from"] == stopped["train"]["steps"]
    assert resumed["train"]["steps"] == resumed["train"]["total_steps"] == stopped["train"]["total_steps"]


@pytest.mark.slow
def test_ctrl_c_stops_the_points_gracefully_and_the_next_sweep_would_resume(tmp_path: Path):
    out = tmp_path / "out"
    # two seeds, one job: the second point is still pending when the signal comes (the sweep once waited on it
    # for ever, ignoring every later signal)
    args = ("sweep", "simclr", "--seed", "0", "--seed", "1", "--jobs", "1", "--set", "pretrain.epochs=30",
            "--set", "pretrain.checkpoint_every=2", "--set", "linear.epochs=5", "--out", str(out))
    env = {**os.environ, "SSLBENCH_DATA": str(SHARED_DATA), "COLUMNS": "400"}
    sweep = subprocess.Popen([sys.executable, "-m", "sslbench", *args], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(out.glob(".work/*/checkpoint.pt")) and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the point is training once its first checkpoint is there (270 steps: far from done)
    sweep.send_signal(signal.SIGINT)  # to the sweep only, as a terminal's Ctrl-C (the points have their own session)
    stdout, stderr = sweep.communicate(timeout=300)
    assert sweep.returncode == 130, stderr
    (stopped,) = _records(out).values()
    assert stopped["status"] == "interrupted" and "SIGINT" in stopped["error"], stopped["error"]
    assert 0 < stopped["train"]["steps"] < stopped["train"]["total_steps"]
    assert stopped["seed"] == 0 and stopped["run_id"] in stdout and "run the same sweep again" in stderr

    plan = _in_process(*args, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "2 points: 0 done already, 2 to run (1 resumed from a checkpoint)" in plan.stderr


def test_submitit_job_array_on_the_local_executor(tmp_path: Path):
    pytest.importorskip("submitit")
    out = tmp_path / "out"
    p = _in_process("sweep", "simclr", "--seed", "0", "--seed", "1", *FAST, "--executor", "submitit",
                "--submitit-cluster", "local", "--slurm-cpus", "1", "--slurm-time", "10", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "submitted 2 point(s) to local" in p.stderr
    records = _records(out)
    assert sorted((r["seed"], r["status"]) for r in records.values()) == [(0, "ok"), (1, "ok")]
    assert all(r["config_hash"] == _expected_hash("simclr", 0, FAST_SETS) for r in records.values())
    results = list((out / ".sweep" / "submitit").glob("*/*_result.pkl"))
    assert len(results) == 2  # one submitit job per point, each returned its outcome


class _Ref:
    """An ObjectRef: hashable, holding the task's value or exception."""

    def __init__(self, value=None, error=None):
        self.value, self.error = value, error


class _FakeRay(ModuleType):
    """Ray's API as the sweep uses it, running each task inline in this process."""

    def __init__(self):
        super().__init__("ray")
        self.initialised, self.init_calls, self.remote_options, self.submitted, self.shutdowns = False, [], [], [], 0

    def is_initialized(self) -> bool:
        return self.initialised

    def init(self, address=None, **kwargs):
        self.initialised = True
        self.init_calls.append((address, kwargs))

    def shutdown(self):
        self.initialised = False
        self.shutdowns += 1

    def remote(self, **options):
        self.remote_options.append(options)

        def wrap(fn):
            def submit(*args):
                self.submitted.append(args)
                try:
                    return _Ref(value=fn(*args))
                except Exception as e:  # as ray.get re-raises a task's exception
                    return _Ref(error=e)

            return SimpleNamespace(remote=submit)

        return wrap

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        if ref.error is not None:
            raise ref.error
        return ref.value

    def cancel(self, ref):
        pass


def test_ray_tasks_through_a_fake_ray_and_a_diverged_point_does_not_stop_the_other(tmp_path: Path, monkeypatch):
    import torch

    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    out = tmp_path / "out"
    threads = torch.get_num_threads()
    try:
        p = _in_process("sweep", "simclr", "--seed", "0", *FAST, "--grid", "pretrain.lr=1e30,0.002", "--executor",
                        "ray", "--ray-address", "auto", "--ray-cpus", "2", "--jobs", "1", "--out", str(out))
    finally:
        torch.set_num_threads(threads)  # the inline tasks set this process's torch threads
    assert p.returncode == 1, p.stderr  # one point diverged: not every point ended ok
    assert fake.init_calls == [("auto", {})] and fake.shutdowns == 1
    assert fake.remote_options == [{"num_cpus": 2.0, "num_gpus": 0.0}]
    specs = [args[0] for args in fake.submitted]
    assert len(specs) == 2 and all(s.threads == 2 for s in specs)
    assert all(s.argv[:2] == ["run", "simclr"] and "--resume-if-any" in s.argv for s in specs)
    by_lr = {r["config"]["pretrain"]["lr"]: r for r in _records(out).values()}
    assert by_lr[1e30]["status"] == "diverged" and by_lr[0.002]["status"] == "ok"  # the first did not stop the second
    assert by_lr[0.002]["config_hash"] == _expected_hash("simclr", 0, [*FAST_SETS, "pretrain.lr=0.002"])
    assert "diverged" in p.stdout and "2 points: 1 diverged, 1 ok" in p.stderr


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (it is in the 'sweep' extra, not in 'test')")
def test_ray_tasks_on_a_real_local_ray(tmp_path: Path):
    import ray

    out = tmp_path / "out"
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        p = _in_process("sweep", "simclr", "--seed", "0", "--seed", "1", *FAST, "--executor", "ray",
                        "--ray-cpus", "1", "--data-dir", str(SHARED_DATA), "--out", str(out))
    finally:
        ray.shutdown()
    assert p.returncode == 0, p.stderr
    assert sorted((r["seed"], r["status"]) for r in _records(out).values()) == [(0, "ok"), (1, "ok")]
