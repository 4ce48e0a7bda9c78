"""Barlow Twins (Zbontar, Jing, Misra, LeCun, Deny 2021, arXiv 2103.03230).

Two views of each image -> encoder f -> projector g -> embeddings z1, z2 (N x D). Each is normalised along
the batch (zero mean, unit variance per dimension), and the D x D cross-correlation matrix (Eq. 2)

    C_ij = sum_b z1n_bi z2n_bj / N

is pushed towards the identity (Eq. 1): loss = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2. No negatives:
``profile`` sweeps the batch size (``negatives_key = "pretrain.batch_size"``, ``num_negatives`` 0).

Data parallel (``torchrun``, ``--nproc``): C needs the global batch (the official code divides each rank's
partial C by the global batch size and all-reduces it, with the normalising BN a SyncBatchNorm). Here z1 and
z2 are all-gathered with their gradient (:func:`sslbench.components.gather.gather_with_grad`) before they are
normalised, so the statistics and C are those of the global batch, as one process would compute them
(``method.gather: false``: each rank's own shard, an ablation). The projector's hidden BN layers see each
rank's shard unless ``pretrain.sync_bn: true`` (the official code converts them to SyncBatchNorm).

What differs from the paper / the official code (``facebookresearch/barlowtwins``, ``main.py``):

- Projector: :func:`sslbench.components.heads.mlp_head` (Linear without bias -> BN -> ReLU) x (L-1) -> Linear;
  the paper's 3 layers of 8192 are the defaults, suites at CPU scale set smaller ones. The last layer keeps a
  bias the official code drops: the batch normalisation removes it, so it gets no gradient and changes nothing.
- The normalisation is the official ``BatchNorm1d(affine=False)`` in training mode written out: biased batch
  variance, eps 1e-5 (lightly's ``F.batch_norm`` too; solo-learn divides by the unbiased std, no eps).
- lambda = 0.0051, the official code's default (the paper's Sec. 4 says 5e-3).
- Views: both from the suite's recipe (the official ``Transform`` blurs view 1 with p 1.0 and view 2 with p 0.1
  and solarises view 2 with p 0.2), so the method table compares objectives on the same views.
- Each view is encoded in its own pass (BN statistics per view, as the official code), and the loss is
  computed in float32 under AMP (C sums N products per entry).
- The optimiser, LR and schedule are the suite's (the official LARS excludes biases and BN weights from the
  weight decay and the trust ratio, with a 0.0048 LR for biases: not reproduced).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sslbench.components.gather import gather_with_grad
from sslbench.components.heads import mlp_head
from sslbench.components.losses import per_sample_activation_bytes
from sslbench.errors import ConfigError
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method


def batch_normalize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """N x D -> N x D, each column zero mean and unit (biased) variance over the batch: BatchNorm1d(affine=False)
    in training mode."""
    z = z - z.mean(dim=0)
    return z / torch.sqrt(z.pow(2).mean(dim=0) + eps)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Eq. 2: N x D, N x D -> D x D, C_ij = sum_b z1n_bi z2n_bj / N of the batch-normalised embeddings."""
    if z1.dtype in (torch.float16, torch.bfloat16):  # AMP: C sums N products per entry
        z1, z2 = z1.float(), z2.float()
    return batch_normalize(z1, eps).T @ batch_normalize(z2, eps) / z1.shape[0]


def barlow_twins_loss(c: torch.Tensor, lambd: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 1 on a D x D cross-correlation: (loss, invariance sum_i (1 - C_ii)^2, redundancy sum_{i!=j} C_ij^2)."""
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag, on_diag, off_diag


@register_method("barlow_twins")
class BarlowTwins(Method):
    modality = "image"
    version = 1
    negatives_key = "pretrain.batch_size"  # no negatives: what grows with the batch is the batch itself

    @dataclass
    class Config(Method.Config):
        lambd: float = 0.0051  # weight of the redundancy-reduction (off-diagonal) term; official default
        proj_hidden_dim: int = 8192
        proj_dim: int = 8192  # D, the side of C
        proj_layers: int = 3
        gather: bool = True  # data parallel: C over the global batch (False: this rank's shard only)

    def setup(self) -> None:
        c = self.cfg
        for key in ("proj_hidden_dim", "proj_dim", "proj_layers"):
            if getattr(c, key) < 1:
                raise ConfigError(f"Bad value for 'method.{key}': {getattr(c, key)}; 1 or more")
        if c.lambd < 0:
            raise ConfigError(f"Bad value for 'method.lambd': {c.lambd}; 0 or more")
        self.projector = mlp_head(self.feature_dim, c.proj_hidden_dim, c.proj_dim, c.proj_layers)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """B x ... -> B x D: one view through f and g (BN statistics of this view only)."""
        return self.projector(self.encoder(x))

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.views[:2]
        z1, z2 = self.project(x1), self.project(x2)
        if self.cfg.gather:  # the global batch from every rank (identity on one process)
            z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        loss, on_diag, off_diag = barlow_twins_loss(cross_correlation(z1, z2), self.cfg.lambd)
        return StepOutput(loss=loss, logs={"on_diag": float(on_diag.detach()), "off_diag": float(off_diag.detach())})

    def num_negatives(self, batch_size: int) -> int:
        return 0

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """No negatives; the floor of what the loss needs at ``batch_size``, in float32: both views' activations
        through f and g (traced once, as SimCLR's) times 2N, plus C and its gradient (2 x D x D)."""
        if getattr(self, "_view_bytes", None) is None:
            shape = self.modality_plugin.sample_shape(self.data)
            self._view_bytes = per_sample_activation_bytes(nn.Sequential(self.encoder, self.projector), shape)
        d = self.cfg.proj_dim
        return 2 * batch_size * self._view_bytes + 2 * d * d * 4
