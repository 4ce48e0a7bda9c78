"""The training engine: device, precision, seeding, optimiser and schedule, checkpoints, progress.

Methods only compute a loss from a :class:`~sslbench.method.Batch`; the engine
draws the data order and augmentation randomness from ``(seed, epoch)`` and
``(seed, step)``, so a run resumed from a checkpoint replays exactly the steps an
uninterrupted run would have taken.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import distributed
from .atomic import atomic_write
from .config import PretrainConfig
from .data.base import DataInfo, Split
from .device import autocast_dtype
from .errors import ConfigError
from .interrupt import GracefulStop, Interrupted, NoStop
from .method import Batch, Method
from .plugins import get_modality
from .tracking import NullTracker, StepMeter, Tracker

EPOCH_CHECKPOINT_MIN_S = 5.0  # automatic checkpoints at epoch ends are at least this many seconds apart

OPTIMIZERS = ("adamw", "adam", "sgd", "lars")
SCHEDULES = ("cosine", "constant")


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    status: str = "ok"
    steps: int = 0
    total_steps: int = 0
    epochs: float = 0.0
    final_loss: float | None = None
    loss_history: list[list[float]] = field(default_factory=list)
    wall_s: float = 0.0
    samples_per_s: float = 0.0
    resumed_from: int | None = None
    error: str | None = None
    early_stopping: dict | None = None  # best epoch, its loss, the epoch training stopped at


def build_optimizer(method: Method, cfg: PretrainConfig) -> torch.optim.Optimizer:
    lr = scaled_lr(cfg)
    groups = method.parameter_groups()
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":  # L2 penalty added to the gradient (GRACE's and DGI's official code)
        return torch.optim.Adam(groups, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "lars":
        from timm.optim import Lars

        return Lars(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ConfigError(f"Bad value for 'pretrain.optimizer': {cfg.optimizer!r}. Valid: {', '.join(OPTIMIZERS)}")


def scaled_lr(cfg: PretrainConfig) -> float:
    """SimCLR's scaling: lr x batch/256 (linear) or lr x sqrt(batch) (sqrt)."""
    if cfg.lr_scaling == "linear":
        return cfg.lr * cfg.batch_size / 256
    if cfg.lr_scaling == "sqrt":
        return cfg.lr * math.sqrt(cfg.batch_size)
    if cfg.lr_scaling == "none":
        return cfg.lr
    raise ConfigError(f"Bad value for 'pretrain.lr_scaling': {cfg.lr_scaling!r}. Valid: none, linear, sqrt")


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warm-up then cosine decay to 0 (or constant)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ConfigError(f"Bad value for 'pretrain.schedule': {schedule!r}. Valid: {', '.join(SCHEDULES)}")
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class EarlyStopping:
    """Stop when the epoch's mean training loss has not improved for ``patience`` epochs and go back to the
    best epoch's weights: DGI's rule (official ``execute.py``: patience 20 on the full-graph loss).
    ``patience`` 0 disables it. Its state travels in the checkpoint, so a resumed run stops at the same epoch."""

    def __init__(self, patience: int):
        if patience < 0:
            raise ConfigError(f"Bad value for 'pretrain.early_stop_patience': {patience}; 0 (off) or more epochs")
        self.patience, self.enabled = patience, patience > 0
        self.best_loss, self.best_epoch, self.bad_epochs, self.stopped_at = math.inf, 0, 0, None
        self.best_state: dict | None = None
        self._sum, self._count = 0.0, 0

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def add(self, loss: float) -> None:
        self._sum, self._count = self._sum + loss, self._count + 1

    def end_epoch(self, epoch: int, method: Method) -> None:
        mean, self._sum, self._count = self._sum / max(1, self._count), 0.0, 0
        if not self.enabled:
            return
        if mean < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = mean, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in method.state_dict().items()}
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                self.stopped_at = epoch

    def restore(self, method: Method) -> None:
        if self.best_state is not None:
            method.load_state_dict(self.best_state)

    def summary(self) -> dict:
        return {"patience": self.patience, "best_epoch": self.best_epoch, "best_loss": self.best_loss,
                "stopped_at_epoch": self.stopped_at}

    def state(self) -> dict:
        return {**self.summary(), "bad_epochs": self.bad_epochs, "best_state": self.best_state,
                "epoch_sum": self._sum, "epoch_count": self._count}

    def load(self, state: dict | None) -> None:
        if state:
            self.best_loss, self.best_epoch = state["best_loss"], state["best_epoch"]
            self.bad_epochs, self.stopped_at = state["bad_epochs"], state["stopped_at_epoch"]
            self.best_state = state["best_state"]
            self._sum, self._count = state.get("epoch_sum", 0.0), state.get("epoch_count", 0)


