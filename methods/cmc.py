"""Contrastive Multiview Coding, Lab views (Tian, Krishnan, Isola 2019, arXiv 1906.05849, Sec. 3.1-3.3, Eq. 2-6).

One augmented view x (B x 3 x H x W, normalised RGB) is de-normalised with the data set's mean and std and
converted to CIE Lab (``kornia.color.rgb_to_lab``, D65): view 1 is L (B x 1 x H x W, in [0, 100]), view 2 is ab
(B x 2 x H x W, about [-110, 110]), each normalised with the official code's Lab constants (L: (L - 50) / 50,
a: (a - 6.025) / 92.208, b: (b + 6.690) / 101.168). Each view has its own encoder, the suite's architecture built
with 1 and 2 input channels (``Method.build_encoder``): f_1(L), f_2(ab) (B x D_1, B x D_2), then a linear head
to ``proj_dim`` and L2 normalisation: z_1, z_2 (B x d). One memory bank per view (N x d, ``MemoryBank``) holds
a unit feature per training sample.

Loss (Eq. 3, both directions): L(V1, V2) = L^{V1,V2} + L^{V2,V1}; L^{V1,V2} contrasts each anchor z_1,i with the
ab bank: positive m_2[i], negatives m_2[j] for K indices j drawn uniformly per anchor (the same draw serves
both directions, as the official ``NCEAverage``); softmax InfoNCE at temperature t (Eq. 2 with h = exp(z.m/t),
the official ``NCESoftmaxLoss``) through the shared ``info_nce`` (``negative_index``: scores against the whole
bank, the K columns picked; equal to gathering N x K x D negatives, without them). After the optimiser step
both banks take the batch's features: m_v[i] <- normalize(m m_v[i] + (1 - m) z_v,i) (momentum 0.5).

Frozen features (``embed``, every protocol; ``finetune`` trains both encoders): [f_1(L), f_2(ab)],
B x (D_1 + D_2), the concatenation the paper evaluates (Sec. 4.1). ``feature_dim`` is that sum.

Views: one view per image; the suite's recipe without colour jitter and grayscale (the official Lab training
transform is a random resized crop and a flip; grayscale would empty the ab view), unless ``color_augment``.
Colour data only: a data set with other than 3 channels (digits, MNIST) is refused with one line; converting
gray to RGB would leave a constant ab view and nothing to contrast.

Negatives: ``method.num_negatives`` (what ``profile`` sweeps), K per anchor and direction.

Differences from the paper and the official code at this scale:
- the paper splits AlexNet's / ResNet's width in halves so the two encoders together are one network; here
  each is the suite's whole encoder (twice SimCLR's parameters and compute at the same suite; halve it with
  ``encoder.options``, e.g. cnn-small's ``widths``), and the probe reads 2x its feature width;
- softmax InfoNCE, not the NCE of Eq. 4-6 (the official code has both; its README recommends the softmax);
- negatives drawn with replacement and the positive's own index may be drawn (as the official alias sampler);
- the bank is refreshed after the optimiser step, not inside the forward pass (the same values: the bank is
  detached from the loss);
- K defaults to the official 16384; the bank size is the (pretraining) training split's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_lab
from torch import nn

from sslbench.components.losses import info_nce, info_nce_logit_bytes
from sslbench.components.memory import MemoryBank, bank_bytes
from sslbench.errors import ConfigError
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.validation import check, probability

# The official code's Lab normalisation (train_CMC.py): centre and half-range of L, a, b.
LAB_MEAN = (50.0, (-86.183 + 98.233) / 2, (-107.857 + 94.478) / 2)
LAB_STD = (50.0, (86.183 + 98.233) / 2, (107.857 + 94.478) / 2)


def to_lab(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Normalised RGB B x 3 x H x W (``(rgb - mean) / std``) -> CIE Lab B x 3 x H x W (L in [0, 100]), in float32
    with autocast off (kornia's colour matrices would otherwise run in bf16)."""
    with torch.autocast(x.device.type, enabled=False):
        rgb = (x.float() * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)).clamp_(0, 1)
        return rgb_to_lab(rgb)


