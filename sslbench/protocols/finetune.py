"""Fine-tuning (SimCLR Sec. 6 / App. B.5): the pretrained encoder and a linear head trained end to end.

The run's method is deep-copied first, so the fine-tuned weights never reach the
other protocols of the run (which read the frozen features of the original). The
copy is trained on the labelled training split (or a few-shot / noisy-label subset
of it, see :func:`finetune_and_test`) with AdamW and a cosine schedule, then the
test split is classified with the deterministic evaluation view.

What differs per method is declared on the :class:`~sslbench.method.Method`:

- ``finetune_loss(logits, features, labels) -> loss``: its supervised loss (default
  cross-entropy; SCL adds a supervised contrastive term);
- ``finetune_features(x) -> B x D``: the trainable feature map (default the encoder;
  ``baseline.pixels`` the raw inputs).

What differs per modality is its :meth:`~sslbench.modalities.base.Modality.finetune_inputs`:
the deterministic evaluation view for training and test unless ``augment: true``, which
trains on the modality's random views (images: random resized crop and flip, ``views``
overriding them), and its ``eval_inputs`` for the test split. A modality without
``supports_finetune`` (graphs) is refused before any run starts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.base import Split
from ..device import rng_devices
from ..plugins import register_protocol
from ..results.records import Metric
from .base import EvalContext, Protocol


@dataclass
class FinetuneConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3  # AdamW, cosine decay to 0
    weight_decay: float = 1e-4
    augment: bool = False  # the modality's random views for training instead of the deterministic eval view
    views: dict = field(default_factory=dict)  # overrides of the modality's fine-tuning views


def _chunks(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """One epoch's shuffled positions in batches; a last batch of one joins the one before (BatchNorm in
    training mode cannot normalise a batch of one)."""
    perm = torch.randperm(n, generator=gen)
    bs = max(1, int(batch_size))
    chunks = [perm[i:i + bs] for i in range(0, len(perm), bs)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] = torch.cat([chunks[-2], chunks.pop()])
    return chunks


@torch.no_grad()
def _predict(model: Any, head: torch.nn.Module, ctx: EvalContext) -> torch.Tensor:
    split = ctx.splits["test"]
    preds = [head(model.finetune_features(x).float()).argmax(1).cpu()
             for x in ctx.modality.eval_inputs(split, ctx.data, ctx.device, ctx.batch_size)]
    return torch.cat(preds)


def finetune_and_test(ctx: EvalContext, train_idx: torch.Tensor, train_labels: torch.Tensor, cfg: Any,
                      seed: int | None = None, split: Split | None = None) -> float:
    """Fine-tune a deep copy of ``ctx.method`` with a linear head on the training examples ``train_idx``
    labelled ``train_labels`` (the same length; possibly a few-shot subset or noisy labels), then return
    top-1 accuracy (%) on the clean test labels. ``cfg``: any object with FinetuneConfig's fields.
    ``split``: the split ``train_idx`` indexes (default ``ctx.splits["train"]``; ``noisy_input`` passes a copy
    with perturbed inputs).

    The original method is untouched; the RNG state of the caller is restored afterwards.
    """
    modality = ctx.modality
    if not modality.supports_finetune:
        from ..errors import ConfigError

        raise ConfigError(f"Fine-tuning is not built for {modality.name} data; use a frozen-feature protocol "
                          "(linear, knn, few_shot or noisy_label with head: linear)")
    train_idx = torch.as_tensor(train_idx).long().cpu()
    train_labels = torch.as_tensor(train_labels).long().cpu()
    if len(train_idx) != len(train_labels) or len(train_idx) == 0:
        raise ValueError(f"finetune_and_test: {len(train_idx)} indices but {len(train_labels)} labels")
    seed = ctx.seed if seed is None else int(seed)
    test_labels = ctx.splits["test"].labels.clone()
    split = ctx.splits["train"] if split is None else split
    with torch.random.fork_rng(devices=rng_devices(ctx.device)):
        torch.manual_seed(seed)
        model = copy.deepcopy(ctx.method).to(ctx.device)
        inputs = modality.finetune_inputs(split, ctx.data, ctx.device, bool(getattr(cfg, "augment", False)),
                                          dict(getattr(cfg, "views", {}) or {}))
        x0 = next(modality.eval_inputs(split, ctx.data, ctx.device, 2, train_idx[:2]))
        model.eval()  # the probe for the feature size must not move BN statistics
        with torch.no_grad():
            dim = model.finetune_features(x0).flatten(1).shape[1]
        model.train()
        head = torch.nn.Linear(dim, ctx.data.num_classes).to(ctx.device)
        params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, len(train_idx) // max(1, int(cfg.batch_size)))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(cfg.epochs) * steps_per_epoch))
        gen = torch.Generator().manual_seed(seed)
        for _ in range(int(cfg.epochs)):
            for pos in _chunks(len(train_idx), cfg.batch_size, gen):
                x, y = inputs(train_idx[pos]), train_labels[pos].to(ctx.device)
                h = model.finetune_features(x).flatten(1)
                loss = model.finetune_loss(head(h), h, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched.last_epoch < sched.T_max:
                    sched.step()
        model.eval()
        head.eval()
        preds = _predict(model, head, ctx)
    return 100.0 * (preds == test_labels).float().mean().item()


@register_protocol("finetune")
class Finetune(Protocol):
    """Fine-tune the encoder with a linear head on the full labelled training split; top-1 on the test split."""

    version = 1

    @dataclass
    class Config(FinetuneConfig):
        pass

    def trains_encoder(self) -> bool:
        return True

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        labels = ctx.splits["train"].labels
        acc = finetune_and_test(ctx, torch.arange(len(labels)), labels, self.cfg, seed=ctx.seed)
        return {"top1": Metric(acc, True, "%", "finetune", per_seed=[acc], n=1)}


__all__ = ["finetune_and_test", "Finetune", "FinetuneConfig"]
