"""``--track`` values -> one :class:`~sslbench.tracking.base.Tracker` per run.

``check_tracking`` runs before any work (unknown name, missing package, ``WANDB_MODE=online`` without a key:
one line, exit 2); ``make_tracker`` builds the run's tracker (:class:`NullTracker` when tracking is off or
``enabled`` is False, as on every rank but 0 under DDP). Nothing here imports a tracker's package until a
run starts it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..registry import unknown_message
from .base import MultiTracker, NullTracker, Tracker

# name -> (module that must import, pip package)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("torch.utils.tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
}
DEFAULT_SUBDIR = "tracking"  # --track-dir defaults to <--out>/tracking


@dataclass(frozen=True)
class TrackingOptions:
    """What ``sslbench run --track ... --track-dir ... --wandb-project ...`` asked for."""

    names: tuple[str, ...] = ()
    directory: Path | None = None  # None: <--out>/tracking
    wandb_project: str | None = None

    def directory_for(self, out_dir: Path) -> Path:
        return Path(self.directory) if self.directory is not None else Path(out_dir) / DEFAULT_SUBDIR


def parse_track(values: Iterable[str]) -> tuple[str, ...]:
    """``("tensorboard,wandb",)`` or ``("tensorboard", "wandb")`` -> the tracker names, in order, once each."""
    names: list[str] = []
    for value in values:
        for part in str(value).split(","):
            name = part.strip().lower().replace("-", "").replace("_", "")
            name = {"tb": "tensorboard", "weightsandbiases": "wandb", "wb": "wandb"}.get(name, name)
            if not part.strip():
                continue
            if name not in TRACKERS:
                raise ConfigError(f"Bad value for '--track': {unknown_message('tracker', part.strip(), TRACKERS)}")
            if name not in names:
                names.append(name)
    return tuple(names)


def check_tracking(opts: TrackingOptions | None) -> None:
    """Before any work: each requested tracker's package imports, and W&B would not need a login prompt."""
    for name in opts.names if opts else ():
        module, package = TRACKERS[name]
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"--track {name} needs the package '{package}', which is not installed "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else module}): "
                              "pip install 'sslbench[track]'") from None
        if name == "wandb":
            from .wandb import resolve_mode

            resolve_mode()


def make_tracker(opts: TrackingOptions | None, out_dir: Path, enabled: bool = True) -> Tracker:
    """The run's tracker: a :class:`MultiTracker` over the requested ones, or a :class:`NullTracker`."""
    if not opts or not opts.names or not enabled:
        return NullTracker()
    directory = opts.directory_for(out_dir)
    trackers: list[Tracker] = []
    for name in opts.names:
        if name == "tensorboard":
            from .tensorboard import TensorBoardTracker

            trackers.append(TensorBoardTracker(directory))
        elif name == "wandb":
            from .wandb import WandbTracker, resolve_mode

            trackers.append(WandbTracker(directory, opts.wandb_project, resolve_mode(), note=_note))
    return MultiTracker(trackers)


def _note(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(f"[yellow]{escape(message)}[/yellow]", highlight=False)


def tracking_options(track: Iterable[str], track_dir: str | Path | None = None,
                     wandb_project: str | None = None) -> TrackingOptions | None:
    """``sslbench run``'s ``--track/--track-dir/--wandb-project``, checked before any work
    (:func:`check_tracking`); None when no tracker is asked for."""
    names = parse_track(track)
    if not names:
        return None
    opts = TrackingOptions(names, Path(track_dir) if track_dir else None, wandb_project)
    check_tracking(opts)
    return opts
