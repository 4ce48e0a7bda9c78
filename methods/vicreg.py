"""VICReg: variance-invariance-covariance regularisation (Bardes, Ponce, LeCun 2021, arXiv 2105.04906).

Two views of each image -> encoder f -> expander (projector) h -> embeddings Z, Z' (N x D). Sec. 3-4:

- invariance s(Z, Z') (Eq. 5): the mean squared distance of paired embeddings, ``F.mse_loss`` (mean over the
  N x D entries, as the official code; Eq. 5 writes the mean over N of the squared norms, D times larger);
- variance v(Z) (Eq. 1): mean_j max(0, gamma - sqrt(Var(z_j) + eps)), Var the unbiased variance over the batch
  of dimension j, gamma 1, eps 1e-4, per branch;
- covariance c(Z) (Eq. 3-4): the sum of the squared off-diagonal entries of the covariance matrix
  C(Z) = sum_b (z_b - mean)(z_b - mean)^T / (N - 1) (D x D), divided by D, per branch;
- loss (Eq. 6): lambda s + mu v + nu c with lambda = mu = 25, nu = 1 (Sec. 4.3).

No negatives: ``profile`` sweeps the batch size (``negatives_key = "pretrain.batch_size"``, ``num_negatives`` 0).

Data parallel (``torchrun``, ``--nproc``): the variance and covariance need the global batch; Z and Z' are
all-gathered with their gradient (:func:`sslbench.components.gather.gather_with_grad`) before they are
computed, as the official ``FullGatherLayer`` does (``method.gather: false``: each rank's shard, an ablation).
The invariance is a mean over pairs and stays on each rank's own rows (the engine's gradient mean over ranks
makes it the global mean), as the official code.

What differs from the paper / the official code (``facebookresearch/vicreg``, ``main_vicreg.py``):

- v: Eq. 6 sums the two branches' variance terms, mu [v(Z) + v(Z')]; the official code (and lightly) averages
  them, mu [v(Z) + v(Z')] / 2, and its coefficients produced the paper's tables: we follow the code (solo-learn
  sums, as Eq. 6). The covariance terms are summed, as in both.
- Expander: :func:`sslbench.components.heads.mlp_head` (Linear without bias -> BN -> ReLU) x (L-1) -> Linear;
  the paper's 3 layers of 8192 are the defaults, suites at CPU scale set smaller ones. The last layer keeps a
  bias the official code drops: v and c centre Z and s takes Z - Z', so it gets no gradient.
- Each view is encoded in its own pass (BN statistics per view, as the official code) and the loss is
  computed in float32 under AMP. Views: both from the suite's recipe (the paper uses BYOL's asymmetric
  blur / solarisation), so the method table compares objectives on the same views.
- The optimiser, LR and schedule are the suite's (the official LARS excludes biases and BN weights from the
  weight decay and the trust ratio: not reproduced).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.components.gather import gather_with_grad
from sslbench.components.heads import mlp_head
from sslbench.components.losses import per_sample_activation_bytes
from sslbench.errors import ConfigError
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method


def invariance_term(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """s(Z, Z'), Eq. 5 as the official code: N x D, N x D -> mean over the N x D entries of (z - z')^2."""
    return F.mse_loss(z1, z2)


def variance_term(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """v(Z), Eq. 1: N x D -> mean_j relu(gamma - sqrt(unbiased Var over the batch of column j + eps))."""
    return F.relu(gamma - torch.sqrt(z.var(dim=0) + eps)).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """c(Z), Eq. 3-4: N x D -> sum_{i != j} C(Z)_ij^2 / D, C(Z) the D x D unbiased covariance over the batch."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = z.T @ z / (n - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0, gamma: float = 1.0, eps: float = 1e-4,
                gather: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 6 as the official code: lambda s + mu (v(Z) + v(Z')) / 2 + nu (c(Z) + c(Z')) on N x D embeddings.

    ``gather``: v and c over the global batch (``gather_with_grad``; the identity on one process), s on the rows
    given. Returns the loss and its three unweighted terms."""
    if z1.dtype in (torch.float16, torch.bfloat16):  # AMP: the covariance sums N products per entry
        z1, z2 = z1.float(), z2.float()
    s = invariance_term(z1, z2)
    if gather:
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
    v = (variance_term(z1, gamma, eps) + variance_term(z2, gamma, eps)) / 2
    c = covariance_term(z1) + covariance_term(z2)
    return sim_coeff * s + std_coeff * v + cov_coeff * c, {"invariance": s, "variance": v, "covariance": c}


@register_method("vicreg")
class VICReg(Method):
    modality = "image"
    version = 1
    negatives_key = "pretrain.batch_size"  # no negatives: what grows with the batch is the batch itself

    @dataclass
    class Config(Method.Config):
        sim_coeff: float = 25.0  # lambda, invariance
        std_coeff: float = 25.0  # mu, variance
        cov_coeff: float = 1.0  # nu, covariance
        gamma: float = 1.0  # target standard deviation of each dimension
        eps: float = 1e-4
        proj_hidden_dim: int = 8192
        proj_dim: int = 8192  # D
        proj_layers: int = 3
        gather: bool = True  # data parallel: v and c over the global batch (False: this rank's shard only)

    def setup(self) -> None:
        c = self.cfg
        for key in ("proj_hidden_dim", "proj_dim", "proj_layers"):
            if getattr(c, key) < 1:
                raise ConfigError(f"Bad value for 'method.{key}': {getattr(c, key)}; 1 or more")
        for key in ("sim_coeff", "std_coeff", "cov_coeff", "gamma"):
            if getattr(c, key) < 0:
                raise ConfigError(f"Bad value for 'method.{key}': {getattr(c, key)}; 0 or more")
        if c.eps <= 0:
            raise ConfigError(f"Bad value for 'method.eps': {c.eps}; more than 0 (the sqrt's stabiliser)")
        self.projector = mlp_head(self.feature_dim, c.proj_hidden_dim, c.proj_dim, c.proj_layers)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """B x ... -> B x D: one view through f and h (BN statistics of this view only)."""
        return self.projector(self.encoder(x))

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.views[:2]
        z1, z2 = self.project(x1), self.project(x2)
        c = self.cfg
        loss, terms = vicreg_loss(z1, z2, c.sim_coeff, c.std_coeff, c.cov_coeff, c.gamma, c.eps, gather=c.gather)
        return StepOutput(loss=loss, logs={k: float(v.detach()) for k, v in terms.items()})

    def num_negatives(self, batch_size: int) -> int:
        return 0

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """No negatives; the floor of what the loss needs at ``batch_size``, in float32: both views' activations
        through f and h (traced once, as SimCLR's) times 2N, plus the two covariance matrices and their
        gradients (4 x D x D)."""
        if getattr(self, "_view_bytes", None) is None:
            shape = self.modality_plugin.sample_shape(self.data)
            self._view_bytes = per_sample_activation_bytes(nn.Sequential(self.encoder, self.projector), shape)
        d = self.cfg.proj_dim
        return 2 * batch_size * self._view_bytes + 4 * d * d * 4
