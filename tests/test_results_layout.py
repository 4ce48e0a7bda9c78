"""sslbench.results: imports inside the package go one way (records <- stats <- frame <- table <- ... <- compare)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sslbench.results

PACKAGE = Path(sslbench.results.__file__).parent
NAME = "sslbench.results"

# each module may import only from modules of earlier layers
LAYERS: list[set[str]] = [
    {"records"},
    {"stats"},
    {"frame"},
    {"table"},
    {"render", "reference", "plots", "gate"},
    {"html_report"},
    {"compare"},
]


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _imports(module: str) -> set[str]:
    """Modules of the package that ``module`` imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x import y / from . import x
                base = node.module.split(".")[0] if node.module else None
                names = [base] if base else [a.name for a in node.names]
            elif node.level == 0 and (node.module or "").startswith(NAME + "."):
                names = [node.module[len(NAME) + 1:].split(".")[0]]
            elif node.level == 0 and node.module == NAME:
                names = [a.name for a in node.names]
            else:
                continue
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(a.name[len(NAME) + 1:].split(".")[0] for a in node.names if a.name.startswith(NAME + "."))
    return found & set(_modules())


def _graph() -> dict[str, set[str]]:
    return {m: _imports(m) for m in _modules()}


def test_import_graph_is_acyclic() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            raise AssertionError(f"import cycle in {NAME}: {' -> '.join(cycle)}")
        if module in done:
            return
        for dep in sorted(graph[module]):
            visit(dep, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])


def test_imports_go_down_the_layers() -> None:
    layer = {m: i for i, names in enumerate(LAYERS) for m in names}
    assert set(_modules()) == set(layer), "place every module of sslbench.results in LAYERS"
    upward = [f"{m} imports {d}" for m, deps in _graph().items() for d in sorted(deps) if layer[d] >= layer[m]]
    assert not upward, "; ".join(upward)


def test_the_checker_sees_a_cycle(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "records.py").write_text("from .stats import x\n")
    (tmp_path / "stats.py").write_text("def f():\n    from sslbench.results.records import y\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    assert _graph() == {"records": {"stats"}, "stats": {"records"}}
    with pytest.raises(AssertionError, match="records -> stats -> records"):
        test_import_graph_is_acyclic()