def check_sync_bn(device: torch.device) -> None:
    """``pretrain.sync_bn`` needs CUDA: torch's SyncBatchNorm refuses CPU tensors (torch 2.11)."""
    if device.type != "cuda":
        raise ConfigError(f"pretrain.sync_bn: true needs CUDA devices (torch.nn.SyncBatchNorm does not run on "
                          f"{device.type}); set pretrain.sync_bn=false, or train on GPUs")


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save through the one atomic writer (temporary file, then rename)."""
    atomic_write(path, lambda f: torch.save(state, f), binary=True)


class Trainer:
    """Pretrains ``method`` on ``split`` for ``cfg.epochs``; see :meth:`fit`.

    Public surface: :meth:`fit` (the whole run), :meth:`train_step` (one optimiser step on a batch),
    :meth:`batches` (the run's batches from the current step on), :meth:`resume`, ``step`` and
    ``total_steps``, ``samples_per_step`` and ``unit`` (what a step processes: images, nodes, ...).
    The data's :class:`~sslbench.modalities.base.Modality` supplies the batches and the model's layout.
    """

    def __init__(self, method: Method, split: Split, data: DataInfo, views_cfg, cfg: PretrainConfig, seed: int,
                 device: torch.device, checkpoint: Path | None = None, progress: bool = True,
                 config_hash: str = "", stop: GracefulStop | NoStop | None = None,
                 tracker: Tracker | None = None):
        modality = get_modality(data.modality)
        method = modality.prepare_model(method)
        if cfg.sync_bn and distributed.world_size() > 1:  # BN statistics over the global batch
            check_sync_bn(device)
            method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
        self.method, self.cfg, self.seed, self.device = method.to(device), cfg, seed, device
        # every rank starts from rank 0's weights and buffers (the same seed builds the same ones already;
        # this keeps it so for inits that are not seeded alike, e.g. nondeterministic CUDA kernels)
        distributed.broadcast_module(self.method)
        self.source = modality.batch_source(split, data, method, views_cfg, cfg, seed, device)
        self.samples_per_step, self.unit = self.source.samples_per_step, modality.unit
        # epochs 0 evaluates the randomly initialised encoder: the floor every method must beat
        self.total_steps = max(0, int(math.ceil(cfg.epochs * self.source.steps_per_epoch)))
        self.warmup = int(round(cfg.warmup_epochs * self.source.steps_per_epoch))
        self.optimizer = build_optimizer(method, cfg)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self._params = [p for g in self.optimizer.param_groups for p in g["params"]]  # averaged over the ranks
        self._stop_agreed = False  # data parallel: some rank was signalled by this step (all ranks stop together)
        self.amp = autocast_dtype(cfg.precision, device)
        self.checkpoint, self.progress, self.config_hash = checkpoint, progress and distributed.is_main(), config_hash
        self.step = 0
        self.history: list[list[float]] = []
        self.early = EarlyStopping(cfg.early_stop_patience)
        self.stop = stop or NoStop()  # Ctrl-C / SIGTERM: finish the step, checkpoint, raise Interrupted
        self.tracker = tracker or NullTracker()  # --track: logs at each loss-history step (sslbench.tracking)
        self._last_save = time.monotonic()

    # -- checkpoints
    def state(self) -> dict:
        return {"step": self.step, "method": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
                "history": self.history, "config_hash": self.config_hash, "seed": self.seed,
                "early_stopping": self.early.state()}

    def resume(self) -> int | None:
        """Load the checkpoint if present and made by the same config; returns the step resumed from."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return None
        import re
        import warnings

        # weights only: tensors, containers and numbers; a pickle that names any other callable is refused unrun
        unsafe = (f"Checkpoint '{self.checkpoint}' was not loaded: {{}}; nothing in it was run. Delete it or "
                  "run without --resume")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's note on the pickle protocol is not the user's business
                state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
        except EOFError:
            raise ConfigError(unsafe.format("the file is empty or truncated")) from None
        except Exception as e:  # pickle.UnpicklingError (refused content), RuntimeError (not a torch file), ...
            text = str(e)
            found = re.search(r"GLOBAL (\S+)", text)
            if found:
                why = f"it refers to {found.group(1)}, which no checkpoint holds (a crafted file?)"
            elif "Unsupported operand" in text or "Weights only load failed" in text:
                why = "it is not a weights-only torch checkpoint"
            else:
                why = f"it is not a torch checkpoint ({type(e).__name__}: {(text.strip().splitlines() or [''])[0]})"
            raise ConfigError(unsafe.format(why)) from None
        if not isinstance(state, dict) or not {"step", "method", "optimizer", "history"} <= state.keys():
            raise ConfigError(unsafe.format("it is not an sslbench checkpoint (no step, method, optimizer or history)"))
        if state.get("config_hash") != self.config_hash or state.get("seed") != self.seed:
            raise ConfigError(f"Checkpoint '{self.checkpoint}' was made by another config or seed; "
                              "run without --resume to start afresh")
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.history = int(state["step"]), list(state["history"])
        self.early.load(state.get("early_stopping"))
        return self.step

    def _save(self) -> None:
        if self.checkpoint is not None and distributed.is_main():  # the ranks' weights are the same: rank 0 writes
            save_checkpoint(self.checkpoint, self.state())
            self._last_save = time.monotonic()

    def _checkpoint_due(self, steps_per_epoch: int) -> bool:
        """``checkpoint_every`` steps when set; else at the end of an epoch (at most every
        :data:`EPOCH_CHECKPOINT_MIN_S`, so that one-step epochs do not write each step) and within an epoch
        every ``checkpoint_seconds``."""
        if self.cfg.checkpoint_every:
            return self.step % self.cfg.checkpoint_every == 0
        age = time.monotonic() - self._last_save
        if self.step % steps_per_epoch == 0:
            return age >= EPOCH_CHECKPOINT_MIN_S
        return age >= self.cfg.checkpoint_seconds

    # -- loop
    def fit(self) -> TrainResult:
        res = TrainResult(total_steps=self.total_steps, resumed_from=self.step or None)
        spe = self.source.steps_per_epoch
        bs = self.source.samples_per_step
        t0 = time.perf_counter()
        start_step = self.step
        meter = StepMeter(bs, self.device, self.step)
        last_loss = float("nan")
        from .progress import TrainProgress

        # a first signal waits for the end of the current step (then checkpoint, Interrupted); a second one is at once
        with TrainProgress(self.total_steps, bs, enabled=self.progress, start=self.step, unit=self.unit) as bar, \
                self.stop.deferred():
            while self.step < self.total_steps and not self.early.stopped:
                epoch, offset = divmod(self.step, spe)
                for batch in self.source.epoch_batches(epoch, offset):
                    last_loss = self.train_step(batch)
                    self.early.add(last_loss)
                    if self.step % spe == 0:  # before the checkpoint below, so that it holds this epoch
                        self.early.end_epoch(self.step // spe, self.method)
                    if not math.isfinite(last_loss):
                        res.status, res.error = "diverged", f"loss became {last_loss} at step {self.step}"
                        break
                    if self.step % max(1, spe // 20) == 0 or self.step == self.total_steps:
                        self.history.append([self.step, last_loss])
                        self.tracker.log_step(self.step, meter(self.step, last_loss, self.optimizer))
                    bar.update(self.step, last_loss)
                    signum = self._stop_signal()
                    if signum is not None:
                        self._save()  # the completed step: --resume replays from exactly here
                        raise Interrupted(signum)
                    if self._checkpoint_due(spe):
                        self._save()
                    if self.step >= self.total_steps or self.early.stopped:
                        break
                if res.status != "ok" or self.early.stopped:
                    break
        wall = time.perf_counter() - t0
        if res.status == "ok":
            if self.early.enabled:
                self.early.restore(self.method)
                res.early_stopping = self.early.summary()
            self._save()
        res.steps, res.epochs = self.step, self.step / spe
        res.final_loss = last_loss if math.isfinite(last_loss) else None
        res.loss_history = self.history
        res.wall_s = wall
        res.samples_per_s = (self.step - start_step) * bs / max(wall, 1e-9)
        return res

    def _stop_signal(self) -> int | None:
        """The signal to stop on after this step, or None. Data parallel: only once every rank knows (agreed
        in the step's loss all-reduce), so that all stop after the same step and none waits at a collective
        for a rank that has left; a rank signalled a moment later stops on the others' signal (SIGTERM)."""
        if not distributed.active():
            return self.stop.requested
        if not self._stop_agreed:
            return None
        return self.stop.requested if self.stop.requested is not None else signal.SIGTERM

    def batches(self, n: int | None = None) -> Iterator[Batch]:
        """The run's batches from the current step on (``n`` of them, or to the end of the run, wrapping into
        later epochs); what :meth:`fit` feeds :meth:`train_step`, for ``profile`` and the benchmarks."""
        spe, step, left = self.source.steps_per_epoch, self.step, n
        while left is None or left > 0:
            epoch, offset = divmod(step, spe)
            for batch in self.source.epoch_batches(epoch, offset):
                if left is not None and left <= 0:
                    return
                yield batch
                step += 1
                left = None if left is None else left - 1
            if n is None and step >= self.total_steps:
                return

    def train_step(self, batch: Batch) -> float:
        """One optimiser step at the current step's learning rate; returns the loss and advances ``step``. A
        NaN or infinite loss takes no step of the optimiser (the caller records the run as diverged)."""
        value = self._step(batch)
        self.step += 1
        return value

    def _step(self, batch: Batch) -> float:
        for g, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):  # "fix_lr": no schedule
            g["lr"] = base if g.get("fix_lr") else base * lr_factor(self.step, self.total_steps, self.warmup,
                                                                     self.cfg.schedule)
        self.method.train()
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            out = self.method.training_step(batch)
        loss = out.loss.float()
        value = float(loss.detach())
        if distributed.active():  # the global batch's mean loss, and whether any rank has been signalled
            total, signalled = distributed.all_reduce_sum([value, self.stop.requested is not None])
            value, self._stop_agreed = total / distributed.world_size(), signalled > 0
        if not math.isfinite(value):
            return value
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self._params)  # DDP's mean over the ranks (no-op on one process)
        self.optimizer.step()
        self.method.after_step(self.step + 1, self.total_steps)
        return value
