"""SimCLR image views (Chen et al. 2020, arXiv 2002.05709, App. A), two interchangeable backends.

- ``batched``: kornia.augmentation on a B x C x H x W float batch on the training device.
  kornia draws crop, flip, jitter, grayscale and blur parameters per sample
  (``same_on_batch=False``), unlike torchvision v2 applied to a batched tensor,
  which would share one set of parameters across the batch.
- ``per_sample``: torchvision v2 transforms on one uint8 C x H x W image, in DataLoader
  workers; needed for on-disk trees whose images differ in size (ImageNet).

Both end with per-channel normalisation with the data set's mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.augmentation as K
import torch
from torch import nn
from torchvision.transforms import v2

from ..data.base import DataInfo
from ..errors import ConfigError

BACKENDS = ("auto", "batched", "per_sample")


@dataclass
class ImageViewConfig:
    """SimCLR-style image views (Chen et al. 2020, App. A), sized per data set."""

    size: int | None = None  # output side; None: the data set's native size
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_strength: float = 1.0  # s in ColorJitter(0.8s, 0.8s, 0.8s, 0.2s)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.0  # the paper blurs ImageNet-size images with p=0.5, not CIFAR
    blur_kernel_frac: float = 0.1  # kernel = 10% of the image side
    solarize_p: float = 0.0
    backend: str = "auto"  # auto | batched (kornia, on the device) | per_sample (torchvision v2 in workers)


def _size(cfg: ImageViewConfig, data: DataInfo) -> int:
    return int(cfg.size or data.image_size)


def _blur_kernel(cfg: ImageViewConfig, size: int) -> int:
    k = max(3, int(round(cfg.blur_kernel_frac * size)))
    return k if k % 2 == 1 else k + 1


def resolve_backend(cfg: ImageViewConfig, in_memory: bool) -> str:
    """``auto`` picks batched augmentation on the device for in-memory splits, else per-sample workers."""
    if cfg.backend not in BACKENDS:
        raise ConfigError(f"Bad value for 'views.backend': {cfg.backend!r}. Valid: {', '.join(BACKENDS)}")
    if cfg.backend == "auto":
        return "batched" if in_memory else "per_sample"
    if cfg.backend == "batched" and not in_memory:
        raise ConfigError("views.backend=batched needs an in-memory data set; use per_sample for on-disk trees")
    return cfg.backend


class BatchedImageViews(nn.Module):
    """One view recipe on a batch: B x C x H x W float in [0, 1] -> B x C x S x S normalised."""

    def __init__(self, cfg: ImageViewConfig, data: DataInfo):
        super().__init__()
        size = _size(cfg, data)
        s = cfg.jitter_strength
        augs: list[nn.Module] = [K.RandomResizedCrop((size, size), scale=tuple(cfg.crop_scale),
                                                     ratio=tuple(cfg.crop_ratio))]
        if cfg.flip_p > 0:
            augs.append(K.RandomHorizontalFlip(p=cfg.flip_p))
        if cfg.jitter_p > 0 and s > 0:
            color = data.channels == 3
            augs.append(K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s if color else 0.0, 0.2 * s if color else 0.0,
                                      p=cfg.jitter_p))
        if cfg.grayscale_p > 0 and data.channels == 3:
            augs.append(K.RandomGrayscale(p=cfg.grayscale_p))
        if cfg.blur_p > 0:
            k = _blur_kernel(cfg, size)
            augs.append(K.RandomGaussianBlur((k, k), (0.1, 2.0), p=cfg.blur_p))
        if cfg.solarize_p > 0:
            augs.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=cfg.solarize_p))
        self.augment = K.AugmentationSequential(*augs)
        self.normalize = K.Normalize(torch.tensor(data.mean), torch.tensor(data.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.augment(x))


def per_sample_views(cfg: ImageViewConfig, data: DataInfo) -> v2.Compose:
    """One view recipe for one image: uint8 C x H x W -> float C x S x S normalised (torchvision v2)."""
    size = _size(cfg, data)
    s = cfg.jitter_strength
    color = data.channels == 3
    tfs: list[nn.Module] = [v2.RandomResizedCrop(size, scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio),
                                                 antialias=True)]
    if cfg.flip_p > 0:
        tfs.append(v2.RandomHorizontalFlip(p=cfg.flip_p))
    if cfg.jitter_p > 0 and s > 0:
        jitter = v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s if color else 0.0, 0.2 * s if color else 0.0)
        tfs.append(v2.RandomApply([jitter], p=cfg.jitter_p))
    if cfg.grayscale_p > 0 and color:
        tfs.append(v2.RandomGrayscale(p=cfg.grayscale_p))
    if cfg.blur_p > 0:
        tfs.append(v2.RandomApply([v2.GaussianBlur(_blur_kernel(cfg, size), sigma=(0.1, 2.0))], p=cfg.blur_p))
    if cfg.solarize_p > 0:
        tfs.append(v2.RandomSolarize(threshold=128, p=cfg.solarize_p))
    tfs += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(data.mean), list(data.std))]
    return v2.Compose(tfs)


def eval_transform(data: DataInfo, size: int | None = None) -> v2.Compose:
    """Deterministic evaluation view of one image read per item (a ``Split.dataset``, whose images may differ in
    size): resize (shorter side to size*8/7 from 64 pixels up, else to size), centre crop to size x size,
    normalise. Every output has one size, so any such split batches, whatever the data set is called.

    In-memory splits (uint8 N x C x H x W arrays, one size) are evaluated at native size by :func:`eval_batch`.
    Below 64 pixels an image that already is size x size passes the resize and crop unchanged.
    """
    size = int(size or data.image_size)
    tfs: list[nn.Module] = [v2.Resize(int(round(size * 8 / 7)) if size >= 64 else size, antialias=True),
                            v2.CenterCrop(size)]
    tfs += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(data.mean), list(data.std))]
    return v2.Compose(tfs)


def eval_batch(x: torch.Tensor, data: DataInfo) -> torch.Tensor:
    """Evaluation view of an in-memory uint8 batch at native size: B x C x H x W -> normalised float."""
    mean = torch.tensor(data.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - mean) / std


class MultiViewTransform:
    """Per-sample transform producing V views of one image (for DataLoader workers)."""

    def __init__(self, recipes: list[v2.Compose]):
        self.recipes = recipes

    def __call__(self, img: torch.Tensor) -> list[torch.Tensor]:
        return [r(img) for r in self.recipes]
