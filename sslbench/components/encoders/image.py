"""Image encoders: timm models (no classifier), ResNets with the CIFAR stem, and a CPU-sized CNN.

Each maps a batch B x C x H x W to B x num_features pooled features. Any timm model name
that is not registered here is built by :func:`timm_encoder` (the image modality's fallback).
"""

from __future__ import annotations

from collections.abc import Callable

import timm
import torch
from torch import nn

from ...data.base import DataInfo
from ...plugins import register_encoder


class SmallCNN(nn.Module):
    """A CPU-sized CNN for tiny images: (conv3x3 -> BN -> ReLU) per width, stride 2 after the first, global average pool.

    B x C x H x W -> B x widths[-1].
    """

    def __init__(self, in_chans: int, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_chans
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def timm_encoder(name: str) -> Callable[[DataInfo, dict], nn.Module]:
    """A factory for the timm model ``name`` at random init, without classifier, with the data's channels."""

    def make(data: DataInfo, options: dict) -> nn.Module:
        return timm.create_model(name, pretrained=False, num_classes=0, in_chans=data.channels, **options)

    make.modality = "image"
    return make


def _cifar_stem(name: str) -> Callable[[DataInfo, dict], nn.Module]:
    """A timm ResNet with the CIFAR stem of SimCLR App. B.9: conv 3x3 stride 1, no max-pool."""

    def make(data: DataInfo, options: dict) -> nn.Module:
        model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=data.channels, **options)
        out = model.conv1.out_channels
        model.conv1 = nn.Conv2d(data.channels, out, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
        return model

    return make


@register_encoder("cnn-small", modality="image")
def small_cnn(data: DataInfo, options: dict) -> nn.Module:
    """A CPU-sized 3-4 layer CNN (options: widths), for 8-32 px images."""
    widths = tuple(options.get("widths", (32, 64, 128, 256)))
    return SmallCNN(data.channels, widths)


for _name in ("resnet18", "resnet50"):
    register_encoder(_name, modality="image", description=f"timm {_name}, ImageNet stem")(timm_encoder(_name))
    register_encoder(f"{_name}-cifar", modality="image",
                     description=f"timm {_name} with the CIFAR stem (3x3 conv, no max-pool)")(_cifar_stem(_name))


__all__ = ["SmallCNN", "timm_encoder", "small_cnn"]
