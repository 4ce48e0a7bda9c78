"""The three registries (methods, suites, protocols) and how they are discovered.

Built-ins come from the ``sslbench_methods`` package, the ``sslbench_suites``
package data and :mod:`sslbench.protocols`; third parties add entries through the
``sslbench.methods`` / ``sslbench.suites`` / ``sslbench.protocols`` entry points or
a plugin folder (``--plugins DIR`` or ``SSLBENCH_PLUGINS``) of ``*.py`` and
``*.yaml`` files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .registry import (
    ENTRY_POINT_GROUPS,
    Registry,
    import_plugin_file,
    load_entry_points,
    plugin_dirs,
    warn_plugin_failure,
)

METHODS: Registry = Registry("method")
SUITES: Registry = Registry("suite")  # name -> Path of the suite YAML
PROTOCOLS: Registry = Registry("protocol")

_origin = "builtin"


@contextlib.contextmanager
def _origin_as(origin: str) -> Iterator[None]:
    global _origin
    old, _origin = _origin, origin
    try:
        yield
    finally:
        _origin = old


def register_method(name: str, variants: dict[str, dict[str, Any]] | None = None):
    """Class decorator: register a :class:`~sslbench.method.Method` under ``name``.

    ``variants`` maps a variant name to config presets, selected as ``name.variant``.
    """

    def deco(cls):
        cls.name = name
        cls.variants = dict(variants or {})
        if not is_dataclass(cls.Config):
            raise TypeError(f"{cls.__name__}.Config must be a dataclass")
        METHODS.register(name, cls, origin=_origin)
        return cls

    return deco


def register_protocol(name: str):
    """Class decorator: register an evaluation protocol under ``name``."""

    def deco(cls):
        cls.name = name
        PROTOCOLS.register(name, cls, origin=_origin)
        return cls

    return deco


BUILTIN_PROTOCOLS = {
    "linear": "sslbench.protocols.linear:LinearProbe",
    "knn": "sslbench.protocols.knn:KNNProbe",
    "few_shot": "sslbench.protocols.few_shot:FewShot",
    "noisy_label": "sslbench.protocols.noisy_label:NoisyLabel",
    "finetune": "sslbench.protocols.finetune:Finetune",
    "logreg": "sslbench.protocols.logreg:LogRegProbe",
}

_extra_plugin_dirs: list[str] = []


def set_plugin_dirs(dirs: list[str] | tuple[str, ...]) -> None:
    """Record ``--plugins`` folders before the first lookup."""
    _extra_plugin_dirs[:] = list(dirs)
    for reg in (METHODS, SUITES, PROTOCOLS):
        reg._discovered = False


def _discover_methods() -> None:
    import sslbench_methods

    for name, target in sslbench_methods.BUILTINS.items():
        METHODS.register(name, target, origin="builtin")
    _discover_entry_points(METHODS, "method")
    _import_plugin_dirs()


def _discover_protocols() -> None:
    for name, target in BUILTIN_PROTOCOLS.items():
        PROTOCOLS.register(name, target, origin="builtin")
    _discover_entry_points(PROTOCOLS, "protocol")
    _import_plugin_dirs()


def _discover_suites() -> None:
    root = resources.files("sslbench_suites")
    for path in sorted(_walk_yaml(Path(str(root)))):
        SUITES.register(path.stem, path, origin="builtin")
    eps = Registry("suite-source")
    load_entry_points(eps, ENTRY_POINT_GROUPS["suite"])
    for name in eps.names():
        entry = eps.entry(name)
        try:
            target = entry.load()
            found = target() if callable(target) else target
            paths = _walk_yaml(Path(str(found))) if not isinstance(found, (list, tuple)) else [Path(p) for p in found]
            for p in paths:
                SUITES.register(p.stem, p, origin=entry.origin)
        except Exception as e:
            warn_plugin_failure(f"entry point {name} ({entry.origin})", e)
    for d in plugin_dirs(_extra_plugin_dirs):
        for p in _walk_yaml(d):
            SUITES.register(p.stem, p, origin=f"plugins:{d}")


def _walk_yaml(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.yaml") if not p.name.startswith("_"))


def _discover_entry_points(registry: Registry, kind: str) -> None:
    load_entry_points(registry, ENTRY_POINT_GROUPS[kind])


_imported_dirs: set[Path] = set()


def _import_plugin_dirs() -> None:
    for d in plugin_dirs(_extra_plugin_dirs):
        if d in _imported_dirs:
            continue
        _imported_dirs.add(d)
        if not d.is_dir():
            warn_plugin_failure(str(d), FileNotFoundError("no such folder"))
            continue
        with _origin_as(f"plugins:{d}"):
            for f in sorted(d.glob("*.py")):
                import_plugin_file(f)


def load_method_class(name: str):
    """Resolve a method name, importing its module; a failing third-party import warns and re-raises as unknown."""
    entry = METHODS.entry(name)
    try:
        return entry.load()
    except Exception as e:
        if entry.origin == "builtin":
            raise
        warn_plugin_failure(f"{name} ({entry.origin})", e)
        from .errors import SSLBenchError

        raise SSLBenchError(f"Method '{name}' from {entry.origin} failed to import: {e}") from e


METHODS.add_discovery(_discover_methods)
PROTOCOLS.add_discovery(_discover_protocols)
SUITES.add_discovery(_discover_suites)
