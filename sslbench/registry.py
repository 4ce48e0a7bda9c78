"""One generic registry for methods, suites and protocols (after timm's ``_registry``).

Entries are registered by name with a lazy ``"module:attr"`` target (or the object
itself) and an *origin* saying who supplied them: ``builtin``, ``entry-point:<dist>==<version>``
or ``plugins:<file>``. ``list("sim*")`` takes fnmatch wildcards; an unknown name raises
:class:`UnknownNameError` with "Did you mean" suggestions.

A plugin (a plugin file or an entry point) may not take a built-in's name, in whichever order the two are
registered: the built-in stays and one red warning names the plugin, unless the user allows that name
(``sslbench --allow-override NAME`` or ``SSLBENCH_ALLOW_OVERRIDE=NAME[,KIND:NAME...]``); the plugin then
replaces it and is recorded with its own origin.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")

ENTRY_POINT_GROUPS = {"method": "sslbench.methods", "suite": "sslbench.suites", "protocol": "sslbench.protocols",
                      "modality": "sslbench.modalities", "dataset": "sslbench.datasets", "encoder": "sslbench.encoders",
                      "perturbation": "sslbench.perturbations"}

BUILTIN = "builtin"
BUILTIN_PACKAGES = ("sslbench", "sslbench_methods")  # modules whose registrations are built-ins
ALLOW_OVERRIDE_ENV = "SSLBENCH_ALLOW_OVERRIDE"

_origin_stack: list[str] = []  # who is being imported now: a plugin file or an entry point
_plugin_files: dict[str, Path] = {}  # module name given to a plugin file -> the file


@contextlib.contextmanager
def origin_as(origin: str) -> Iterator[None]:
    """Registrations made while importing inside this block (by modules outside sslbench) come from ``origin``."""
    _origin_stack.append(origin)
    try:
        yield
    finally:
        _origin_stack.pop()


def origin_of(obj: Any) -> str:
    """Who supplied ``obj``, decided by the module that defines it: sslbench's own modules are built-ins wherever
    they are imported from (a plugin that subclasses SimCLR imports ``sslbench_methods.simclr``), a plugin file is
    ``plugins:<file>``; anything else takes the plugin file or entry point being imported (``module:<name>`` when
    registered outside any import of a plugin)."""
    module = getattr(obj, "__module__", "") or ""
    if module.split(".")[0] in BUILTIN_PACKAGES:
        return BUILTIN
    if module in _plugin_files:
        return f"plugins:{_plugin_files[module]}"
    return _origin_stack[-1] if _origin_stack else f"module:{module or '?'}"


def allowed_overrides() -> set[str]:
    """Names (``simclr``) or kind-qualified names (``method:simclr``) that plugins may take from built-ins:
    ``$SSLBENCH_ALLOW_OVERRIDE``, comma-separated (``sslbench --allow-override NAME`` adds to it)."""
    return {n.strip() for n in os.environ.get(ALLOW_OVERRIDE_ENV, "").split(",") if n.strip()}


@dataclass
class Entry(Generic[T]):
    name: str
    target: Any  # "module:attr" string or the object itself
    origin: str = BUILTIN
    replaced: str | None = None  # the origin of the built-in this entry was allowed to override

    def load(self) -> T:
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            with origin_as(self.origin):  # the decorators run by this import register as this entry's supplier
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

    def register(self, name: str, target: Any, origin: str = BUILTIN, replace: bool = False) -> None:
        """Add ``name``. The same supplier registering it again (importing a lazily listed ``"module:attr"``
        registers the object) resolves the entry; a plugin never takes a built-in's name (in either order)
        unless :func:`allowed_overrides` names it; between two plugins the first wins. ``replace``: no checks."""
        key = self.fold(name) if self.fold is not None else name
        held = name if name in self._entries else self._folded.get(key)
        existing = self._entries.get(held) if held is not None else None
        replaced = None
        if existing is not None and not replace:
            if existing.target is target:
                return
            if existing.origin == origin:  # the same supplier: a lazy listing and its import, in either order
                if isinstance(existing.target, str) and not isinstance(target, str):
                    existing.target = target
                return
            if BUILTIN not in (existing.origin, origin):
                warn_once(f"{self.kind} '{name}' from {origin} ignored: already supplied by {existing.origin}")
                return
            plugin, builtin = (existing.origin, name) if origin == BUILTIN else (origin, held)
            if not self._override_allowed(name):
                warn_once(f"{plugin} tried to replace the built-in {self.kind} '{builtin}': refused, the built-in "
                          f"is used (allow it with --allow-override {builtin} or {ALLOW_OVERRIDE_ENV}={builtin})")
                if origin != BUILTIN:
                    return
                # the plugin was imported before the built-ins were listed: the built-in takes the name back
            else:
                warn_once(f"{plugin} replaces the built-in {self.kind} '{builtin}' (allowed by --allow-override or "
                          f"{ALLOW_OVERRIDE_ENV})", colour="yellow")
                if origin == BUILTIN:
                    existing.replaced = BUILTIN
                    return
                replaced = BUILTIN
        if held is not None:
            del self._entries[held]  # replaced (it may be spelled differently: data set names fold)
        self._entries[name] = Entry(name, target, origin, replaced)
        if self.fold is not None:
            self._folded[key] = name

    def _override_allowed(self, name: str) -> bool:
        fold = self.fold or (lambda n: n)
        for allowed in allowed_overrides():
            kind, qualified, allowed_name = allowed.rpartition(":")
            if (not qualified or kind == self.kind) and fold(allowed_name) == fold(name):
                return True
        return False

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
        registry.register(ep.name, ep.value, origin=entry_point_origin(ep))


def entry_point_origin(ep: metadata.EntryPoint) -> str:
    """``entry-point:<distribution>==<version>``: the installed package that supplies ``ep``."""
    dist = getattr(ep, "dist", None)
    name = (getattr(dist, "name", None) or "unknown") if dist is not None else "unknown"
    version = getattr(dist, "version", None) if dist is not None else None
    return f"entry-point:{name}" + (f"=={version}" if version else "")


_warned: set[str] = set()


def warn_once(message: str, colour: str = "red") -> None:
    """One coloured ``warning:`` line on stderr, once per process for the same message."""
    if message in _warned:
        return
    _warned.add(message)
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[{colour}]warning: {escape(message)}[/{colour}]", highlight=False, soft_wrap=True)


def warn_plugin_failure(where: str, err: BaseException) -> None:
    """One red line per failing plugin; the built-ins keep working."""
    if where in _warned:
        return
    _warned.add(where)
    warn_once(f"plugin {where} failed to import: {type(err).__name__}: {err}")


def plugin_dirs(extra: Iterable[str] = ()) -> list[Path]:
    """Plugin folders from ``--plugins`` and ``SSLBENCH_PLUGINS`` (os.pathsep-separated)."""
    dirs = [Path(p) for p in extra]
    env = os.environ.get("SSLBENCH_PLUGINS", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    return [d.expanduser().resolve() for d in dirs]


def python_module_command(module: str, env: dict[str, str] | None = None) -> list[str]:
    """The argv that runs ``python -m module`` in a fresh interpreter (``profile``'s points, the regression plan)
    without putting the working directory first on ``sys.path``: a ``rich.py`` or ``torch.py`` lying in the
    folder the user runs sslbench from is never imported. PYTHONPATH, the user site, the installed (or editable)
    sslbench, its entry points and plugin folders (passed explicitly) work as in the parent. ``env``: the child's
    environment (default this process's)."""
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", module]  # -P: no unsafe sys.path[0], the environment kept
    # 3.10 has no -P: -I drops sys.path[0] but also PYTHONPATH, the user site and PYTHON* variables; put back
    # the first two explicitly (and -u for PYTHONUNBUFFERED)
    import site

    env = os.environ if env is None else env
    paths = [str(Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    boot = (f"import runpy, site, sys; sys.path[:0] = {paths!r}; "
            f"{f'site.addsitedir({user_site!r}); ' if user_site else ''}"
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    return [sys.executable, "-I", *(["-u"] if env.get("PYTHONUNBUFFERED") else []), "-c", boot]


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
    _plugin_files[mod_name] = path.resolve()
    try:
        with origin_as(f"plugins:{path.resolve()}"):  # what the file imports from outside sslbench is its own
            spec.loader.exec_module(module)
    except Exception as e:  # a broken plugin warns once and is skipped
        del sys.modules[mod_name]
        warn_plugin_failure(str(path), e)
