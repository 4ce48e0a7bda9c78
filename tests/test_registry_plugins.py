"""Registry: wildcards and origins, plugin folders, entry points, broken plugins, non-editable installs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from sslbench.errors import UnknownNameError
from sslbench.registry import Registry

TOY_METHOD = textwrap.dedent('''
    from dataclasses import dataclass
    from sslbench.method import Method, StepOutput
    from sslbench.plugins import register_method

    @register_method("toyclr", variants={"fast": dict(scale=2.0)})
    class ToyCLR(Method):
        @dataclass
        class Config(Method.Config):
            scale: float = 1.0

        def training_step(self, batch):
            return StepOutput(loss=self.encoder(batch.views[0]).pow(2).mean() * self.cfg.scale)
''')


def test_registry_wildcards_and_suggestions():
    reg: Registry = Registry("method")
    for n in ("simclr", "simsiam", "moco"):
        reg.register(n, f"mod:{n}")
    assert reg.names("sim*") == ["simclr", "simsiam"]
    with pytest.raises(UnknownNameError, match=r"Unknown method 'simclrr'. Did you mean: simclr"):
        reg.get("simclrr")
    with pytest.raises(UnknownNameError, match="Valid: moco, simclr, simsiam"):
        reg.get("zzz")


def test_list_methods_wildcard_shows_origin():
    p = run_cli("list", "methods", "sim*")
    assert p.returncode == 0, p.stderr
    assert "simclr" in p.stdout and "builtin" in p.stdout


def test_plugin_folder_adds_method_and_suite(tmp_path: Path):
    (tmp_path / "toy.py").write_text(TOY_METHOD)
    (tmp_path / "toy-suite.yaml").write_text("include: digits-linear\nsuite: toy-suite\nversion: 3\n")
    p = run_cli("--plugins", str(tmp_path), "list", "methods")
    assert p.returncode == 0, p.stderr
    assert "toyclr" in p.stdout and "toyclr.fast" in p.stdout and "plugins:" in p.stdout and "simclr" in p.stdout
    p = run_cli("list", "suites", "toy*", env={"SSLBENCH_PLUGINS": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert "toy-suite" in p.stdout and "digits" in p.stdout


def test_broken_plugin_warns_once_builtins_keep_working(tmp_path: Path):
    (tmp_path / "broken.py").write_text("import does_not_exist_anywhere\n")
    p = run_cli("--plugins", str(tmp_path), "list", "methods")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("broken.py") == 1 and "does_not_exist_anywhere" in p.stderr
    assert "simclr" in p.stdout


def test_entry_point_method(tmp_path: Path):
    pkg = tmp_path / "toy_ep_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(TOY_METHOD.replace('"toyclr"', '"epclr"'))
    dist = tmp_path / "toy_ep_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-ep-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sslbench.methods]\nepclr = toy_ep_pkg:ToyCLR\n")
    p = run_cli("list", "methods", "ep*", env={"PYTHONPATH": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert "epclr" in p.stdout and "entry-point:toy-ep-pkg" in p.stdout


@pytest.mark.slow
def test_non_editable_install_finds_builtin_methods_and_suites(tmp_path: Path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheel_dir), str(REPO)], check=True, capture_output=True)
    wheel = next(wheel_dir.glob("sslbench-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import sslbench, sslbench_methods; from sslbench.plugins import METHODS, SUITES; "
            "print(sslbench.__file__); print(METHODS.names()); print(SUITES.names()); "
            "print(SUITES.get('digits-linear'))")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    assert str(target) in p.stdout  # imported from the installed copy, not the checkout
    assert "'simclr'" in p.stdout and "'digits-linear'" in p.stdout and "'cifar10-linear'" in p.stdout
    assert "'dgi'" in p.stdout and "'grace'" in p.stdout and "'cora-dgi'" in p.stdout  # suites/graph too
