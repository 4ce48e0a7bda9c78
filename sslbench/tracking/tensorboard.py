"""TensorBoard event files through ``torch.utils.tensorboard.SummaryWriter`` (package ``tensorboard``).

One folder per run: ``<track dir>/<run id>/events.out.tfevents.*``. Steps are the engine's optimiser
steps; the resolved config is a text entry ``config`` (JSON); final metrics are scalars ``final/<name>``
at the last step, the record's status a text entry ``final/status``. View with
``tensorboard --logdir <track dir>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.writer = None
        self.last_step = 0

    def start(self, config: dict, run_id: str, **info: Any) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.directory / run_id))
        text = json.dumps({"run_id": run_id, **info, "config": config}, indent=2, sort_keys=True, default=str)
        # four leading spaces: a preformatted block in TensorBoard's markdown text view
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.last_step = step

    def log_final(self, metrics: dict[str, float | str], step: int | None = None) -> None:
        step = self.last_step if step is None else step
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"final/{key}", value, step)
            elif value is not None:
                self.writer.add_text(f"final/{key}", str(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
