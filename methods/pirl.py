"""Pretext-Invariant Representation Learning, jigsaw (Misra, van der Maaten 2019, arXiv 1912.01991, Sec. 3, Eq. 1-5).

Two views per image (B x C x S x S each, normalised): v_I, the suite's recipe, and the jigsaw source, a random
resized crop covering ``jigsaw_crop_scale`` (0.6-1 of the image, App. A / VISSL's ``ImgPilToPatchesAndImage``) at
side S_t (``jigsaw_size``, default the image view's). The jigsaw transform cuts S_t into a ``grid`` x ``grid`` grid
of cells of side c = S_t // grid (centred) and takes one random p x p patch per cell, p = round(``patch_frac`` c)
(the paper's 64-px patches of 85-px cells, 64/85 ~ 0.75: 32-px views give 10-px cells and 8-px patches); each patch
gets its own flip, colour jitter and grayscale (the suite's strengths, drawn per patch: VISSL applies its transforms
to every patch), then the P = grid^2 patches of an image are put in a random order (one permutation per image).

Networks (the encoder f is shared by images and patches, as in the paper): f(v_I) = head(encoder(v_I)), a linear
projection to d = ``proj_dim`` (B x d); g(v_It): every patch through the encoder (BP x D), a linear projection to d
per patch, the P projections concatenated in the permuted order (B x P d) and projected by a linear layer to d
(Sec. 3.2; VISSL's [Linear(D, 128), siamese concat, Linear(9 * 128, 128)]). Both are L2-normalised.

Memory bank (Sec. 3.1): m_I (N x d) is an exponential moving average of f(v_I): after the optimiser step
m_I <- normalize(m m_I + (1 - m) f(v_I)), momentum m = 0.5. Loss (Eq. 5)::

    L = lam * L_NCE(m_I, g(v_It)) + (1 - lam) * L_NCE(m_I, f(v_I)),   lam = 0.5

each term here the softmax InfoNCE of the anchor (g(v_It), f(v_I)) against the positive m_I and K negatives m_I'
drawn uniformly from the bank (one draw per anchor for both terms), temperature t = 0.07, through the shared
``info_nce`` (``negative_index``: the scores against the whole bank, the K columns picked; equal to gathering
N x K x D negatives, without them).

Frozen features (``embed``): the encoder's output on the whole image (the paper's res5 features), B x D.
Negatives: ``method.num_negatives`` (what ``profile`` sweeps), K per anchor.

Differences from the paper and VISSL at this scale:
- softmax InfoNCE instead of the paper's NCE (Eq. 3-4: h = exp(s/t) / (exp(s/t) + N/|D|), binary
  classification of the positive against each negative): the form CMC's and MoCo's code use and the brief
  asks for; the paper reports both work (its Sec. 3 cites the NCE of InstDisc), only the NCE is in VISSL;
- views of S px and p = round(0.75 S / 3) px patches instead of 224-px images and 64-px patches of a 255-px
  crop; ``jigsaw_size`` upsamples small images (digits: 8 px would give 2-px patches);
- a patch's flip, jitter and grayscale come from the suite's view recipe (VISSL: jitter 0.4, grayscale 0.2,
  its photometric transform), and the whole jigsaw crop is not jittered or flipped;
- negatives with replacement, the positive's own index may be drawn; K defaults to the paper's 32000, the
  bank size is the (pretraining) training split's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

from sslbench.components.losses import info_nce, info_nce_logit_bytes
from sslbench.components.memory import MemoryBank, bank_bytes
from sslbench.errors import ConfigError
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.validation import check, optional, probability, scale_pair


def jigsaw_layout(size: int, grid: int, patch_frac: float) -> tuple[int, int, int]:
    """(cell side c, patch side p, margin) of a ``grid`` x ``grid`` jigsaw on a size x size view; the grid is
    centred, ``margin`` pixels from the top-left edge."""
    cell = size // grid
    patch = max(1, min(cell, round(patch_frac * cell)))
    return cell, patch, (size - grid * cell) // 2


def patch_corners(n: int, size: int, grid: int, patch_frac: float, device: torch.device | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """int64 n x P x 2: the (row, column) top-left corner of each image's random p x p patch in each of the
    P = grid^2 cells, cells in raster order (row-major), uniform within its cell."""
    cell, patch, margin = jigsaw_layout(size, grid, patch_frac)
    starts = margin + cell * torch.arange(grid)
    cells = torch.stack([starts.repeat_interleave(grid), starts.repeat(grid)], dim=-1)  # P x 2, raster order
    jitter = torch.randint(0, cell - patch + 1, (n, grid * grid, 2), generator=generator)
    return (cells + jitter).to(device)


def cut_patches(x: torch.Tensor, corners: torch.Tensor, patch: int) -> torch.Tensor:
    """Patches of side ``patch`` at ``corners`` (B x P x 2) of a batch x (B x C x S x S) -> B x P x C x p x p."""
    ar = torch.arange(patch, device=x.device)
    rows = corners[..., 0, None] + ar  # B x P x p
    cols = corners[..., 1, None] + ar
    b = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    out = x[b, :, rows[..., :, None], cols[..., None, :]]  # B x P x p x p x C (the sliced dim goes last)
    return out.permute(0, 1, 4, 2, 3)


@register_method("pirl")
class PIRL(Method):
    modality = "image"
    version = 1
    negatives_key = "method.num_negatives"

    @dataclass
    class Config(Method.Config):
        num_negatives: int = 32000  # K bank entries per anchor (the paper's 32,000)
        temperature: float = 0.07
        bank_momentum: float = field(default=0.5, metadata=check(probability, "a momentum in [0, 1]"))
        lam: float = field(default=0.5, metadata=check(probability, "a weight in [0, 1]"))  # Eq. 5's lambda
        proj_dim: int = 128
        grid: int = field(default=3, metadata=check(lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"))
        patch_frac: float = field(default=0.75, metadata=check(lambda v: isinstance(v, (int, float)) and 0 < v <= 1,
                                                                 "a fraction in (0, 1]"))  # patch side / cell side
        jigsaw_size: int | None = field(default=None, metadata=check(optional(lambda v: isinstance(v, int) and v >= 1),
                                                                     "1 or more, or null (the image view's size)"))
        jigsaw_crop_scale: tuple[float, float] = field(default=(0.6, 1.0), metadata=check(scale_pair))
        patch_augment: bool = True  # flip, colour jitter and grayscale per patch, from the suite's view recipe

    def setup(self) -> None:
        d = self.cfg.proj_dim
        self.head = nn.Linear(self.feature_dim, d)  # f(v_I)
        self.patch_head = nn.Linear(self.feature_dim, d)  # per patch, before the concatenation
        self.jigsaw_head = nn.Linear(self.cfg.grid ** 2 * d, d)  # g's projection of the concatenated patches
        self.bank = MemoryBank(self.train_size, d)
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        self._patch_aug: list[nn.Module] = []  # kornia augmentations (no state), built in views(); not a submodule

    def views(self, base: Any) -> list[Any]:
        size = self.cfg.jigsaw_size or base.size or self.data.image_size
        if size // self.cfg.grid < 1:
            raise ConfigError(f"Bad value for 'method.jigsaw_size': a {size}-px jigsaw view cannot be cut into "
                              f"{self.cfg.grid} x {self.cfg.grid} patches; valid: {self.cfg.grid} or more")
        jigsaw = dataclasses.replace(base, size=size, crop_scale=tuple(self.cfg.jigsaw_crop_scale), flip_p=0.0,
                                     jitter_p=0.0, grayscale_p=0.0)
        self._patch_aug = [self._patch_augmentation(base)] if self.cfg.patch_augment else []
        return [base, jigsaw]

    def _patch_augmentation(self, recipe: Any) -> nn.Module:
        """Per-patch flip, colour jitter and grayscale of the suite's strengths, on patches in [0, 1]."""
        s, color = recipe.jitter_strength, self.data.channels == 3
        augs: list[nn.Module] = [K.RandomHorizontalFlip(p=recipe.flip_p)]
        if recipe.jitter_p > 0 and s > 0:
            augs.append(K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s if color else 0.0, 0.2 * s if color else 0.0,
                                      p=recipe.jitter_p))
        if recipe.grayscale_p > 0 and color:
            augs.append(K.RandomGrayscale(p=recipe.grayscale_p))
        return K.AugmentationSequential(*augs)

    def jigsaw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The jigsaw transform of a batch x (B x C x S x S, normalised) -> (patches B x P x C x p x p in each
        image's random order, corners B x P x 2 of the cells' patches in raster order, perm B x P): patch j of
        image b is the one cut at ``corners[b, perm[b, j]]``."""
        b, c, size = x.shape[0], x.shape[1], x.shape[-1]
        _, patch, _ = jigsaw_layout(size, self.cfg.grid, self.cfg.patch_frac)
        corners = patch_corners(b, size, self.cfg.grid, self.cfg.patch_frac, device=x.device)
        patches = cut_patches(x, corners, patch)  # B x P x C x p x p
        if self._patch_aug and self.training:
            mean = torch.tensor(self.data.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            std = torch.tensor(self.data.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            flat = (patches.reshape(-1, c, patch, patch) * std + mean).clamp(0, 1)
            patches = ((self._patch_aug[0](flat) - mean) / std).view_as(patches)
        perm = torch.rand(b, patches.shape[1], device=x.device).argsort(dim=1)
        patches = patches[torch.arange(b, device=x.device)[:, None], perm]
        return patches, corners, perm

    def jigsaw_embed(self, patches: torch.Tensor) -> torch.Tensor:
        """g before normalisation: patches B x P x C x p x p (in the order given) -> B x d."""
        b, p = patches.shape[:2]
        h = self.modality_plugin.encode(self.encoder, self.modality_plugin.to_model(patches.flatten(0, 1)))
        u = self.patch_head(h).reshape(b, p * self.cfg.proj_dim)  # the P projections concatenated in order
        return self.jigsaw_head(u)

    def sample_negatives(self, n: int) -> torch.Tensor:
        """n x K bank indices, from a generator seeded by the global RNG (deterministic per step, resumable)."""
        seed = int(torch.randint(0, 2**62, (1,)))
        return self.bank.sample(n, self.cfg.num_negatives, generator=torch.Generator().manual_seed(seed))

    def training_step(self, batch: Batch) -> StepOutput:
        x_img, x_jig = batch.views
        idx = batch.index
        f = F.normalize(self.head(self.encoder(x_img)), dim=1)  # f(v_I): B x d
        g = F.normalize(self.jigsaw_embed(self.jigsaw(x_jig)[0]), dim=1)  # g(v_It): B x d
        pos = self.bank.get(idx)  # m_I
        neg = self.sample_negatives(f.shape[0])  # N x K, the same m_I' for both terms
        t, lam = self.cfg.temperature, self.cfg.lam
        # every anchor and bank entry is a unit vector: no normalisation inside the loss
        loss_t = info_nce(g, pos, self.bank.memory, temperature=t, in_batch=False, normalize=False,
                          negative_index=neg)
        loss_i = info_nce(f, pos, self.bank.memory, temperature=t, in_batch=False, normalize=False,
                          negative_index=neg)
        self._pending = (idx, f.detach())
        return StepOutput(loss=lam * loss_t + (1 - lam) * loss_i)

    def after_step(self, step: int, total: int) -> None:
        if self._pending is not None:
            idx, f = self._pending
            self.bank.update(idx, f, momentum=self.cfg.bank_momentum)  # m_I: the EMA of f(v_I)
            self._pending = None

    def num_negatives(self, batch_size: int) -> int:
        return self.cfg.num_negatives

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """The N x d bank; the N x K int64 indices; two terms' N x (1 + K) logits before backward
        (``info_nce_logit_bytes(calls=2)``); at the peak one N x M score matrix against the whole bank and its
        gradient (M the bank size, transient)."""
        n, k, d, m = batch_size, self.cfg.num_negatives, self.cfg.proj_dim, self.train_size
        return bank_bytes(m, d) + n * k * 8 + info_nce_logit_bytes(n, k, calls=2) + 2 * n * m * 4
