"""Typed dataclass configs, ``--set a.b=c`` overrides and the config hash.

A run's configuration is a :class:`RunConfig` resolved from, in order: the
dataclass defaults, the method's variant preset, the suite YAML (with
``include:``), and ``--set`` overrides. Every override is type-checked against
the dataclass field it targets; a wrong key or type is a :class:`ConfigError`
naming the key and the valid choices.
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import yaml

from .errors import ConfigError
from .registry import unknown_message


@dataclass
class DatasetConfig:
    name: str = "digits"
    train: str = "train"
    test: str = "test"
    max_train_samples: int | None = None  # a fixed, seeded subset of the training split (smaller budgets)
    # the split to pretrain on when it is not the labelled training split (STL-10's 100k "unlabeled" images);
    # the protocols still train on ``train`` and test on ``test``
    pretrain_split: str | None = None
    options: dict = field(default_factory=dict)  # loader-specific, e.g. {path: imagenet} for imagefolder
    # further label sets of the data (DataInfo.targets, e.g. [speaker] on FSDD) that every protocol also runs on,
    # beside the primary labels; metrics named "<target>:<protocol>.<metric>"
    targets: list[str] = field(default_factory=list)


@dataclass
class EncoderConfig:
    name: str = "cnn-small"
    options: dict = field(default_factory=dict)  # passed to the encoder factory (e.g. width)


@dataclass
class PretrainConfig:
    epochs: float = 10  # 0: no pretraining, the randomly initialised encoder (a floor)
    batch_size: int = 256
    optimizer: str = "adamw"  # adamw | adam (coupled L2) | sgd | lars
    lr: float = 1e-3  # base learning rate at batch 256 when lr_scaling == "linear"
    lr_scaling: str = "none"  # none | linear (lr * batch / 256) | sqrt
    weight_decay: float = 1e-6
    momentum: float = 0.9
    warmup_epochs: float = 0.0
    schedule: str = "cosine"  # cosine | constant
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 elsewhere) | fp32 | bf16
    deterministic: bool = False  # torch.use_deterministic_algorithms
    # steps between checkpoints; 0 (automatic): at the end of an epoch (at most every 5 s) and within long epochs
    # every ``checkpoint_seconds``; a signal (Ctrl-C, SIGTERM) always writes one, and so does the end of training
    checkpoint_every: int = 0
    checkpoint_seconds: float = 600.0
    num_workers: int = 0  # DataLoader workers for per-sample views of on-disk data sets
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int | None = None  # torch intra-op threads on CPU (None: torch's default)
    # stop once the epoch's mean training loss has not improved for this many epochs and restore the
    # weights of the best epoch (DGI's early stopping, patience 20); 0: train for ``epochs``
    early_stop_patience: int = 0
    # data parallel only: BatchNorm statistics over the global batch (torch.nn.SyncBatchNorm; CUDA devices only)
    sync_bn: bool = False


@dataclass
class RunConfig:
    method: str = "simclr"
    suite: str = "digits-linear"
    suite_version: int = 1
    modality: str = ""  # the registered modality of the suite (or of its data set)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    views: Any = None  # the modality's view config dataclass (Modality.view_config), set from the suite
    method_config: Any = None  # the method's own Config dataclass ("method.*" in --set)
    protocols: dict[str, Any] = field(default_factory=dict)  # name -> protocol Config dataclass
    seed: int = 0
    reference: str | None = None


# Keys that change how a run executes but not what it computes; left out of the hash.
RUNTIME_KEYS = {"seed", "pretrain.num_workers", "pretrain.checkpoint_every", "pretrain.checkpoint_seconds",
                "pretrain.device", "pretrain.threads"}
# Keys added after results were first recorded, with their defaults: left out of the hash while they
# hold that default, so adding an option does not orphan every earlier record and baseline.
LATE_DEFAULTS: dict[str, Any] = {"pretrain.early_stop_patience": 0, "protocols.linear.drop_constant": False,
                                 "dataset.pretrain_split": None, "dataset.targets": [], "method_options.pretrained": False,
                                 "pretrain.sync_bn": False, "method_options.gather": True,
                                 "method_options.loss": "infonce", "method_options.margin": 0.1}


def to_dict(cfg: Any) -> Any:
    """Dataclasses (nested) to plain JSON-able dicts; tuples become lists."""
    if is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def resolved_dict(cfg: RunConfig) -> dict:
    """The record's view of a config: ``method_config`` is shown as ``method_options``."""
    d = to_dict(cfg)
    d["method_options"] = d.pop("method_config")
    return d


