"""SimCLR (Chen, Kornblith, Norouzi, Hinton 2020, arXiv 2002.05709).

Two views of each image -> encoder f -> projection head g -> NT-Xent over the 2N
views with temperature t (Eq. 1). The frozen representation is f's output (before g).

Data parallel (``torchrun``, ``--nproc``): each rank encodes its shard of the global batch and the
projections are all-gathered with their gradient (:func:`sslbench.components.gather.gather_with_grad`),
so the negatives are the whole global batch, 2N - 2 per anchor, as in the paper (Sec. 2.2: the batch of N
is the training batch across all TPU cores); ``method.gather: false`` keeps each rank's own 2N/W - 2 (an
ablation, what SimCLR's own GPU code did).

``method.loss: triplet`` swaps NT-Xent for a triplet margin loss on the same 2N - 2 in-batch negatives per view
(:func:`sslbench.components.losses.triplet_margin_loss`, cosine distance, ``margin``; ``triplet-hard``: the
hardest negative only), so ``profile`` and the tables can set InfoNCE against a margin loss with everything else
equal: SimCLR's own "margin triplet" (Chen et al. 2020, Sec. 5.1, Table 2: max(u.v- - u.v+ + m, 0) on unit
vectors, the same as d(u, v+) - d(u, v-) + m with d = 1 - cos; Table 4 compares it with NT-Xent).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from sslbench.components.gather import gather_with_grad
from sslbench.components.heads import mlp_head
from sslbench.components.losses import (
    info_nce_logit_bytes,
    nt_xent,
    per_sample_activation_bytes,
    triplet_margin_loss,
)
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.validation import check, non_negative

LOSSES = ("infonce", "triplet", "triplet-hard")


@register_method("simclr")
class SimCLR(Method):
    modality = "image"
    version = 1

    @dataclass
    class Config(Method.Config):
        temperature: float = 0.5  # the paper's CIFAR value; 0.1 for ImageNet at large batch
        proj_hidden_dim: int = 2048
        proj_dim: int = 128
        proj_layers: int = 2
        gather: bool = True  # data parallel: negatives from every rank's shard (False: this rank's only)
        # infonce (NT-Xent) | triplet (every negative) | triplet-hard (the closest one)
        loss: str = field(default="infonce", metadata=check(lambda v: v in LOSSES, ", ".join(LOSSES)))
        # triplet margin on the cosine distance (FaceNet's 0.2 on the squared L2 of unit vectors)
        margin: float = field(default=0.1, metadata=check(non_negative))

    def setup(self) -> None:
        c = self.cfg
        self.projector = mlp_head(self.feature_dim, c.proj_hidden_dim, c.proj_dim, c.proj_layers)

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.views
        n = x1.shape[0]
        h = self.encoder(torch.cat([x1, x2]))  # 2N x feature_dim: one pass keeps BN statistics over both views
        z = self.projector(h)  # 2N x proj_dim
        z1, z2 = z[:n], z[n:]
        if self.cfg.gather:  # the global batch's views from every rank (identity on one process)
            z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        if self.cfg.loss == "infonce":
            loss = nt_xent(z1, z2, temperature=self.cfg.temperature)
        else:  # both directions, as NT-Xent: the mean over the 2N views
            kw = dict(margin=self.cfg.margin, mining="hardest" if self.cfg.loss == "triplet-hard" else "all")
            loss = 0.5 * (triplet_margin_loss(z1, z2, **kw) + triplet_margin_loss(z2, z1, **kw))
        return StepOutput(loss=loss)

    def num_negatives(self, batch_size: int) -> int:
        return 2 * batch_size - 2  # in-batch: every other view of the 2N

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """In-batch negatives are the batch itself: each of the 2N views is a negative that went through f and g,
        and autograd keeps its activations for backward. The floor counts, in float32: those activations per view
        (traced once on a random input of the modality's ``sample_shape``, ``sslbench.components.losses.per_sample_activation_bytes``) times
        2N, plus NT-Xent's logits (two directions of N x 2N, ``info_nce_logit_bytes(calls=2)``). Not counted:
        kernel workspaces, transient gradients and allocator slack."""
        if getattr(self, "_view_bytes", None) is None:
            shape = self.modality_plugin.sample_shape(self.data)
            self._view_bytes = per_sample_activation_bytes(nn.Sequential(self.encoder, self.projector), shape)
        return 2 * batch_size * self._view_bytes + info_nce_logit_bytes(batch_size, 2 * batch_size - 1, calls=2)
