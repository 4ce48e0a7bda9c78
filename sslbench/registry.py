"""One generic registry for methods, suites and protocols (after timm's ``_registry``).

Entries are registered by name with a lazy ``"module:attr"`` target (or the object
itself) and an *origin* saying who supplied them: ``builtin``, ``entry-point:<dist>``
or ``plugins:<dir>``. ``list("sim*")`` takes fnmatch wildcards; an unknown name raises
:class:`UnknownNameError` with "Did you mean" suggestions.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")

ENTRY_POINT_GROUPS = {"method": "sslbench.methods", "suite": "sslbench.suites", "protocol": "sslbench.protocols",
                      "modality": "sslbench.modalities", "dataset": "sslbench.datasets", "encoder": "sslbench.encoders"}


@dataclass
class Entry(Generic[T]):
    name: str
    target: Any  # "module:attr" string or the object itself
    origin: str = "builtin"

    def load(self) -> T:
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            obj: Any = importlib.import_module(module)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
            self.target = obj
        return self.target


class Registry(Generic[T]):
    """Name -> lazily loaded object, with origins, wildcards and suggestions."""

    def __init__(self, kind: str, fold: Callable[[str], str] | None = None):
        """``fold`` maps a name to a lookup key, so that spellings that differ only in the ways it erases
        (for data sets: case, ``_`` and ``-``) find the same entry; the registered spelling is what lists show."""
        self.kind = kind
        self.fold = fold
        self._entries: dict[str, Entry[T]] = {}
        self._folded: dict[str, str] = {}
        self._discover: list[Callable[[], None]] = []
        self._discovered = False

    def register(self, name: str, target: Any, origin: str = "builtin", replace: bool = False) -> None:
        existing = self._entries.get(name)
        if existing is not None and not replace:
            # Importing a lazily listed target registers it again: keep the first origin.
            if isinstance(existing.target, str) or existing.target is target:
                existing.target = target
                return
            if isinstance(target, str):  # a lazy listing of an object that is already imported
                return
            warnings.warn(f"{self.kind} '{name}' from {origin} ignored: already supplied by {existing.origin}", stacklevel=2)
            return
        if self.fold is not None:
            key = self.fold(name)
            if key in self._folded and self._folded[key] != name and not replace:
                return  # another spelling of a name already supplied: the first one wins
            self._folded[key] = name
        self._entries[name] = Entry(name, target, origin)

    def canonical(self, name: str) -> str | None:
        """The registered spelling of ``name`` (exact, else through ``fold``), or None."""
        self._ensure()
        if name in self._entries:
            return name
        if self.fold is not None:
            return self._folded.get(self.fold(name))
        return None

    def add_discovery(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once before the first lookup (to register built-ins, entry points, plugin dirs)."""
        self._discover.append(fn)
        self._discovered = False

    def _ensure(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for fn in list(self._discover):
            fn()

    def names(self, pattern: str | None = None) -> list[str]:
        self._ensure()
        names = sorted(self._entries)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def entry(self, name: str) -> Entry[T]:
        found = self.canonical(name)
        if found is None:
            raise UnknownNameError(unknown_message(self.kind, name, self._entries))
        return self._entries[found]

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def __contains__(self, name: str) -> bool:
        return self.canonical(name) is not None


def unknown_message(kind: str, name: str, valid: Iterable[str]) -> str:
    """The one "did you mean" of the package: ``Unknown <kind> '<name>'. Did you mean: a, b?`` (close
    matches, case-insensitive), else the valid names (the first 20)."""
    valid = sorted(valid)
    lowered = {v.lower(): v for v in valid}
    close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)]
    if close:
        return f"Unknown {kind} '{name}'. Did you mean: {', '.join(close)}?"
    shown = ", ".join(valid[:20]) + (" ..." if len(valid) > 20 else "")
    return f"Unknown {kind} '{name}'. Valid: {shown or '(none registered)'}"


def load_entry_points(registry: Registry, group: str) -> None:
    """Register every entry point of ``group``; its origin names the distribution."""
    try:
        eps = metadata.entry_points(group=group)
    except Exception:  # pragma: no cover - broken metadata should not stop the built-ins
        return
    for ep in eps:
        dist = getattr(ep.dist, "name", None) or "unknown"
        registry.register(ep.name, ep.value, origin=f"entry-point:{dist}")


_warned: set[str] = set()


def warn_plugin_failure(where: str, err: BaseException) -> None:
    """One red line per failing plugin; the built-ins keep working."""
    if where in _warned:
        return
    _warned.add(where)
    from rich.console import Console

    Console(stderr=True).print(f"[red]warning: plugin {where} failed to import: {type(err).__name__}: {err}[/red]",
                               highlight=False, soft_wrap=True)


def plugin_dirs(extra: Iterable[str] = ()) -> list[Path]:
    """Plugin folders from ``--plugins`` and ``SSLBENCH_PLUGINS`` (os.pathsep-separated)."""
    dirs = [Path(p) for p in extra]
    env = os.environ.get("SSLBENCH_PLUGINS", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    return [d.expanduser().resolve() for d in dirs]


def import_plugin_file(path: Path) -> None:
    """Import one plugin ``.py`` file; its ``@register_*`` decorators register it."""
    mod_name = f"sslbench_plugin_{abs(hash(str(path))):x}_{path.stem}"
    if mod_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # a broken plugin warns once and is skipped
        del sys.modules[mod_name]
        warn_plugin_failure(str(path), e)
