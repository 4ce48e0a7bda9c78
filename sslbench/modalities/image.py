"""Images: uint8 N x C x H x W arrays in memory (digits, MNIST, CIFAR) or on-disk trees (ImageNet-style).

- Pretraining: in-memory splits are augmented in batches on the training device (kornia,
  every sample its own parameters); on-disk trees per sample in DataLoader workers
  (torchvision v2), each sample seeding its own augmentation from ``(seed, epoch, index)``.
  See :mod:`sslbench.views.image` for the recipes (SimCLR, Chen et al. 2020, App. A).
- Device conversions: uint8 -> float in [0, 1] -> normalised; batches and models in
  channels-last layout (about 30% faster convolutions on CPU, what tensor cores want).
- Evaluation: the deterministic evaluation view (normalised; resized and centre-cropped for
  on-disk trees). Fine-tuning: that view, or random crops and flips with ``augment: true``.
- Throughput in images/s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..config import update_dataclass
from ..data.base import DataInfo, Split
from ..method import Batch
from ..plugins import register_modality
from ..seeding import step_seed
from ..views.image import (
    BatchedImageViews,
    ImageViewConfig,
    MultiViewTransform,
    eval_batch,
    eval_transform,
    per_sample_views,
    resolve_backend,
)
from .base import IndexedBatchSource, MappedDataset, Modality, loader_batches, subset_targets

# Fine-tuning views when augment is on: SimCLR fine-tunes with random crops and flips only.
FINETUNE_VIEWS = dict(crop_scale=(0.2, 1.0), flip_p=0.5, jitter_p=0.0, jitter_strength=0.0, grayscale_p=0.0,
                      blur_p=0.0, solarize_p=0.0)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Image batches (B x C x H x W) in channels-last layout; other tensors unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


class _ViewDataset(Dataset):
    """Wraps an on-disk split: item -> (views, index, label); each sample seeds its own augmentation."""

    def __init__(self, base: Dataset, transform: MultiViewTransform, seed: int):
        self.base, self.transform, self.seed, self.epoch = base, transform, seed, 0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        img, label = self.base[i]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(step_seed(self.seed, self.epoch * 10_000_019 + i))
            views = self.transform(img)
        return views, i, label


class _TensorPairs(Dataset):
    """An in-memory split as (uint8 C x H x W, label) items, for the per-sample backend."""

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        return self.split.images[i], int(self.split.labels[i])


class ImageBatchSource(IndexedBatchSource):
    """Batches of augmented views: B x C x S x S float, normalised, channels-last, one tensor per view."""

    def __init__(self, split: Split, data: DataInfo, method: Any, views_cfg: ImageViewConfig, cfg: Any, seed: int,
                 device: torch.device):
        super().__init__(len(split), cfg.batch_size, seed, device)
        self.split, self.num_workers = split, cfg.num_workers
        recipes = method.views(views_cfg)
        self.backend = resolve_backend(views_cfg, split.in_memory)
        self.needs_labels = method.needs_labels
        if self.backend == "batched":
            self.augment = [BatchedImageViews(r, data).to(device) for r in recipes]
            self.images = split.images.to(device) if device.type == "cuda" else split.images
        else:
            base = split.dataset if split.dataset is not None else _TensorPairs(split)
            self.view_ds = _ViewDataset(base, MultiViewTransform([per_sample_views(r, data) for r in recipes]), seed)

    def make_batch(self, idx: torch.Tensor) -> Batch:
        x = self.images[idx.to(self.images.device)].to(self.device, non_blocking=True).float().div_(255)
        return self._batch([aug(x) for aug in self.augment], idx)

    def epoch_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        if self.backend == "batched":
            yield from super().epoch_batches(epoch, start)
            return
        self.view_ds.epoch = epoch
        chunks = self.chunks(epoch, start)
        loader = DataLoader(self.view_ds, batch_sampler=[c.tolist() for c in chunks], num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda")
        for k, (views, idx, _) in enumerate(loader):
            # the method's own randomness (key shuffles, sampled negatives) replays on resume too
            self.seed_step(epoch, start + k)
            yield self._batch([v.to(self.device, non_blocking=True) for v in views], idx)

    def _batch(self, views: list[torch.Tensor], idx: torch.Tensor) -> Batch:
        labels = self.split.labels[idx].to(self.device) if self.needs_labels else None
        return Batch(views=[channels_last(v) for v in views], index=idx.to(self.device), labels=labels)


@register_modality("image")
class ImageModality(Modality):
    unit = "images"
    check_suite = "digits-linear"  # the smallest real-data suite: smoke runs, benchmarks/gpu_check.py
    view_config = ImageViewConfig

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(memory_format=torch.channels_last)

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        return channels_last(x)

    def raw_feature_dim(self, data: DataInfo) -> int:
        return int(data.channels * data.image_size ** 2)

    def sample_shape(self, data: DataInfo) -> tuple[int, ...]:
        return (int(data.channels), int(data.image_size), int(data.image_size))

    fallback_encoder_hint = " (or any timm model name, see timm.list_models())"

    def fallback_encoder(self, name: str) -> Callable[[DataInfo, dict], torch.nn.Module] | None:
        import timm

        from ..components.encoders.image import timm_encoder

        return timm_encoder(name) if timm.is_model(name) else None

    def check_views(self, views_cfg: Any, recipes: list[Any], split: Split) -> None:
        resolve_backend(views_cfg, split.in_memory)

    def batch_source(self, split: Split, data: DataInfo, method: Any, views_cfg: Any, cfg: Any, seed: int,
                     device: torch.device) -> ImageBatchSource:
        return ImageBatchSource(split, data, method, views_cfg, cfg, seed, device)

    def subset(self, split: Split, idx: torch.Tensor) -> Split:
        if split.in_memory:
            return Split(labels=split.labels[idx], images=split.images[idx], targets=subset_targets(split, idx))
        return Split(labels=split.labels[idx], dataset=Subset(split.dataset, idx.tolist()),
                     targets=subset_targets(split, idx))

    def eval_inputs(self, split: Split, data: DataInfo, device: torch.device, batch_size: int,
                    indices: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """Normalised float B x C x H x W: in-memory arrays at their native size; on-disk trees through
        :func:`~sslbench.views.image.eval_transform` (resize, centre crop)."""
        if split.in_memory:
            if indices is None:
                for i in range(0, len(split), batch_size):
                    yield eval_batch(split.images[i:i + batch_size].to(device), data)
            else:
                idx = torch.as_tensor(indices).long()
                for i in range(0, len(idx), batch_size):
                    yield eval_batch(split.images[idx[i:i + batch_size]].to(device), data)
            return
        base = split.dataset if indices is None else Subset(split.dataset, torch.as_tensor(indices).tolist())
        yield from loader_batches(MappedDataset(base, eval_transform(data)), batch_size, device)

    def finetune_inputs(self, split: Split, data: DataInfo, device: torch.device, augment: bool,
                        views: dict) -> Callable[[torch.Tensor], torch.Tensor]:
        """Random crops and flips (``FINETUNE_VIEWS`` with the protocol's ``views`` overrides) when
        ``augment``, else the evaluation view."""
        cfg = ImageViewConfig(**FINETUNE_VIEWS)
        update_dataclass(cfg, dict(views or {}), "finetune.views")
        if not augment:
            return super().finetune_inputs(split, data, device, False, views)
        if split.in_memory:
            aug = BatchedImageViews(cfg, data).to(device)
            return lambda idx: aug(split.images[idx].to(device).float().div(255))
        tf = per_sample_views(cfg, data)
        return lambda idx: torch.stack([tf(split.dataset[int(i)][0]) for i in idx]).to(device)


__all__ = ["ImageModality", "ImageBatchSource", "channels_last", "FINETUNE_VIEWS"]
