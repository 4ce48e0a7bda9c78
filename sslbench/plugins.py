"""The registries (methods, suites, protocols, modalities, datasets, encoders, perturbations) and how they are
discovered.

Built-ins come from the ``sslbench_methods`` package, the ``sslbench_suites`` package
data, :mod:`sslbench.protocols`, :mod:`sslbench.modalities`, :mod:`sslbench.data`,
:mod:`sslbench.components.encoders` and :mod:`sslbench.perturbations`; third parties add entries through the
entry points ``sslbench.methods`` / ``.suites`` / ``.protocols`` / ``.modalities`` / ``.datasets`` /
``.encoders`` / ``.perturbations`` or a plugin folder (``--plugins DIR`` or ``SSLBENCH_PLUGINS``) of ``*.py``
and ``*.yaml`` files. Their origin is ``entry-point:<dist>==<version>`` or ``plugins:<file>``; a third-party
entry never replaces a built-in unless the user allows its name (``--allow-override NAME``, see
:mod:`sslbench.registry`).
"""

from __future__ import annotations

from dataclasses import is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .registry import (
    BUILTIN,
    ENTRY_POINT_GROUPS,
    Registry,
    import_plugin_file,
    load_entry_points,
    origin_as,
    origin_of,
    plugin_dirs,
    warn_plugin_failure,
)

METHODS: Registry = Registry("method")
SUITES: Registry = Registry("suite")  # name -> Path of the suite YAML
PROTOCOLS: Registry = Registry("protocol")
MODALITIES: Registry = Registry("modality")  # name -> Modality subclass (sslbench.modalities.base)


def fold_dataset_name(name: str) -> str:
    """Data set names are found whatever their case and separators: FashionMNIST, fashionmnist, fashion_mnist."""
    return name.lower().replace("_", "").replace("-", "")


DATASETS: Registry = Registry("dataset", fold=fold_dataset_name)  # name -> loader(root, splits, download, **opts)
ENCODERS: Registry = Registry("encoder")  # name -> factory(data: DataInfo, options: dict) -> nn.Module
PERTURBATIONS: Registry = Registry("perturbation")  # name -> perturb(samples, rate, seed=0, **options) -> samples

def register_method(name: str, variants: dict[str, dict[str, Any]] | None = None):
    """Class decorator: register a :class:`~sslbench.method.Method` under ``name``.

    ``variants`` maps a variant name to config presets, selected as ``name.variant``.
    """

    def deco(cls):
        cls.name = name
        cls.variants = dict(variants or {})
        if not is_dataclass(cls.Config):
            raise TypeError(f"{cls.__name__}.Config must be a dataclass")
        METHODS.register(name, cls, origin=origin_of(cls))
        return cls

    return deco


def _named(registry: Registry, name: str, **attrs: Any):
    """A decorator that sets ``name`` (and ``attrs``) on the object and registers it in ``registry``."""

    def deco(obj):
        obj.name = name
        for key, value in attrs.items():
            setattr(obj, key, value)
        registry.register(name, obj, origin=origin_of(obj))
        return obj

    return deco


def register_protocol(name: str):
    """Class decorator: register an evaluation protocol under ``name``."""
    return _named(PROTOCOLS, name)


def register_modality(name: str):
    """Class decorator: register a :class:`~sslbench.modalities.base.Modality` under ``name``."""
    return _named(MODALITIES, name)


def register_dataset(name: str, modality: str, description: str = ""):
    """Decorator: register a data set loader ``load(root, splits, download=False, **options) -> (DataInfo,
    {split: Split})`` under ``name`` for ``modality`` (``description``: default the docstring's first line)."""
    return lambda fn: _named(DATASETS, name, modality=modality, description=description or _first_line(fn))(fn)


def register_encoder(name: str, modality: str, description: str = ""):
    """Decorator: register an encoder factory ``make(data: DataInfo, options: dict) -> nn.Module`` (with a
    ``num_features`` attribute) under ``name`` for ``modality``."""
    return lambda fn: _named(ENCODERS, name, modality=modality, description=description or _first_line(fn))(fn)


