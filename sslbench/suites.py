"""Suite specs: YAML files with ``include:``, validated, turned into a :class:`RunConfig`.

A suite names a data set and its splits, an encoder, a pretraining budget, the
view recipe, per-method option overrides, the protocols with their arguments,
the seeds, its version and its published reference. Errors name the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, DatasetConfig, RunConfig, apply_override, update_dataclass
from .errors import SSLBenchError
from .plugins import DATASETS, METHODS, MODALITIES, PROTOCOLS, SUITES, get_modality, load_method_class
from .registry import unknown_message
from .validation import check_section, check_seed

SUITE_KEYS = ("suite", "version", "modality", "description", "include", "dataset", "encoder", "pretrain",
              "views", "methods", "protocols", "seeds", "reference")


def _read_yaml(path: Path) -> tuple[dict, dict[str, int]]:
    """Parse a suite file; returns the mapping and the line (1-based) of every dotted key."""
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"Malformed suite YAML {where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Malformed suite YAML {path}:1: the top level must be a mapping of keys")
    lines: dict[str, int] = {}
    _collect_lines(node, "", lines)
    return data, lines


def _collect_lines(node: Any, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            out[key] = k.start_mark.line + 1
            _collect_lines(v, key + ".", out)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _collect_lines(item, prefix, out)


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def suite_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p.resolve()
    return Path(SUITES.get(name_or_path))


def load_suite(name_or_path: str, _seen: tuple[Path, ...] = ()) -> tuple[dict, dict[str, tuple[Path, int]]]:
    """Load a suite (by registered name or file path) with its includes merged.

    Returns the merged mapping and, for error messages, the (file, line) of every dotted key.
    """
    path = suite_path(name_or_path)
    if path in _seen:
        raise ConfigError(f"Suite include cycle: {' -> '.join(str(p) for p in (*_seen, path))}")
    data, lines = _read_yaml(path)
    where = {k: (path, n) for k, n in lines.items()}
    for key in data:
        if key not in SUITE_KEYS:
            raise ConfigError(f"{path}:{lines.get(key, 1)}: " + unknown_message("suite key", str(key), SUITE_KEYS))
    if "include" in data:
        inc = str(data.pop("include"))
        rel = path.parent / inc
        base, base_where = load_suite(str(rel) if rel.suffix in (".yaml", ".yml") and rel.exists() else inc,
                                      (*_seen, path))
        base.pop("suite", None)
        data = _merge(base, data)
        where = {**base_where, **where}
    data.setdefault("suite", path.stem)
    return data, where


def split_method_name(full: str) -> tuple[str, str | None]:
    name, _, variant = full.partition(".")
    return name, variant or None


def build_run_config(method: str, suite: str, overrides: list[tuple[str, Any]] = (), seed: int | None = None
                     ) -> tuple[RunConfig, type, dict]:
    """Resolve defaults <- variant preset <- suite <- ``--set``; returns (config, method class, raw suite)."""
    name, variant = split_method_name(method)
    cls = load_method_class(name)
    if variant is not None and variant not in cls.variants:
        raise SSLBenchError(unknown_message(f"variant of {name}", variant, cls.variants)
                            .replace(f"'{variant}'", f"'{method}'"))
    data, where = load_suite(suite)
    validate_suite(data, where)
    cfg = RunConfig(method=method, suite=str(data["suite"]), suite_version=int(data.get("version", 1)),
                    modality=suite_modality(data, where), reference=data.get("reference"))
    modality = get_modality(cfg.modality)
    if not modality.runs_method(cls):
        raise SSLBenchError(f"Method '{method}' is for {cls.modality} data but suite '{cfg.suite}' is {cfg.modality}")
    cfg.views = modality.view_config() if modality.view_config else None
    cfg.method_config = cls.Config()
    if variant:
        update_dataclass(cfg.method_config, cls.variants[variant], "method")
    with _located(where):
        for section in ("dataset", "pretrain", "views"):
            if section in data and data[section] is not None:
                _check_mapping(data[section], section, where)
                update_dataclass(getattr(cfg, section), data[section], section)
        enc = data.get("encoder")
        if isinstance(enc, str):
            cfg.encoder.name = enc
        elif isinstance(enc, dict):
            update_dataclass(cfg.encoder, enc, "encoder")
        per_method = (data.get("methods") or {})
        for key in (name, method):
            if key in per_method:
                update_dataclass(cfg.method_config, per_method[key] or {}, "method")
        cfg.protocols = _protocols(data.get("protocols") or [], where)
    seeds = data.get("seeds") or [0]
    cfg.seed = check_seed(seeds[0] if seed is None else seed, "seed" if seed is not None else "seeds")
    for key, value in overrides:
        apply_override(cfg, key, value)
    with _located(where, skip={k for k, _ in overrides}):
        check_config(cfg)
    _check_protocols_fit_modality(cfg, modality)
    return cfg, cls, data


def check_config(cfg: RunConfig) -> None:
    """Every value of the resolved config in its valid range (sslbench.validation), before anything is loaded."""
    for section in ("dataset", "pretrain", "views"):
        check_section(getattr(cfg, section), section)
    check_section(cfg.method_config, "method")
    for pname, pcfg in cfg.protocols.items():
        check_section(pcfg, f"protocols.{pname}")


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def validate_suite(data: dict, where: dict) -> None:
    """The suite schema beyond its known keys: required and typed keys, known method names, a protocol list,
    a name that is safe in a file name; one line with the file and line of the bad key."""
    name = data.get("suite")
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name:
        raise ConfigError(f"{_loc(where, 'suite')}: bad suite name {name!r}; valid: letters, digits, '.', '_', '+' "
                          "and '-', starting with a letter or digit (it becomes part of file names)")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{_loc(where, 'version')}: bad suite version {version!r}; valid: an integer >= 1")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"{_loc(where, 'seeds')}: 'seeds' must be a non-empty list of integers, got {seeds!r}")
    for s in seeds:
        with _located(where):
            check_seed(s, "seeds")
    dataset = data.get("dataset")
    if not isinstance(dataset, dict) or not dataset.get("name"):
        raise ConfigError(f"{_loc(where, 'dataset' if 'dataset' in where else 'suite')}: suite '{name}' names no "
                          "data set; add dataset: {name: <a data set from `sslbench list datasets`>}")
    methods = data.get("methods")
    if methods is not None:
        if not isinstance(methods, dict):
            raise ConfigError(f"{_loc(where, 'methods')}: 'methods' must map method names to options, got {methods!r}")
        for key in methods:
            base = str(key).partition(".")[0]
            if base not in METHODS:
                raise ConfigError(f"{_loc(where, f'methods.{key}')}: " + unknown_message("method", str(key),
                                                                                        METHODS.names())
                                  + " (in 'methods:')")
    protocols = data.get("protocols")
    if protocols is not None and not isinstance(protocols, list):
        raise ConfigError(f"{_loc(where, 'protocols')}: 'protocols' must be a list of '- name: {{args}}' items, "
                          f"got a {type(protocols).__name__}")


def suite_modality(data: dict, where: dict) -> str:
    """The suite's ``modality``, else the one its data set is registered for; the two must agree."""
    dataset = (data.get("dataset") or {}).get("name", DatasetConfig.name) if isinstance(data.get("dataset"), dict) \
        else DatasetConfig.name
    declared = data.get("modality")
    if declared is not None:
        if str(declared) not in MODALITIES:
            raise ConfigError(f"{_loc(where, 'modality')}: " + unknown_message("modality", str(declared), MODALITIES.names()))
        return str(declared)
    return str(DATASETS.get(str(dataset)).modality)


