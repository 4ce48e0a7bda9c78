"""The package's shape: every subpackage ships, imports run one way, and no module outside the modalities
(and the data sets, views and encoders of a modality) names a modality."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "sslbench"

# commands -> runner / profiling -> build -> engine / protocols -> modalities -> data, views, components -> core
LAYERS = [
    {"commands", "cli", "__main__", "regression", "sweep"},
    {"runner", "profiling"},
    {"build"},
    {"engine", "protocols"},
    {"modalities"},
    {"data", "views", "components", "perturbations"},
    {"method", "config", "suites", "plugins", "registry", "errors", "atomic", "seeding", "device", "provenance",
     "results", "progress", "interrupt", "locks", "validation", "distributed", "tracking"},
]
SIBLINGS_APART = {1, 3}  # runner and profiling, engine and protocols: neither imports the other
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _top(module_file: Path) -> str:
    rel = module_file.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    """sslbench-internal top-level modules imported by ``path`` (absolute or relative, anywhere in the file)."""
    out = []
    depth = len(path.relative_to(PKG).parts) - 1
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = list(path.relative_to(PKG).parts[:-1])
                up = node.level - 1
                if up > depth:
                    continue
                base = parts[:len(parts) - up] if up else parts
                target = [*base, *(node.module.split(".") if node.module else [])]
                if target:
                    out.append(target[0])
                else:
                    out += [a.name for a in node.names]
            elif node.module and node.module.split(".")[0] == "sslbench" and "." in node.module:
                out.append(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out += [a.name.split(".")[1] for a in node.names if a.name.startswith("sslbench.")]
    return out


def test_every_subpackage_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in PKG.rglob("__init__.py")}
    assert found <= listed, f"add to pyproject's packages: {sorted(found - listed)}"


def test_imports_run_one_way():
    """A module may import its own layer or the layers below it, never a layer above (the layer order is the
    architecture of docs/design.md)."""
    wrong = []
    for path in PKG.rglob("*.py"):
        here = _top(path)
        if here == "__init__":
            continue
        assert here in LAYER, f"{here} has no layer in LAYERS: place it"
        for target in _imports(path):
            if target in LAYER and (LAYER[target] < LAYER[here] or (
                    target != here and LAYER[target] == LAYER[here] and LAYER[here] in SIBLINGS_APART)):
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(set(wrong)))


MODALITY_NAMES = re.compile(r"""["'](image|graph|text|audio)["']|modality\s*(==|!=)|modality\s+(not\s+)?in\b|"""
                            r"""\.graph\s+is\s+not\s+None|in_memory""")
ALLOWED = ("sslbench/modalities/", "sslbench/data/", "sslbench/views/", "sslbench/components/encoders/image.py",
           "sslbench/components/encoders/graph.py", "sslbench/components/encoders/text.py",
           "sslbench/components/encoders/audio.py", "sslbench/perturbations/text.py")


def test_no_modality_branches_outside_the_modalities():
    hits = []
    for path in sorted(PKG.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel.startswith(ALLOWED):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if MODALITY_NAMES.search(line):
                hits.append(f"{rel}:{i}: {line.strip()}")
    assert not hits, "modality named outside sslbench/modalities/:\n" + "\n".join(hits)
