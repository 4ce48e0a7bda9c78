"""GCC: Graph Contrastive Coding (Qiu et al. 2020, arXiv 2006.09963, Sec. 3), MoCo form (Sec. 3.3).

An instance is a subgraph: two random-walk-with-restart subgraphs around the same ego node of a graph are a
positive pair (Sec. 3.2, the views of :mod:`sslbench.views.graphs`: induced subgraphs, node features = the
generalised positional embedding (top eigenvectors of the subgraph's normalised adjacency), degree one-hot and
the ego indicator). The query encoder f_q (the suite's encoder, a 5-layer GIN with sum readout) embeds view 1,
the key encoder f_k (a momentum copy, no gradient, outside the optimiser; BatchNorm in training mode, dropout
off, as the official ``train_moco``) embeds view 2; q, k are L2-normalised (GCC's ``norm=True``), B x D.
Loss (Eq. 1): InfoNCE of q against k and the K queued keys of earlier steps,

    L = -log exp(q.k+ / t) / (exp(q.k+ / t) + sum_{j=1..K} exp(q.k_j / t)),   logits B x (1 + K),

the shared ``info_nce`` (``in_batch=False``). After the optimiser step theta_k <- m theta_k + (1 - m) theta_q
(BN statistics copied) and the step's keys are enqueued (``KeyQueue``). No projection head: the encoder's output
is what is contrasted and what the probes read. ``negatives_key = "method.queue_size"`` (K per anchor).

The paper's setting: t = 0.07, m = 0.999, K = 16384, batch 32, Adam lr 0.005 (weight decay 1e-5, 10% linear
warm-up then linear decay, gradient norm clipped at 1), GIN 5 layers x 64, positional embedding 32, RWR
restart 0.8 and 256 hops; pretrained on six large graphs and transferred. Differences here: the suites
pretrain in-domain on the training graphs of the evaluated set (the paper's "GCC (MoCo)" rows transfer from
other graphs); K is scaled to the data set (a queue far larger than the training set holds many stale keys of
the same graph); no gradient clipping (the engine has none) and the engine's schedules; the degree feature is
a one-hot input, not a learned embedding table (the same function class: one-hot times the first layer's
weights); GCC's E2E variant (in-batch negatives, both views through f_q) is not built.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.components.losses import info_nce, info_nce_logit_bytes
from sslbench.components.memory import KeyQueue, momentum_update, queue_bytes
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method


@register_method("gcc")
class GCC(Method):
    modality = "graphs"
    version = 1
    negatives_key = "method.queue_size"

    @dataclass
    class Config(Method.Config):
        queue_size: int = 16384  # K (GCC's nce_k with --moco)
        momentum: float = 0.999  # m of the key encoder (GCC's alpha)
        temperature: float = 0.07  # t (GCC's nce_t)

    def setup(self) -> None:
        self.key_encoder = copy.deepcopy(self.encoder)
        for p in self.key_encoder.parameters():
            p.requires_grad_(False)
        self.queue = KeyQueue(self.cfg.queue_size, self.feature_dim)
        self._pending: torch.Tensor | None = None

    def views(self, base: Any) -> list[Any]:
        return [base, base]  # two RWR subgraphs around the same ego node (the batch source draws the ego once)

    def _key_mode(self) -> None:
        """GCC's ``model_ema.eval()`` then BatchNorm back to training mode: batch statistics, no dropout."""
        self.key_encoder.eval()
        for m in self.key_encoder.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train(self.training)

    def _loss(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return info_nce(q, k, negatives=self.queue.keys.clone().detach(), temperature=self.cfg.temperature,
                        in_batch=False, normalize=False)

    def training_step(self, batch: Batch) -> StepOutput:
        x_q, x_k = batch.views[:2]
        q = F.normalize(self.modality_plugin.encode(self.encoder, x_q), dim=1)
        self._key_mode()
        with torch.no_grad():
            k = F.normalize(self.modality_plugin.encode(self.key_encoder, x_k), dim=1)
        loss = self._loss(q, k)
        self._pending = k
        return StepOutput(loss=loss)

    def after_step(self, step: int, total: int) -> None:
        """Momentum update of f_k, then enqueue this step's keys (MoCo's Alg. 1, GCC's ``moment_update``)."""
        momentum_update(self.encoder, self.key_encoder, self.cfg.momentum)
        if self._pending is not None:
            self.queue.enqueue(self._pending)
            self._pending = None

    def parameter_groups(self) -> list[dict]:
        """The query encoder only; the key encoder moves by momentum."""
        key = {id(p) for p in self.key_encoder.parameters()}
        return [{"params": [p for p in self.parameters() if p.requires_grad and id(p) not in key]}]

    def num_negatives(self, batch_size: int) -> int:
        return self.cfg.queue_size

    def negatives_memory_bytes(self, batch_size: int) -> int:
        # the queue, the clone the loss reads (kept for backward), B x (1 + K) logits forward and gradient
        return 2 * queue_bytes(self.cfg.queue_size, self.feature_dim) + info_nce_logit_bytes(batch_size,
                                                                                               self.cfg.queue_size)