def _check_protocols_fit_modality(cfg: RunConfig, modality) -> None:
    """A protocol that trains the encoder needs a modality that supports fine-tuning: refused before any run."""
    if modality.supports_finetune:
        return
    for pname, pcfg in cfg.protocols.items():
        if PROTOCOLS.get(pname)(pcfg).trains_encoder():
            raise ConfigError(f"Protocol '{pname}' fine-tunes the encoder, which is not built for {cfg.modality} data "
                              f"yet (suite '{cfg.suite}'); use a frozen-feature protocol (linear, knn, few_shot or "
                              "noisy_label with head: linear, or the modality's own)")


def _protocols(items: list, where: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{_loc(where, 'protocols')}: each protocol is 'name: {{args}}', got {item!r}")
        (pname, args), = item.items()
        cls = PROTOCOLS.get(pname)
        pcfg = cls.Config()
        update_dataclass(pcfg, args or {}, f"protocols.{pname}")
        out[pname] = pcfg
    return out


def _check_mapping(value: Any, section: str, where: dict) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{_loc(where, section)}: '{section}' must be a mapping, got {value!r}")


def _loc(where: dict, key: str) -> str:
    path, line = where.get(key, (None, None))
    return f"{path}:{line}" if path else "suite"


class _located:
    """Prefix a ConfigError raised while applying a suite with the file:line of the offending key (not for the
    keys in ``skip``: those came from --set)."""

    def __init__(self, where: dict, skip: set[str] | None = None):
        self.where, self.skip = where, skip or set()

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if isinstance(exc, ConfigError) and not str(exc).startswith("/"):
            msg = str(exc)
            key = msg.split("'")[1] if "'" in msg else ""
            if key in self.skip or key.removeprefix("protocols.") in self.skip:
                return False
            for k in (key, key.replace("method.", "methods."), key.rsplit(".", 1)[0]):
                if k in self.where:
                    path, line = self.where[k]
                    raise ConfigError(f"{path}:{line}: {msg}") from None
        return False


def suite_summary(name: str) -> dict:
    data, _ = load_suite(name)
    return {k: data.get(k) for k in ("suite", "version", "modality", "description")} | {
        "dataset": (data.get("dataset") or {}).get("name"), "encoder": data.get("encoder")}


__all__ = ["load_suite", "build_run_config", "suite_summary"]
