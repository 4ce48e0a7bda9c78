"""The Method base class: a plugin declares its views, heads, loss and extra state.

Everything shared (encoder construction, optimiser, schedule, AMP, checkpoints,
meters) lives in :mod:`sslbench.engine`; everything that depends on the kind of data
lives in its :class:`~sslbench.modalities.base.Modality`. A method declares the
modality it serves, sees batches of already augmented views and returns a
:class:`StepOutput`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # a type only: the data layer sits above this one
    from .data.base import DataInfo


@dataclass
class Batch:
    """One training batch.

    views:  list of V views, in the modality's input type (a B x C x H x W tensor, a torch_geometric ``Data``
            of the whole graph, ...), already on the device
    index:  int64 B, the samples' positions in the training split (memory banks); a whole graph: arange(N)
    labels: int64 B, only for methods with ``needs_labels``
    groups: int64 B, the samples' values of the target the method's ``group_by`` names (speaker ids, for
            negatives drawn within a speaker), filled by batch sources that support it; else None
    """

    views: list[Any]
    index: torch.Tensor
    labels: torch.Tensor | None = None
    groups: torch.Tensor | None = None


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar
    logs: dict[str, float] = field(default_factory=dict)


class Method(nn.Module):
    """Base class of every method plugin (see ``methods/simclr.py``)."""

    name: ClassVar[str] = ""
    variant: str | None = None
    modality: ClassVar[str] = ""  # a registered modality's name, or "any" (the floors); required
    version: ClassVar[int] = 1  # bump when behaviour changes; recorded in every result
    needs_labels: ClassVar[bool] = False
    group_by: str | None = None  # a target of the data (``DataInfo.targets``) the batches should carry as ``groups``
    variants: ClassVar[dict[str, dict[str, Any]]] = {}
    # the config key that `sslbench profile --negatives` sweeps (batch size, queue size, sampled negatives)
    negatives_key: ClassVar[str] = "pretrain.batch_size"

    @dataclass
    class Config:
        pass

    def __init__(self, cfg: Any, encoder: nn.Module, feature_dim: int, data: DataInfo, train_size: int,
                 encoder_factory: Callable[[DataInfo], tuple[nn.Module, int]] | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.data = data
        self.train_size = train_size
        self._encoder_factory = encoder_factory  # the suite's encoder for other data (build_encoder below)
        from .plugins import get_modality

        self.modality_plugin = get_modality(data.modality)  # how this data's inputs reach an encoder
        self.setup()

    def setup(self) -> None:
        """Build heads and extra state (queues, banks, key encoders)."""

    def build_encoder(self, data: DataInfo) -> tuple[nn.Module, int]:
        """Another encoder of the suite's architecture (its ``encoder:`` name and options) for ``data``, e.g.
        ``dataclasses.replace(self.data, channels=1)``: (module, feature_dim), weights drawn from torch's global
        generator. For methods with an encoder per view (CMC: L and ab channels)."""
        if self._encoder_factory is None:
            from .errors import ConfigError

            raise ConfigError(f"{self.name or type(self).__name__} builds encoders of its own: construct it with "
                              "encoder_factory= (sslbench.build.build_method does)")
        return self._encoder_factory(data)

    def views(self, base: Any) -> list[Any]:
        """View recipes for one sample, derived from the suite's base recipe: two alike by default."""
        return [base, base]

    def training_step(self, batch: Batch) -> StepOutput:
        raise NotImplementedError

    def after_step(self, step: int, total: int) -> None:
        """Called after each optimiser step with the number of steps done (1-based) and the run's total:
        momentum updates, enqueueing, schedules of the method's own (an EMA rate, a temperature)."""

    @torch.no_grad()
    def embed(self, x: Any) -> torch.Tensor:
        """Frozen features for every protocol (encoder output, no head): a batch of inputs -> B x feature_dim
        (a whole graph: N x feature_dim, one row per node)."""
        return self.modality_plugin.encode(self.encoder, x)

    def embed_frames(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-level frozen features for the ``frame_linear`` protocol: a batch -> (B x T' x D, int64 B valid
        frames per sample), the encoder's (``Modality.encode_frames``)."""
        return self.modality_plugin.encode_frames(self.encoder, x)

    # -- fine-tuning (the ``finetune`` protocol, and few-shot / noisy-label with ``head: finetune``)

    def finetune_features(self, x: Any) -> torch.Tensor:
        """The trainable feature map fine-tuning trains under a linear head: the encoder by default."""
        return self.modality_plugin.encode(self.encoder, x)

    def finetune_loss(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The supervised loss of fine-tuning: cross-entropy by default (SCL adds its contrastive term)."""
        return F.cross_entropy(logits, labels)

    def num_negatives(self, batch_size: int) -> int:
        """Negatives per anchor in one step at ``batch_size``: what ``profile`` sweeps."""
        return 0

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """Analytic floor of the memory the negatives need at ``batch_size``: stored keys (queue or bank)
        plus the logits over them and their gradients. Compared with measured memory by ``profile``."""
        return 0

    def parameter_groups(self) -> list[dict]:
        """Optimiser parameter groups; by default every trainable parameter in one group. A group with
        ``"fix_lr": True`` stays at its base lr (no warm-up, no schedule: SimSiam's predictor)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]


class NothingToPretrain(Method):
    """Base of methods with nothing to pretrain (the floors, fine-tuning objectives such as SCL): run them with
    ``--set pretrain.epochs=0``. A step taken anyway warns once and returns a zero loss that requires grad but
    is connected to no parameter, so the optimiser leaves every weight (and BN statistic) as it is."""

    def training_step(self, batch: Batch) -> StepOutput:
        if not getattr(self, "_warned", False):
            import warnings

            warnings.warn(f"{self.name or type(self).__name__} has nothing to pretrain; run it with --set "
                          "pretrain.epochs=0 (these steps leave the weights unchanged)", stacklevel=2)
            self._warned = True
        return StepOutput(loss=torch.zeros((), device=batch.index.device, requires_grad=True))
