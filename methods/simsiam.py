"""SimSiam: Exploring Simple Siamese Representation Learning (Chen & He 2020, arXiv 2011.10566, Alg. 1, Eq. 1-2).

One network for both views: encoder f (``self.encoder``) -> projector (``proj_layers`` of Linear-BN-ReLU, the last
Linear followed by BN without affine and no ReLU: Sec. 4 / App. A, 3 layers of 2048 in the paper) -> predictor h
(a 2-layer bottleneck MLP, Linear-BN-ReLU-Linear, 2048 -> 512 -> 2048). For views x1, x2 (B x C x H x W):

    z1, z2 = proj(f(x1)), proj(f(x2)): B x proj_dim      p1, p2 = h(z1), h(z2): B x proj_dim
    D(p, z) = - mean_b cos(p_b, z_b)                                                     (Eq. 1)
    L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2                                            (Eq. 2, Alg. 1)

sg is the stop-gradient: z enters the loss as a constant on the target side, so gradients reach f and the
projector only through p (``detach``; tested against a transcription with and without it).

The predictor's learning rate is not decayed (Sec. 4.4, Table 1c: 68.1 against 67.7 with decay; the official
README's command passes ``--fix-pred-lr``):
``parameter_groups`` gives the predictor its own group marked ``fix_lr: True`` (``fix_pred_lr``, default on),
which the engine keeps at the base learning rate (no warm-up, no cosine) while the other groups follow the
schedule, as ``main_simsiam.py``'s ``adjust_learning_rate`` does.

``profile``: no negatives, so ``num_negatives`` is 0 and ``profile`` sweeps ``pretrain.batch_size`` (the base
``negatives_key``); ``negatives_memory_bytes`` counts the 2N views' activations that grow with it.

Differs from the paper / the official code (facebookresearch/simsiam) at this CPU scale:

- head sizes come from the suite; defaults are the paper's ImageNet ones (for CIFAR the paper uses a 2-layer
  projector: ``proj_layers: 2``). The hidden Linear layers have no bias (BN follows); the last projector Linear
  keeps a bias that the affine-free BN removes (the official code freezes it: the same function).
- the optimiser is the engine's (the paper: SGD, lr 0.05 x B/256, momentum 0.9, wd 1e-4, cosine; the suite picks).
- data parallel: the loss is per sample, nothing is gathered; BN is per rank unless ``pretrain.sync_bn``
  (the paper uses SyncBN).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.components.heads import mlp_head
from sslbench.components.losses import per_sample_activation_bytes
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.validation import at_least_one, check


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Eq. 1 with the stop-gradient of Alg. 1: D(p, sg(z)) = - mean_b cos(p_b, z_b) (p, z: B x D)."""
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def normalized_std(z: torch.Tensor) -> float:
    """Fig. 2's collapse diagnostic: the per-channel std over the batch of z / |z|, averaged over channels;
    0 when collapsed, about 1 / sqrt(D) for well-spread outputs (B x D -> float)."""
    return float(F.normalize(z.detach().float(), dim=1).std(dim=0).mean())


def simsiam_projector(in_dim: int, hidden_dim: int, out_dim: int, layers: int) -> nn.Sequential:
    """(Linear-BN-ReLU) x (layers - 1) -> Linear -> BN(affine=False): B x in_dim -> B x out_dim."""
    return nn.Sequential(*mlp_head(in_dim, hidden_dim, out_dim, layers), nn.BatchNorm1d(out_dim, affine=False))


@register_method("simsiam")
class SimSiam(Method):
    modality = "image"
    version = 1

    @dataclass
    class Config(Method.Config):
        proj_hidden_dim: int = 2048
        proj_dim: int = 2048
        proj_layers: int = field(default=3, metadata=check(at_least_one))  # 3: ImageNet; 2: the paper's CIFAR
        pred_hidden_dim: int = field(default=512, metadata=check(at_least_one))  # the bottleneck
        fix_pred_lr: bool = True  # the predictor at the base lr throughout (the paper's and official default)

    def setup(self) -> None:
        c = self.cfg
        self.projector = simsiam_projector(self.feature_dim, c.proj_hidden_dim, c.proj_dim, c.proj_layers)
        self.predictor = mlp_head(c.proj_dim, c.pred_hidden_dim, c.proj_dim, 2)

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.views[:2]
        z1, z2 = self.projector(self.encoder(x1)), self.projector(self.encoder(x2))  # per-view BN, as Alg. 1
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2
        return StepOutput(loss=loss, logs={"z_std": normalized_std(z1)})

    def parameter_groups(self) -> list[dict]:
        """Encoder and projector in one group, the predictor in a second one that keeps its lr (``fix_lr``)."""
        pred = {id(p) for p in self.predictor.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in pred]
        if not self.cfg.fix_pred_lr:
            return [{"params": rest + list(self.predictor.parameters())}]
        return [{"params": rest}, {"params": list(self.predictor.parameters()), "fix_lr": True}]

    def num_negatives(self, batch_size: int) -> int:
        return 0  # no negatives: `profile` sweeps pretrain.batch_size

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """What grows with the batch: activations autograd keeps for the 2N views through f, the projector and
        the predictor (traced once, float32, ``per_sample_activation_bytes``)."""
        if getattr(self, "_view_bytes", None) is None:
            shape = self.modality_plugin.sample_shape(self.data)
            net = nn.Sequential(self.encoder, self.projector, self.predictor)
            self._view_bytes = per_sample_activation_bytes(net, shape)
        return 2 * batch_size * self._view_bytes