class LabEncoders(nn.Module):
    """The two encoders of CMC's Lab views. ``views(x)``: normalised RGB -> (L, ab) normalised with the official
    Lab constants (B x 1 x H x W, B x 2 x H x W); ``features(x)``: (f_1(L) B x D_1, f_2(ab) B x D_2);
    ``forward(x)``: their concatenation, B x (D_1 + D_2), the frozen features."""

    def __init__(self, enc_l: nn.Module, enc_ab: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.enc_l, self.enc_ab = enc_l, enc_ab
        self.register_buffer("rgb_mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("rgb_std", torch.tensor(std, dtype=torch.float32), persistent=False)
        self.register_buffer("lab_mean", torch.tensor(LAB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("lab_std", torch.tensor(LAB_STD).view(1, 3, 1, 1), persistent=False)

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lab = (to_lab(x, self.rgb_mean, self.rgb_std) - self.lab_mean) / self.lab_std
        lab = lab.to(x.dtype)
        if x.is_contiguous(memory_format=torch.channels_last):
            lab = lab.contiguous(memory_format=torch.channels_last)
        return lab[:, :1], lab[:, 1:]

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_l, v_ab = self.views(x)
        return self.enc_l(v_l), self.enc_ab(v_ab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.features(x), dim=1)


@register_method("cmc")
class CMC(Method):
    modality = "image"
    version = 1
    negatives_key = "method.num_negatives"

    @dataclass
    class Config(Method.Config):
        num_negatives: int = 16384  # K bank entries per anchor and direction (the official nce_k)
        temperature: float = 0.07  # the official nce_t
        bank_momentum: float = field(default=0.5, metadata=check(probability, "a momentum in [0, 1]"))  # nce_m
        proj_dim: int = 128  # feat_dim
        color_augment: bool = False  # keep the suite's colour jitter and grayscale (the paper's Lab views have none)

    def setup(self) -> None:
        if self.data.channels != 3:
            raise ConfigError(f"cmc needs colour images to split into Lab's L and ab views: {self.data.name} has "
                              f"{self.data.channels} channel(s); use a 3-channel data set (cifar10, stl10, imagenet)")
        enc_l, dim_l = self.build_encoder(dataclasses.replace(self.data, channels=1))
        enc_ab, dim_ab = self.build_encoder(dataclasses.replace(self.data, channels=2))
        self.encoder = LabEncoders(enc_l, enc_ab, self.data.mean, self.data.std)  # replaces the suite's RGB encoder
        self.feature_dim = dim_l + dim_ab
        d = self.cfg.proj_dim
        self.head_l, self.head_ab = nn.Linear(dim_l, d), nn.Linear(dim_ab, d)
        self.bank_l, self.bank_ab = MemoryBank(self.train_size, d), MemoryBank(self.train_size, d)
        self._pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def views(self, base: Any) -> list[Any]:
        if self.cfg.color_augment:
            return [base]
        return [dataclasses.replace(base, jitter_p=0.0, grayscale_p=0.0)]

    def sample_negatives(self, n: int) -> torch.Tensor:
        """n x K bank indices, from a generator seeded by the global RNG (deterministic per step, resumable)."""
        seed = int(torch.randint(0, 2**62, (1,)))
        return self.bank_l.sample(n, self.cfg.num_negatives, generator=torch.Generator().manual_seed(seed))

    def embeddings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_1, z_2: the unit B x proj_dim embeddings of the L and ab views."""
        h_l, h_ab = self.encoder.features(x)
        return F.normalize(self.head_l(h_l), dim=1), F.normalize(self.head_ab(h_ab), dim=1)

    def training_step(self, batch: Batch) -> StepOutput:
        x, idx = batch.views[0], batch.index
        z_l, z_ab = self.embeddings(x)
        neg = self.sample_negatives(x.shape[0])  # N x K, one draw for both directions
        t = self.cfg.temperature
        # L -> ab: each L anchor against the ab bank (positive: its own entry); ab -> L against the L bank.
        # Anchors and bank entries are unit vectors: no normalisation inside the loss.
        l_to_ab = info_nce(z_l, self.bank_ab.get(idx), self.bank_ab.memory, temperature=t, in_batch=False,
                           normalize=False, negative_index=neg)
        ab_to_l = info_nce(z_ab, self.bank_l.get(idx), self.bank_l.memory, temperature=t, in_batch=False,
                           normalize=False, negative_index=neg)
        self._pending = (idx, z_l.detach(), z_ab.detach())
        return StepOutput(loss=l_to_ab + ab_to_l)

    def after_step(self, step: int, total: int) -> None:
        if self._pending is not None:
            idx, z_l, z_ab = self._pending
            self.bank_l.update(idx, z_l, momentum=self.cfg.bank_momentum)
            self.bank_ab.update(idx, z_ab, momentum=self.cfg.bank_momentum)
            self._pending = None

    def num_negatives(self, batch_size: int) -> int:
        return self.cfg.num_negatives

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """Two N x d banks; the N x K int64 indices; per direction the N x (1 + K) logits (two directions before
        backward: ``info_nce_logit_bytes(calls=2)``); at the peak one N x M score matrix against the whole bank
        and its gradient (M the bank size: transient, one direction at a time)."""
        n, k, d, m = batch_size, self.cfg.num_negatives, self.cfg.proj_dim, self.train_size
        return 2 * bank_bytes(m, d) + n * k * 8 + info_nce_logit_bytes(n, k, calls=2) + 2 * n * m * 4
