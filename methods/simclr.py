"""SimCLR (Chen, Kornblith, Norouzi, Hinton 2020, arXiv 2002.05709).

Two views of each image -> encoder f -> projection head g -> NT-Xent over the 2N
views with temperature t (Eq. 1). The frozen representation is f's output (before g).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sslbench.components.heads import mlp_head
from sslbench.components.losses import info_nce_logit_bytes, nt_xent, per_sample_activation_bytes
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method


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

    def setup(self) -> None:
        c = self.cfg
        self.projector = mlp_head(self.feature_dim, c.proj_hidden_dim, c.proj_dim, c.proj_layers)

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.views
        n = x1.shape[0]
        h = self.encoder(torch.cat([x1, x2]))  # 2N x feature_dim: one pass keeps BN statistics over both views
        z = self.projector(h)  # 2N x proj_dim
        loss = nt_xent(z[:n], z[n:], temperature=self.cfg.temperature)
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
