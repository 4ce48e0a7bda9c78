"""Text: sentences (str) or sentence pairs ((str, str), e.g. RTE, MNLI, QNLI) held as lists in memory.

- Splits: ``Split.samples`` is a list of str, or of (str, str) tuples for pair tasks; labels int64 N.
- Pretraining: batches of sample indices drawn from ``(seed, epoch)`` (:class:`IndexedBatchSource`);
  each view is the batch's raw texts (:class:`~sslbench.views.text.Texts`, carrying the view's
  ``max_length``). The encoder tokenises with its own tokenizer, so padding is dynamic per batch,
  attention masks stay inside the encoder call and pairs are encoded as the model expects
  (``text``/``text_pair``). SimCSE's views are the same sentence twice (dropout makes them differ).
- Evaluation: the texts batched by length (each batch pads to about its own longest; features come back in
  the split's order), truncated at the encoder's ``max_length``.
- Fine-tuning: the evaluation inputs (text augmentation is not built: ``augment: true`` is refused).
- No raw-feature floor (``baseline.pixels``) and no traced memory floor: text has no fixed input shape.
- Throughput in sentences/s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..data.base import DataInfo, Split
from ..errors import ConfigError
from ..method import Batch
from ..plugins import register_modality
from ..views.text import Texts, TextViewConfig, check_text_views
from .base import IndexedBatchSource, Modality, subset_targets


class TextBatchSource(IndexedBatchSource):
    """Batches of raw texts: ``Batch(views=[Texts, Texts, ...], index, labels)``, one view per recipe."""

    def __init__(self, split: Split, method: Any, views_cfg: Any, cfg: Any, seed: int, device: torch.device):
        super().__init__(len(split), cfg.batch_size, seed, device)
        self.samples, self.labels = split.samples, split.labels
        self.recipes = method.views(views_cfg if views_cfg is not None else TextViewConfig())
        self.needs_labels = method.needs_labels

    def make_batch(self, idx: torch.Tensor) -> Batch:
        texts = [self.samples[i] for i in idx.tolist()]
        views = [Texts(texts, max_length=r.max_length) for r in self.recipes]
        labels = self.labels[idx].to(self.device) if self.needs_labels else None
        return Batch(views=views, index=idx.to(self.device), labels=labels)


@register_modality("text")
class TextModality(Modality):
    unit = "sentences"
    check_suite = "sst2-simcse"  # the smallest real-data suite: smoke runs, benchmarks/gpu_check.py
    view_config = TextViewConfig
    supports_finetune = True

    def sample_shape(self, data: DataInfo) -> tuple[int, ...]:
        raise ConfigError("text has no fixed input shape: the traced memory floor is not available for text")

    def probe_batch(self, data: DataInfo, batch: int, view: Any, generator: torch.Generator) -> Texts:
        """``batch`` sentences that tokenise to exactly the view's ``max_length`` tokens (truncated there): the
        longest a training batch can be padded to, so activations traced on it bound a real batch's from above."""
        limit = int(getattr(view, "max_length", None) or TextViewConfig().max_length)
        words = torch.randint(0, 26, (batch, limit), generator=generator).tolist()
        return Texts((" ".join(chr(97 + w) * 3 for w in row) for row in words), max_length=limit)

    def raw_features(self, x: Any) -> torch.Tensor:
        raise ConfigError("The text modality has no raw-feature floor (baseline.pixels): use baseline.random")

    def raw_feature_dim(self, data: DataInfo) -> int:
        raise ConfigError("The text modality has no raw-feature floor (baseline.pixels): use baseline.random")

    fallback_encoder_hint = " (or a local model folder, or a hub name such as org/model)"

    def fallback_encoder(self, name: str) -> Callable[[DataInfo, dict], torch.nn.Module] | None:
        """A local folder (or a path-like name: ./x, /x, ~/x) or a hub name ``org/model`` as a transformer."""
        path_like = name.startswith((".", "/", "~")) or Path(name).expanduser().exists()
        if not (path_like or name.count("/") == 1):
            return None
        from ..components.encoders.text import transformer

        return lambda data, options: transformer(data, {"model": name, **options})

    def check_views(self, views_cfg: Any, recipes: list[Any], split: Split) -> None:
        check_text_views(recipes)

    def batch_source(self, split: Split, data: DataInfo, method: Any, views_cfg: Any, cfg: Any, seed: int,
                     device: torch.device) -> TextBatchSource:
        return TextBatchSource(split, method, views_cfg, cfg, seed, device)

    def subset(self, split: Split, idx: torch.Tensor) -> Split:
        return Split(labels=split.labels[idx], samples=[split.samples[i] for i in idx.tolist()], extra=split.extra,
                     targets=subset_targets(split, idx))

    def eval_order(self, split: Split) -> torch.Tensor:
        """Length-bucketed evaluation: the sentences sorted by length (characters, a pair's two sides together), so
        that each batch pads to little more than its own longest. Each sentence's embedding does not depend on
        its batch companions (attention masks, masked pooling), so this changes nothing but the time (up to float
        rounding); training batches are never bucketed, since there the batch composition is the negatives."""
        lengths = [len(s) if isinstance(s, str) else sum(len(t) for t in s) for s in split.samples]
        return torch.tensor(sorted(range(len(lengths)), key=lengths.__getitem__), dtype=torch.long)

    def eval_inputs(self, split: Split, data: DataInfo, device: torch.device, batch_size: int,
                    indices: torch.Tensor | None = None) -> Iterator[Texts]:
        """Batches of the split's texts (or of ``indices``) in order; the encoder tokenises on its device."""
        idx = range(len(split)) if indices is None else torch.as_tensor(indices).long().tolist()
        idx = list(idx)
        for i in range(0, len(idx), batch_size):
            yield Texts(split.samples[j] for j in idx[i:i + batch_size])


__all__ = ["TextModality", "TextBatchSource"]
