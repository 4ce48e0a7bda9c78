"""BYOL: Bootstrap Your Own Latent (Grill et al. 2020, arXiv 2006.07733, Sec. 3.1, Eq. 2, App. A-B).

Online network: encoder f_theta (``self.encoder``) -> projector g_theta (Linear-BN-ReLU-Linear, 4096 hidden,
256 out in the paper) -> predictor q_theta (the same MLP shape). Target network: encoder + projector
(f_xi, g_xi), a copy updated only by EMA after each optimiser step, xi <- tau xi + (1 - tau) theta, with
tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2 (Sec. 3.2: tau_base 0.996, k the step, K the steps of the run).

Shapes, for views v, v' (B x C x H x W):

    y = f(v): B x feature_dim   z = g(y): B x proj_dim   q = q(z): B x proj_dim   z' = g_xi(f_xi(v')): B x proj_dim
    L(v, v') = mean_b || q_b/|q_b| - z'_b/|z'_b| ||^2 = mean_b (2 - 2 cos(q_b, z'_b))          (Eq. 2)
    L_BYOL = L(v, v') + L(v', v)       (symmetrised: each view through both networks; a sum, as the paper)

The target is computed under ``no_grad`` (sg(z')) and its parameters have ``requires_grad=False`` and are not in
the optimiser (``parameter_groups``): the encoder's frozen features (``embed``) are the online encoder's.

``profile``: there are no negatives, so ``num_negatives`` is 0 and ``profile`` sweeps ``pretrain.batch_size``
(the base ``negatives_key``); ``negatives_memory_bytes`` counts what grows with it, 2N views' online activations.

Differs from the paper / the official code (deepmind-research/byol) at this CPU scale:

- head sizes come from the suite (``proj_hidden_dim``, ``proj_dim``, ``pred_hidden_dim``); defaults are the paper's.
- the optimiser is the engine's (the paper: LARS, lr 0.2 x B/256, wd 1.5e-6, biases and BN excluded from wd and
  LARS adaptation, 10 warm-up epochs, cosine): the suite picks it; no per-parameter exclusion here.
- each view is encoded in its own forward pass (per-view BN statistics, as the official code); the target
  runs in training mode (batch statistics) and keeps its own BN running statistics (unused: only the online
  encoder is evaluated).
- data parallel: the loss is per sample, nothing is gathered; BN is per rank unless ``pretrain.sync_bn``
  (the paper syncs BN across its 512 TPU cores).
- views are the suite's base recipe twice (the paper's asymmetric blur / solarisation pair is not applied).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.components.heads import mlp_head
from sslbench.components.losses import per_sample_activation_bytes
from sslbench.components.memory import momentum_update
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.validation import at_least_one, check, probability


def byol_loss(q: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """Eq. 2: mean over the batch of 2 - 2 cos(q, z') (q, z': B x D); z' is treated as a constant."""
    return (2 - 2 * F.cosine_similarity(q, z_target.detach(), dim=1)).mean()


def target_tau(k: int, total: int, base: float) -> float:
    """Sec. 3.2: tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2; tau_0 = tau_base, tau_K = 1."""
    return 1 - (1 - base) * (math.cos(math.pi * k / max(1, total)) + 1) / 2


def normalized_std(z: torch.Tensor) -> float:
    """SimSiam's collapse diagnostic (Chen & He 2020, Fig. 2): the per-channel std over the batch of z / |z|,
    averaged over channels; 0 when collapsed, about 1 / sqrt(D) for well-spread outputs (B x D -> float)."""
    return float(F.normalize(z.detach().float(), dim=1).std(dim=0).mean())


@register_method("byol")
class BYOL(Method):
    modality = "image"
    version = 1

    @dataclass
    class Config(Method.Config):
        proj_hidden_dim: int = 4096
        proj_dim: int = 256
        pred_hidden_dim: int = field(default=4096, metadata=check(at_least_one))
        # the target's EMA rate at step 0, cosine-increased to 1 at the run's end
        tau_base: float = field(default=0.996, metadata=check(probability, "a rate in [0, 1]"))

    def setup(self) -> None:
        c = self.cfg
        self.projector = mlp_head(self.feature_dim, c.proj_hidden_dim, c.proj_dim, 2)
        self.predictor = mlp_head(c.proj_dim, c.pred_hidden_dim, c.proj_dim, 2)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in self._target_parameters():
            p.requires_grad_(False)
        self.tau = c.tau_base  # the rate of the last EMA update (logged for inspection)

    def _target_parameters(self) -> list[nn.Parameter]:
        return [*self.target_encoder.parameters(), *self.target_projector.parameters()]

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Online z = g(f(x)): B x ... -> B x proj_dim."""
        return self.projector(self.encoder(x))

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        """Target z' = g_xi(f_xi(x)), no gradient: B x ... -> B x proj_dim."""
        return self.target_projector(self.target_encoder(x))

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.views[:2]
        z1, z2 = self.project(x1), self.project(x2)
        q1, q2 = self.predictor(z1), self.predictor(z2)
        t1, t2 = self.target(x1), self.target(x2)
        loss = byol_loss(q1, t2) + byol_loss(q2, t1)
        return StepOutput(loss=loss, logs={"z_std": normalized_std(z1), "tau": self.tau})

    def after_step(self, step: int, total: int) -> None:
        """xi <- tau_k xi + (1 - tau_k) theta, k = step - 1: the official code's 0-based global step."""
        self.tau = target_tau(step - 1, total, self.cfg.tau_base)
        momentum_update(self.encoder, self.target_encoder, self.tau, copy_buffers=False)
        momentum_update(self.projector, self.target_projector, self.tau, copy_buffers=False)

    def parameter_groups(self) -> list[dict]:
        """The online network (encoder, projector, predictor); the target moves by EMA only."""
        target = {id(p) for p in self._target_parameters()}
        return [{"params": [p for p in self.parameters() if p.requires_grad and id(p) not in target]}]

    def num_negatives(self, batch_size: int) -> int:
        return 0  # no negatives: `profile` sweeps pretrain.batch_size

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """What grows with the batch: the activations autograd keeps for the 2N views through f, g and q
        (traced once, float32, ``per_sample_activation_bytes``). The target's forward keeps nothing."""
        if getattr(self, "_view_bytes", None) is None:
            shape = self.modality_plugin.sample_shape(self.data)
            net = nn.Sequential(self.encoder, self.projector, self.predictor)
            self._view_bytes = per_sample_activation_bytes(net, shape)
        return 2 * batch_size * self._view_bytes
