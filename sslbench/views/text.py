"""Text views: what a pretraining view of a sentence (or sentence pair) is.

A text view is the raw sentence: the encoder tokenises (its own tokenizer, dynamic padding per
batch). SimCSE's two views are the same sentence twice, made different only by the encoder's
dropout in train mode (Gao et al. 2021), so the default view is the identity. ``max_length``
truncates the training views' token sequences (SimCSE: 32); evaluation inputs are truncated
at the encoder's own ``max_length`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError


@dataclass
class TextViewConfig:
    """The suite's ``views:`` section for text."""

    max_length: int = 64  # tokens kept per training view (SimCSE: 32); evaluation uses the encoder's max_length


class Texts(list):
    """A batch of sentences (str) or sentence pairs ((str, str) tuples): a plain list that may carry the
    token limit of the view it was made for (``max_length``, None: the encoder's own)."""

    def __init__(self, items: Any = (), max_length: int | None = None):
        super().__init__(items)
        self.max_length = max_length


def check_text_views(recipes: list[Any]) -> None:
    """One-line ConfigError for a recipe that is not a valid text view."""
    for r in recipes:
        if not isinstance(r, TextViewConfig):
            raise ConfigError(f"text views must be TextViewConfig (views: {{max_length: N}}), got {type(r).__name__}")
        if not isinstance(r.max_length, int) or isinstance(r.max_length, bool) or r.max_length < 2:
            raise ConfigError(f"Bad value for 'views.max_length': {r.max_length!r}; must be an integer >= 2")


__all__ = ["TextViewConfig", "Texts", "check_text_views"]
