"""Linear evaluation (SimCLR Sec. 4, Kolesnikov et al. 2019): a linear classifier on frozen features.

Features are computed once (EvalContext cache), standardised with the training
split's mean and std, and a softmax regression is trained on them with Adam and a
cosine schedule. Reports top-1 (and top-5 when there are more than 10 classes) on
the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..plugins import register_protocol
from ..results.records import Metric
from .base import EvalContext, Protocol, topk_accuracy


def train_linear(x: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int, batch_size: int, lr: float,
                 weight_decay: float, seed: int) -> torch.nn.Linear:
    """Softmax regression on features x (N x D), labels y (N): Adam, cosine decay, seeded shuffling."""
    g = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head.reset_parameters()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, (len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return head


def standardize(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, *others)]


def standardize_subset(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """:func:`standardize` with the subset's statistics; dimensions constant on
    the subset become 0 everywhere (a few examples often leave e.g. border pixels all zero)."""
    if len(train) < 2:  # one example: no spread to scale by
        return [t - train.mean(0, keepdim=True) for t in (train, *others)]
    out = standardize(train, *others)
    dead = train.std(0) < 1e-6
    if bool(dead.any()):
        for t in out:
            t[:, dead] = 0.0
    return out


@register_protocol("linear")
class LinearProbe(Protocol):
    version = 1

    @dataclass
    class Config:
        epochs: int = 100
        batch_size: int = 1024
        lr: float = 1e-3
        weight_decay: float = 1e-4
        # zero the dimensions constant on the training split instead of dividing them by ~0: needed when
        # few examples meet sparse features (140 Cora nodes x 1433 bag-of-words dimensions)
        drop_constant: bool = False

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        c = self.cfg
        x_train, y_train = ctx.features("train")
        x_test, y_test = ctx.features("test")
        x_train, x_test = (standardize_subset if c.drop_constant else standardize)(x_train, x_test)
        head = train_linear(x_train, y_train, ctx.data.num_classes, c.epochs, c.batch_size, c.lr,
                            c.weight_decay, ctx.seed)
        with torch.no_grad():
            scores = head(x_test)
        out = {"top1": Metric(topk_accuracy(scores, y_test, 1), True, "%", "linear")}
        if ctx.data.num_classes > 10:
            out["top5"] = Metric(topk_accuracy(scores, y_test, 5), True, "%", "linear")
        return out
