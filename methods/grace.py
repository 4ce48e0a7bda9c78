"""GRACE: deep GRAph Contrastive rEpresentation learning (Zhu, Xu, Yu, Liu, Wu, Wang 2020, arXiv 2006.04131).

Two views of the whole graph, each with its own edge-dropping and feature-masking
probabilities (suite ``views``: ``drop_edge: [p_e1, p_e2]``, ``mask_feature: [p_f1, p_f2]``,
:mod:`sslbench.views.graph`), go through one GCN encoder f (N x D each) and a projection
head g (two layers with ELU, Sec. 3.2). Node i's embedding in view 1, u_i, has its positive
v_i (view 2) and 2N - 2 negatives: every other node in the other view (inter-view) and in
its own view (intra-view), Eq. 1:

    l(u_i, v_i) = -log  e^{theta(u_i, v_i)/t} / ( e^{theta(u_i, v_i)/t} + sum_{k != i} e^{theta(u_i, v_k)/t}
                                                   + sum_{k != i} e^{theta(u_i, u_k)/t} )

with theta the cosine similarity, and J = 1/(2N) sum_i [l(u_i, v_i) + l(v_i, u_i)] (Eq. 2).
That is the shared :func:`~sslbench.components.losses.info_nce` with in-batch negatives over
the nodes, i.e. NT-Xent. The frozen representation is f's output on the clean graph.

``sample_nodes`` S > 0 contrasts a random S of the N nodes per step (2S - 2 negatives each;
0, the paper, uses all): the axis ``sslbench profile`` sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sslbench.components.losses import info_nce_logit_bytes, nt_xent
from sslbench.errors import ConfigError
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method


@register_method("grace")
class GRACE(Method):
    modality = "graph"
    version = 1
    negatives_key = "method.sample_nodes"

    @dataclass
    class Config(Method.Config):
        temperature: float = 0.4  # tau; the paper's Cora value
        proj_hidden_dim: int = 128
        sample_nodes: int = 0  # contrast a random subset of S nodes per step; 0: all N (the paper)

    def setup(self) -> None:
        c = self.cfg
        if c.sample_nodes < 0 or c.sample_nodes == 1:
            raise ConfigError(f"Bad value for 'method.sample_nodes': {c.sample_nodes}; 0 (all nodes) or 2 or more")
        self.projector = nn.Sequential(nn.Linear(self.feature_dim, c.proj_hidden_dim), nn.ELU(),
                                       nn.Linear(c.proj_hidden_dim, self.feature_dim))

    def _nodes(self, n: int) -> int:
        return min(self.cfg.sample_nodes, n) if self.cfg.sample_nodes else n

    def training_step(self, batch: Batch) -> StepOutput:
        g1, g2 = batch.views
        z1 = self.projector(self.encoder(g1.x, g1.edge_index))  # N x D
        z2 = self.projector(self.encoder(g2.x, g2.edge_index))
        n = z1.shape[0]
        s = self._nodes(n)
        if s < n:
            idx = torch.randperm(n, device=z1.device)[:s]
            z1, z2 = z1[idx], z2[idx]
        return StepOutput(loss=nt_xent(z1, z2, temperature=self.cfg.temperature))

    def num_negatives(self, batch_size: int) -> int:
        return 2 * self._nodes(self.data.num_nodes) - 2

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """Float32 floor of what grows with the contrasted nodes S: the two directions' S x 2S logits
        (:func:`info_nce_logit_bytes`); the encoder's activations are N x D whatever S is."""
        s = self._nodes(self.data.num_nodes)
        return info_nce_logit_bytes(s, 2 * s - 1, calls=2)
