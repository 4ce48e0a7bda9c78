"""Instance discrimination with a memory bank (Wu, Xiong, Yu, Lin 2018, arXiv 1805.01978).

One view per image -> encoder -> linear head to 128-d -> L2 norm: v (N x 128). The
bank holds one unit feature per training sample (Sec. 3.2); the positive of sample i
is its own bank entry v_i, the negatives K entries drawn uniformly from the bank
(N x K x D, detached). Loss: the non-parametric softmax (Eq. 2) over
{v_i} + negatives with temperature t, as an InfoNCE. The paper approximates the
full softmax over all N entries with NCE (Eq. 4-6); like the lemniscate issue
threads and later works (CMC, MoCo) we use the sampled softmax form instead.
After the optimiser step the bank entries of the batch are refreshed:
v_i <- normalize(m v_i + (1 - m) f_i) (Sec. 3.3, the official proximal update).

Negative indices come from a torch.Generator seeded from the global RNG at the step;
the engine seeds the global RNG per step, so runs are deterministic and a resumed
run draws the same negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.components.losses import info_nce, info_nce_logit_bytes
from sslbench.components.memory import MemoryBank, bank_bytes
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method


@register_method("instdisc")
class InstDisc(Method):
    modality = "image"
    version = 1
    negatives_key = "method.num_negatives"

    @dataclass
    class Config(Method.Config):
        num_negatives: int = 4096  # K sampled bank entries per anchor (the paper's m)
        temperature: float = 0.07
        bank_momentum: float = 0.5
        proj_dim: int = 128

    def setup(self) -> None:
        self.head = nn.Linear(self.feature_dim, self.cfg.proj_dim)
        self.bank = MemoryBank(self.train_size, self.cfg.proj_dim)
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def views(self, base: Any) -> list[Any]:
        return [base]

    def sample_negatives(self, n: int) -> torch.Tensor:
        """n x K bank indices, from a generator seeded by the global RNG (deterministic per step)."""
        seed = int(torch.randint(0, 2**62, (1,)))
        return self.bank.sample(n, self.cfg.num_negatives, generator=torch.Generator().manual_seed(seed))

    def training_step(self, batch: Batch) -> StepOutput:
        x, idx = batch.views[0], batch.index
        v = F.normalize(self.head(self.encoder(x)), dim=1)  # N x D
        pos = self.bank.get(idx).detach()  # N x D
        neg = self.bank.get(self.sample_negatives(x.shape[0])).detach()  # N x K x D
        # v and every bank entry are unit vectors, so the loss need not normalise them again
        loss = info_nce(v, pos, neg, temperature=self.cfg.temperature, in_batch=False, normalize=False)
        self._pending = (idx, v.detach())
        return StepOutput(loss=loss)

    def after_step(self, step: int, total: int) -> None:
        if self._pending is not None:
            idx, v = self._pending
            self.bank.update(idx, v, momentum=self.cfg.bank_momentum)
            self._pending = None

    def num_negatives(self, batch_size: int) -> int:
        return self.cfg.num_negatives

    def negatives_memory_bytes(self, batch_size: int) -> int:
        # the bank, the N x K x D gathered negatives, N x (1 + K) logits forward + gradient
        k, d = self.cfg.num_negatives, self.cfg.proj_dim
        return bank_bytes(self.train_size, d) + batch_size * k * d * 4 + info_nce_logit_bytes(batch_size, k)
