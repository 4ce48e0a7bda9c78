"""Encoders by name: ``build_encoder(cfg, data) -> (module, feature_dim)``.

Factories are registered per modality with :func:`sslbench.plugins.register_encoder`
(built-ins in ``image.py`` and ``graph.py`` here; third parties through the
``sslbench.encoders`` entry point or a plugin folder). A factory ``make(data: DataInfo,
options: dict)`` returns a module with a ``num_features`` attribute: the size of the
frozen representation. A name the registry does not hold may still be resolved by the
data's modality (``Modality.fallback_encoder``: for images, any timm model name).
"""

from __future__ import annotations

from torch import nn

from ...config import EncoderConfig
from ...data.base import DataInfo
from ...errors import UnknownNameError
from ...plugins import ENCODERS, get_modality
from ...registry import unknown_message


def encoders_for(modality: str) -> list[str]:
    """Names of the registered encoders that take ``modality`` data."""
    takes = get_modality(modality).takes_encoder
    return [n for n in ENCODERS.names() if takes(ENCODERS.get(n))]


def build_encoder(cfg: EncoderConfig, data: DataInfo) -> tuple[nn.Module, int]:
    """Build the encoder named in ``cfg`` for ``data``; one line naming the valid encoders otherwise."""
    modality = get_modality(data.modality)
    if cfg.name in ENCODERS:
        make = ENCODERS.get(cfg.name)
        if not modality.takes_encoder(make):
            raise UnknownNameError(f"Encoder '{cfg.name}' does not take {data.modality} data ({data.name}). "
                                   f"Valid: {', '.join(encoders_for(data.modality))}")
    else:
        make = modality.fallback_encoder(cfg.name)
        if make is None:
            raise UnknownNameError(unknown_message("encoder", cfg.name, encoders_for(data.modality))
                                   + modality.fallback_encoder_hint)
    model = make(data, dict(cfg.options))
    return model, int(model.num_features)


__all__ = ["build_encoder", "encoders_for"]
