"""Weights & Biases through ``wandb.init`` / ``run.log`` / ``run.summary`` (package ``wandb``).

The project is ``--wandb-project``, else ``$WANDB_PROJECT``, else ``sslbench``; the run's name is the
record's run id and its config the resolved config. Files go under ``<track dir>/wandb/``. ``WANDB_MODE``
is respected (``offline`` needs no network; ``wandb sync`` uploads later). It never asks for a login: with
no ``WANDB_MODE`` and no API key (``$WANDB_API_KEY`` or a netrc entry from ``wandb login``) it logs offline
and says so; ``WANDB_MODE=online`` without a key is refused before any work (:func:`resolve_mode`).
Final metrics and the status go to the run's summary as ``final/<name>``.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import ConfigError

DEFAULT_PROJECT = "sslbench"


def has_api_key(env: dict | None = None) -> bool:
    """``$WANDB_API_KEY``, or a netrc entry (``$NETRC`` or ``~/.netrc``, what ``wandb login`` writes) for the
    host of ``$WANDB_BASE_URL`` (default api.wandb.ai)."""
    env = os.environ if env is None else env
    if env.get("WANDB_API_KEY"):
        return True
    host = urlparse(env.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    path = env.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(env: dict | None = None) -> str | None:
    """The ``mode`` to pass to ``wandb.init``: None (``WANDB_MODE`` is set, or a key exists: wandb decides),
    ``"offline"`` (no mode and no key: never a login prompt). Raises ConfigError for ``WANDB_MODE=online``
    without a key, which would prompt or fail."""
    env = os.environ if env is None else env
    mode = (env.get("WANDB_MODE") or "").strip().lower()
    if mode in ("online", "run") and not has_api_key(env):
        raise ConfigError(f"WANDB_MODE={mode} but no W&B API key (set WANDB_API_KEY or run `wandb login`); "
                          "use WANDB_MODE=offline to log locally")
    if mode:
        return None
    return None if has_api_key(env) else "offline"


class WandbTracker:
    name = "wandb"

    def __init__(self, directory: Path, project: str | None = None, mode: str | None = None, note: Any = None):
        self.directory = Path(directory)
        self.project = project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        self.mode, self._note = mode, note
        self.run = None

    def start(self, config: dict, run_id: str, **info: Any) -> None:
        import wandb

        self.directory.mkdir(parents=True, exist_ok=True)
        if self.mode == "offline" and self._note is not None:
            self._note(f"W&B: no API key, logging offline under {self.directory / 'wandb'} "
                       "(`wandb sync` uploads it later)")
        self.run = wandb.init(project=self.project, name=run_id, config={"run_id": run_id, **info, **config},
                              dir=str(self.directory), mode=self.mode)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def log_final(self, metrics: dict[str, float | str], step: int | None = None) -> None:
        self.run.summary.update({f"final/{k}": v for k, v in metrics.items() if v is not None})

    def close(self) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            run.finish()
