"""Floors for the tables: no self-supervised pretraining at all.

- ``baseline.random``: the suite's encoder at its random initialisation (seeded by the
  run seed), also when the encoder comes pretrained (MiniLM is re-initialised); the frozen
  features are the encoder's output.
- ``baseline.frozen``: the suite's encoder as built, pretrained weights included, frozen: the row
  "what the encoder already knew" of every table whose encoder comes pretrained (text).
- ``baseline.pixels``: the inputs themselves as features (``Modality.raw_features``): for images the
  pixels, flattened (the evaluation view: scaled to [0, 1] and normalised with the data set's mean and
  std), C*H*W features; for a graph the raw node features X (N x F, row-normalised as loaded); the
  encoder is unused.

Both serve every modality: on a graph suite ``baseline.random`` is the suite's GCN at its
random initialisation, the floor DGI's paper also reports ("Random-Init", Table 2). The
method keeps its registered name ``baseline`` (records and baselines carry it); the file is
named for what it holds: floors.

These methods have nothing to train. Run them with zero pretraining epochs::

    sslbench run baseline.random --suite mnist-fewshot --set pretrain.epochs=0
    sslbench run baseline.pixels --suite mnist-noisy --set pretrain.epochs=0

(the engine then takes 0 steps; the base ``Method`` has no ``trains`` flag the runner
could read). A run that forgets ``pretrain.epochs=0`` is harmless but wasteful:
``training_step`` warns once and returns a zero loss that requires grad but is
connected to no parameter, so the optimiser leaves every weight (and BN statistic)
as initialised.

Under the ``finetune`` protocol ``baseline.random`` fine-tunes its encoder from the
random initialisation (supervised training from scratch) and ``baseline.pixels``
trains a linear classifier on the pixels (``finetune_features``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslbench.method import Method, NothingToPretrain
from sslbench.plugins import register_method


@register_method("baseline", variants={"random": dict(), "pixels": dict(pixels=True), "frozen": dict(pretrained=True)})
class Floor(NothingToPretrain):
    modality = "any"
    version = 1

    @dataclass
    class Config(Method.Config):
        pixels: bool = False  # features = flattened pixels instead of the (random) encoder's output
        pretrained: bool = False  # keep a pretrained encoder's weights (baseline.frozen) instead of re-initialising

    def setup(self) -> None:
        if getattr(self.encoder, "pretrained", False) and not self.cfg.pretrained:
            self.encoder.reinitialize()  # the floor is the architecture at random init
        if self.cfg.pixels:
            self.feature_dim = self.modality_plugin.raw_feature_dim(self.data)

    @torch.no_grad()
    def embed(self, x) -> torch.Tensor:
        return self.finetune_features(x)

    @torch.no_grad()
    def embed_frames(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-level features: the raw inputs' (audio: MFCCs every 10 ms), or the encoder's."""
        return self.modality_plugin.raw_frame_features(x) if self.cfg.pixels else super().embed_frames(x)

    def finetune_features(self, x) -> torch.Tensor:
        """The feature map the ``finetune`` protocol trains: the raw inputs, or the encoder."""
        return self.modality_plugin.raw_features(x) if self.cfg.pixels else self.modality_plugin.encode(self.encoder, x)
