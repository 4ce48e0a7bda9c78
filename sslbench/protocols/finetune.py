"""Fine-tuning (SimCLR Sec. 6 / App. B.5): the pretrained encoder and a linear head trained end to end.

The run's method is deep-copied first, so the fine-tuned weights never reach the
other protocols of the run (which read the frozen features of the original). The
copy is trained on the labelled training split (or a few-shot / noisy-label subset
of it, see :func:`finetune_and_test`) with AdamW and a cosine schedule, then the
test split is classified with the deterministic evaluation view.

Hooks a method may define (looked up on the copy):

- ``finetune_loss(logits, features, labels) -> loss``: its supervised loss (default
  cross-entropy; SCL adds a supervised contrastive term);
- ``finetune_features(x) -> B x D``: the trainable feature map (default
  ``method.encoder``; ``baseline.pixels`` flattens the pixels).

Inputs are the deterministic evaluation views for training and test unless
``augment: true``, which trains on random views (kornia, batched: random resized crop
and flip by default, ``views`` overrides :class:`~sslbench.config.ImageViewConfig`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from ..config import ImageViewConfig, update_dataclass
from ..plugins import register_protocol
from ..records import Metric
from ..views.image import BatchedImageViews, eval_batch, eval_transform, per_sample_views
from .base import EvalContext, Protocol

# Fine-tuning views when augment is on: SimCLR fine-tunes with random crops and flips only.
FINETUNE_VIEWS = dict(crop_scale=(0.2, 1.0), flip_p=0.5, jitter_p=0.0, jitter_strength=0.0, grayscale_p=0.0,
                      blur_p=0.0, solarize_p=0.0)


@dataclass
class FinetuneConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3  # AdamW, cosine decay to 0
    weight_decay: float = 1e-4
    augment: bool = False  # random crop/flip views for training instead of the deterministic eval view
    views: dict = field(default_factory=dict)  # overrides of FINETUNE_VIEWS (ImageViewConfig fields)


def _device_list(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


class _Features(torch.nn.Module):
    """The trainable feature map of a (copied) method: its ``finetune_features`` hook or its encoder."""

    def __init__(self, method: Any):
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hook = getattr(self.method, "finetune_features", None)
        return hook(x) if callable(hook) else self.method.encoder(x)


def _train_batches(ctx: EvalContext, train_idx: torch.Tensor, labels: torch.Tensor, cfg: Any,
                   gen: torch.Generator, augment: torch.nn.Module | None, tf_train):
    """Yields (normalised image batch on the device, labels on the device) for one epoch."""
    split = ctx.splits["train"]
    perm = torch.randperm(len(train_idx), generator=gen)
    bs = max(1, int(cfg.batch_size))
    chunks = [perm[i:i + bs] for i in range(0, len(perm), bs)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:  # a batch of one breaks BatchNorm in training mode
        chunks[-2] = torch.cat([chunks[-2], chunks.pop()])
    for pos in chunks:
        idx = train_idx[pos]
        y = labels[pos].to(ctx.device)
        if split.in_memory:
            raw = split.images[idx].to(ctx.device)
            x = augment(raw.float().div(255)) if augment is not None else eval_batch(raw, ctx.data)
        else:
            x = torch.stack([tf_train(split.dataset[int(i)][0]) for i in idx]).to(ctx.device)
        yield x, y


@torch.no_grad()
def _predict(features: torch.nn.Module, head: torch.nn.Module, ctx: EvalContext) -> torch.Tensor:
    split = ctx.splits["test"]
    bs = ctx.batch_size
    preds = []
    if split.in_memory:
        for i in range(0, len(split), bs):
            x = eval_batch(split.images[i:i + bs].to(ctx.device), ctx.data)
            preds.append(head(features(x).float()).argmax(1).cpu())
    else:
        tf = eval_transform(ctx.data)
        loader = DataLoader(Subset(split.dataset, range(len(split))), batch_size=bs, num_workers=0,
                            collate_fn=lambda items: torch.stack([tf(img) for img, _ in items]))
        for x in loader:
            preds.append(head(features(x.to(ctx.device)).float()).argmax(1).cpu())
    return torch.cat(preds)


def finetune_and_test(ctx: EvalContext, train_idx: torch.Tensor, train_labels: torch.Tensor, cfg: Any,
                      seed: int | None = None) -> float:
    """Fine-tune a deep copy of ``ctx.method`` with a linear head on the training examples ``train_idx``
    labelled ``train_labels`` (the same length; possibly a few-shot subset or noisy labels), then return
    top-1 accuracy (%) on the clean test labels. ``cfg``: any object with FinetuneConfig's fields.

    The original method is untouched; the RNG state of the caller is restored afterwards.
    """
    if ctx.splits["train"].graph is not None:
        from ..errors import ConfigError

        raise ConfigError("Fine-tuning is not built for graph data yet (it batches images); on a graph use "
                          "logreg, linear, knn, few_shot or noisy_label with head: linear")
    train_idx = torch.as_tensor(train_idx).long().cpu()
    train_labels = torch.as_tensor(train_labels).long().cpu()
    if len(train_idx) != len(train_labels) or len(train_idx) == 0:
        raise ValueError(f"finetune_and_test: {len(train_idx)} indices but {len(train_labels)} labels")
    seed = ctx.seed if seed is None else int(seed)
    test_labels = ctx.splits["test"].labels.clone()
    with torch.random.fork_rng(devices=_device_list(ctx.device)):
        torch.manual_seed(seed)
        model = copy.deepcopy(ctx.method).to(ctx.device)
        features = _Features(model)
        probe_split = ctx.splits["train"]
        augment, tf_train = None, None
        views = ImageViewConfig(**FINETUNE_VIEWS)
        update_dataclass(views, dict(getattr(cfg, "views", {}) or {}), "finetune.views")
        if probe_split.in_memory:
            x0 = eval_batch(probe_split.images[train_idx[:2]].to(ctx.device), ctx.data)
            if getattr(cfg, "augment", False):
                augment = BatchedImageViews(views, ctx.data).to(ctx.device)
        else:
            tf_train = per_sample_views(views, ctx.data) if getattr(cfg, "augment", False) else eval_transform(ctx.data)
            x0 = torch.stack([eval_transform(ctx.data)(probe_split.dataset[int(i)][0])
                              for i in train_idx[:2]]).to(ctx.device)
        model.eval()  # the probe for the feature size must not move BN statistics
        with torch.no_grad():
            dim = features(x0).flatten(1).shape[1]
        model.train()
        head = torch.nn.Linear(dim, ctx.data.num_classes).to(ctx.device)
        params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, len(train_idx) // max(1, int(cfg.batch_size)))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(cfg.epochs) * steps_per_epoch))
        loss_hook = getattr(model, "finetune_loss", None)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(int(cfg.epochs)):
            for x, y in _train_batches(ctx, train_idx, train_labels, cfg, gen, augment, tf_train):
                h = features(x).flatten(1)
                logits = head(h)
                loss = loss_hook(logits, h, y) if callable(loss_hook) else F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched.last_epoch < sched.T_max:
                    sched.step()
        model.eval()
        head.eval()
        preds = _predict(features, head, ctx)
    return 100.0 * (preds == test_labels).float().mean().item()


@register_protocol("finetune")
class Finetune(Protocol):
    """Fine-tune the encoder with a linear head on the full labelled training split; top-1 on the test split."""

    version = 1

    @dataclass
    class Config(FinetuneConfig):
        pass

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        labels = ctx.splits["train"].labels
        acc = finetune_and_test(ctx, torch.arange(len(labels)), labels, self.cfg, seed=ctx.seed)
        return {"top1": Metric(acc, True, "%", "finetune", per_seed=[acc], n=1)}


__all__ = ["finetune_and_test", "Finetune", "FinetuneConfig"]