def register_perturbation(name: str, modality: str, description: str = ""):
    """Decorator: register an input perturbation ``perturb(samples, rate, seed=0, **options) -> samples`` (a new
    list, the same length, deterministic given ``seed``) under ``name`` for ``modality`` (see
    :mod:`sslbench.perturbations`: its ``check(rate, options)`` and ``measure``)."""
    return lambda fn: _named(PERTURBATIONS, name, modality=modality, description=description or _first_line(fn))(fn)


def _first_line(obj: Any) -> str:
    return (obj.__doc__ or "").strip().split("\n")[0]


_modality_instances: dict[str, Any] = {}


def get_modality(name: str):
    """The (stateless, shared) instance of the modality registered as ``name``."""
    if name not in _modality_instances:
        _modality_instances[name] = MODALITIES.get(name)()
    return _modality_instances[name]


# modules whose decorators register the built-in data sets and encoders
BUILTIN_MODALITY_MODULES = ("sslbench.modalities.image", "sslbench.modalities.graph", "sslbench.modalities.text",
                            "sslbench.modalities.audio", "sslbench.modalities.graphs")
BUILTIN_DATASET_MODULES = ("sslbench.data.image", "sslbench.data.graph", "sslbench.data.torchvision_sets",
                           "sslbench.data.text", "sslbench.data.audio", "sslbench.data.graphset")
BUILTIN_ENCODER_MODULES = ("sslbench.components.encoders.image", "sslbench.components.encoders.graph",
                           "sslbench.components.encoders.text", "sslbench.components.encoders.audio",
                           "sslbench.components.encoders.gin")
BUILTIN_PERTURBATION_MODULES = ("sslbench.perturbations.text",)

BUILTIN_PROTOCOLS = {
    "linear": "sslbench.protocols.linear:LinearProbe",
    "knn": "sslbench.protocols.knn:KNNProbe",
    "few_shot": "sslbench.protocols.few_shot:FewShot",
    "noisy_label": "sslbench.protocols.noisy_label:NoisyLabel",
    "finetune": "sslbench.protocols.finetune:Finetune",
    "logreg": "sslbench.protocols.logreg:LogRegProbe",
    "sts": "sslbench.protocols.sts:STS",
    "noisy_input": "sslbench.protocols.noisy_input:NoisyInput",
    "frame_linear": "sslbench.protocols.frame_linear:FrameLinearProbe",
}

_extra_plugin_dirs: list[str] = []


def set_plugin_dirs(dirs: list[str] | tuple[str, ...]) -> None:
    """Record ``--plugins`` folders before the first lookup."""
    _extra_plugin_dirs[:] = list(dirs)
    for reg in (METHODS, SUITES, PROTOCOLS, MODALITIES, DATASETS, ENCODERS, PERTURBATIONS):
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


def _discover_modules(registry: Registry, modules: tuple[str, ...], kind: str) -> None:
    import importlib

    with origin_as(BUILTIN):
        for module in modules:
            importlib.import_module(module)
    _discover_entry_points(registry, kind)
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
            SUITES.register(p.stem, p, origin=f"plugins:{p}")


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
        for f in sorted(d.glob("*.py")):
            import_plugin_file(f)  # origin: plugins:<the file>


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
MODALITIES.add_discovery(lambda: _discover_modules(MODALITIES, BUILTIN_MODALITY_MODULES, "modality"))
DATASETS.add_discovery(lambda: _discover_modules(DATASETS, BUILTIN_DATASET_MODULES, "dataset"))
ENCODERS.add_discovery(lambda: _discover_modules(ENCODERS, BUILTIN_ENCODER_MODULES, "encoder"))
PERTURBATIONS.add_discovery(lambda: _discover_modules(PERTURBATIONS, BUILTIN_PERTURBATION_MODULES, "perturbation"))
PROTOCOLS.add_discovery(_discover_protocols)
SUITES.add_discovery(_discover_suites)
