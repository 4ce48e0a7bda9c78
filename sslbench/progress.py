"""A rich progress bar for training: step, loss, throughput in the modality's unit (images/s, nodes/s), ETA."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainProgress:
    def __init__(self, total: int, batch_size: int, enabled: bool = True, start: int = 0, label: str = "pretrain",
                 unit: str = "samples"):
        self.total, self.batch_size, self.enabled, self.start, self.label = total, batch_size, enabled, start, label
        self.unit = unit
        self._t0 = time.perf_counter()
        self._p: Progress | None = None

    def __enter__(self) -> TrainProgress:
        self._console = Console(stderr=True)
        self._plain = self.enabled and not self._console.is_terminal  # logs: a line every 10%
        self._next_pct = 10
        if self.enabled and not self._plain:
            self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} " + f"{self.unit}/s"),
                               TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self._p.__enter__()
            self._task = self._p.add_task(self.label, total=self.total, completed=self.start, loss="-", rate="-")
        return self

    def update(self, step: int, loss: float) -> None:
        if self._p is None and not self._plain:
            return
        dt = time.perf_counter() - self._t0
        rate = (step - self.start) * self.batch_size / max(dt, 1e-9)
        if self._plain:
            pct = 100 * step / max(1, self.total)
            if pct >= self._next_pct or step == self.total:
                eta = (self.total - step) * dt / max(1, step - self.start)
                self._console.print(f"{self.label} {step}/{self.total} loss {loss:.4f} {rate:,.0f} {self.unit}/s "
                                    f"eta {eta:.0f}s", highlight=False)
                self._next_pct = (int(pct) // 10 + 1) * 10
            return
        self._p.update(self._task, completed=step, loss=f"{loss:.4f}", rate=f"{rate:,.0f}")

    def __exit__(self, *exc) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)