def config_hash(cfg: RunConfig) -> str:
    """12 hex digits of sha256 over the resolved config without seed, runtime-only keys and late keys at
    their defaults (:data:`LATE_DEFAULTS`)."""
    flat = flatten(resolved_dict(cfg))
    kept = {k: v for k, v in flat.items()
            if k not in RUNTIME_KEYS and not (k in LATE_DEFAULTS and v == LATE_DEFAULTS[k])}
    blob = json.dumps(kept, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# ---------------------------------------------------------------- overrides

def parse_set(items: tuple[str, ...] | list[str]) -> list[tuple[str, Any]]:
    """``["pretrain.epochs=5", "method.temperature=0.5"]`` -> [(key, YAML-parsed value)]."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Bad --set '{item}': expected KEY=VALUE, e.g. pretrain.epochs=5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def apply_override(cfg: RunConfig, key: str, value: Any) -> None:
    """Set ``key`` (dotted) on ``cfg``; ``method.x`` targets the method config, ``protocols.p.x`` a protocol."""
    parts = key.split(".")
    head = parts[0]
    if head == "method" and len(parts) > 1:
        target, rest = cfg.method_config, parts[1:]
    elif head == "protocols" and len(parts) > 2:
        if parts[1] not in cfg.protocols:
            raise ConfigError(unknown_message("protocol in this suite", parts[1], cfg.protocols)
                              + f" (in --set {key})")
        target, rest = cfg.protocols[parts[1]], parts[2:]
    elif head in cfg.protocols and len(parts) > 1:  # shorthand: linear.epochs=50
        target, rest = cfg.protocols[head], parts[1:]
    else:
        target, rest = cfg, parts
    _set_path(target, rest, value, key)


def _set_path(obj: Any, parts: list[str], value: Any, full_key: str) -> None:
    for i, name in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(obj, dict):
            if last:
                obj[name] = value
                return
            obj = obj.setdefault(name, {})
            continue
        if not is_dataclass(obj):
            raise ConfigError(f"Unknown config key '{full_key}': '{'.'.join(parts[:i])}' has no fields")
        valid = [f.name for f in fields(obj)]
        if name not in valid:
            prefix = full_key[: full_key.rfind(name)] if name in full_key else ""
            choices = ", ".join(prefix + v for v in valid if v != "method_config")
            raise ConfigError(f"Unknown config key '{full_key}'. Valid keys here: {choices}")
        if last:
            hint = _field_type(type(obj), name)
            setattr(obj, name, coerce(value, hint, full_key))
            return
        obj = getattr(obj, name)


def _field_type(cls: type, name: str) -> Any:
    hints = typing.get_type_hints(cls)
    return hints.get(name, Any)


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against ``hint`` (int/float/bool/str/Optional/tuple/list/dict), converting where lossless."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"Bad value for '{key}': {value!r} is not {_type_name(hint)}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"Bad value for '{key}': {value!r} is not a list ({_type_name(hint)})")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"Bad value for '{key}': expected {len(args)} items, got {len(value)}")
            return tuple(coerce(v, a, key) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        return origin(coerce(v, inner, key) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"Bad value for '{key}': {value!r} is not a mapping")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"Bad value for '{key}': {value!r} is not a boolean (true/false)")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"Bad value for '{key}': {value!r} is not an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e12" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"Bad value for '{key}': {value!r} is not a number")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"Bad value for '{key}': {value!r} is not a string")
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def update_dataclass(obj: Any, values: dict, where: str) -> None:
    """Apply a mapping of (possibly nested) values to a dataclass, type-checked."""
    for k, v in values.items():
        if isinstance(v, dict) and is_dataclass(obj) and k in {f.name for f in fields(obj)} \
                and is_dataclass(getattr(obj, k)):
            update_dataclass(getattr(obj, k), v, f"{where}.{k}" if where else k)
        else:
            apply_path = f"{where}.{k}" if where else k
            _set_path(obj, [k], v, apply_path)
