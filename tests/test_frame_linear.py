"""Frame-level probes (issue 13): CPC's phone probe as the ``frame_linear`` protocol on per-frame labels.

LibriSpeech's phone alignment is not in ../shared/data: the tests build a small train-clean-100 tree of FLAC
utterances made of tone segments, and a CPC_audio-format alignment file whose per-10 ms label is the segment's
tone. MFCC frames separate the tones; the probe must find them far above the majority-class rate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from sslbench.data import audio as audio_data
from sslbench.data.base import DataFileError
from sslbench.errors import ConfigError
from sslbench.protocols.frame_linear import aligned_frames

RATE, HOP = 16000, 160
TONES = (300.0, 1100.0, 3200.0)


def _utterance(rng: np.random.Generator, segments: int) -> tuple[np.ndarray, list[int]]:
    """Tone segments of 8-20 frames (80-200 ms) each: the waveform and one label per 10 ms frame."""
    wave, labels = [], []
    for _ in range(segments):
        cls, frames = int(rng.integers(len(TONES))), int(rng.integers(8, 21))
        t = np.arange(frames * HOP) / RATE
        wave.append(0.3 * np.sin(2 * np.pi * TONES[cls] * t + rng.uniform(0, 6.28)) + 0.01 * rng.standard_normal(len(t)))
        labels += [cls] * frames
    return np.concatenate(wave).astype(np.float32), labels


@pytest.fixture(scope="module")
def libri(tmp_path_factory):
    soundfile = pytest.importorskip("soundfile", reason="FLAC needs soundfile")
    root = tmp_path_factory.mktemp("libri")
    base = root / "audio" / "LibriSpeech" / "train-clean-100"
    rng = np.random.default_rng(0)
    lines, train, test = [], [], []
    for spk, chapter in ((19, 198), (103, 1240)):
        for utt in range(6):
            uid = f"{spk}-{chapter}-{utt:04d}"
            path = base / str(spk) / str(chapter) / f"{uid}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            wave, labels = _utterance(rng, 6)
            soundfile.write(str(path), wave, RATE, format="FLAC", subtype="PCM_16")
            lines.append(" ".join([uid, *map(str, labels)]))
            (test if utt >= 4 else train).append(uid)
    (base.parent / "converted_aligned_phones.txt").write_text("\n".join(lines) + "\n")
    (base.parent / "train_split.txt").write_text("\n".join(train) + "\n")
    (base.parent / "test_split.txt").write_text("\n".join(test) + "\n")
    suite = root / "libri-frames.yaml"
    suite.write_text(
        "suite: libri-frames\nversion: 1\nmodality: audio\ndescription: tone-phone frame probe test\n"
        "dataset: {name: librispeech100, train: train, test: test, targets: [chapter]}\n"
        "encoder: {name: cpc-conv, options: {channels: 64, norm: none, context: gru, context_dim: 64}}\n"
        "pretrain: {epochs: 0, batch_size: 4}\nviews: {crop_samples: 4800, short_clips: skip}\n"
        "protocols:\n  - frame_linear: {target: phone, epochs: 30, batch_size: 512, lr: 0.01}\n"
        "  - linear: {epochs: 5}\nseeds: [0]\n")
    return root, suite


def test_librispeech_reads_the_phone_alignment_as_frame_labels(libri, monkeypatch, tmp_path):
    root, _ = libri
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    info, s = audio_data.load_librispeech100(root, ["train", "test"])
    assert info.frame_targets == {"phone": ["0", "1", "2"]}
    lines = dict(ln.split(" ", 1) for ln in (root / "audio/LibriSpeech/converted_aligned_phones.txt").read_text()
                 .splitlines())
    for split in s.values():
        for f, labels, clip in zip(split.extra["files"], split.frame_targets["phone"], split.samples, strict=True):
            assert labels.tolist() == [int(v) for v in lines[Path(f).stem].split()]
            assert len(clip) == HOP * len(labels)  # one label per 10 ms of the clip
    from sslbench.plugins import get_modality

    part = get_modality("audio").subset(s["train"], torch.tensor([2, 0]))  # frame labels stay with their clips
    assert [t.tolist() for t in part.frame_targets["phone"]] == [s["train"].frame_targets["phone"][i].tolist()
                                                                  for i in (2, 0)]


def test_a_malformed_alignment_line_is_named(tmp_path):
    bad = tmp_path / "phones.txt"
    bad.write_text("19-198-0000 0 0 1\n19-198-0001 0 x 1\n")
    with pytest.raises(DataFileError, match=r"phones\.txt:2: expected"):
        audio_data.read_frame_labels(bad)


def test_alignment_cuts_to_the_shorter_and_refuses_another_rate():
    f = [torch.randn(10, 3), torch.randn(7, 3), torch.randn(4, 3)]
    y = [torch.arange(11) % 2, torch.zeros(0, dtype=torch.long), torch.ones(4, dtype=torch.long)]
    x, labels, unlabelled = aligned_frames(f, y, 2, None)
    assert x.shape == (14, 3) and labels.tolist() == (torch.arange(10) % 2).tolist() + [1] * 4 and unlabelled == 1
    assert torch.equal(x[:10], f[0])
    with pytest.raises(ConfigError, match=r"a\.flac has 10 feature frames but 20 frame labels"):
        aligned_frames(f[:1], [torch.zeros(20, dtype=torch.long)], 2, ["a.flac"])  # 20 ms labels vs 10 ms frames


@pytest.mark.parametrize("method", ["baseline.pixels", "baseline.random"])
def test_frame_probe_through_the_cli_beats_the_majority_class(libri, tmp_path, method):
    root, suite = libri
    out = tmp_path / "runs"
    res = run_cli("run", method, "--suite", str(suite), "--data-dir", str(root), "--out", str(out), "--quiet",
                  env={"SSLBENCH_CACHE": str(tmp_path / "cache")})
    assert res.returncode == 0, res.stderr
    (record,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    top1 = record["metrics"]["frame_linear.top1"]["value"]
    _, s = audio_data.load_librispeech100(root, ["test"])
    test_labels = torch.cat(s["test"].frame_targets["phone"])
    majority = 100.0 * float(torch.bincount(test_labels).max()) / len(test_labels)
    floor = 90.0 if method == "baseline.pixels" else majority + 15  # MFCCs tell tones apart almost perfectly
    assert top1 > floor, (method, top1, majority)
    assert "chapter:linear.top1" in record["metrics"]  # the utterance-level probe is retargeted ...
    assert "chapter:frame_linear.top1" not in record["metrics"]  # ... the frame probe, with its own labels, is not


def test_frame_probe_on_data_without_frame_labels_is_one_line_before_any_work(tmp_path):
    out = tmp_path / "runs"
    suite = tmp_path / "fsdd-frames.yaml"
    suite.write_text("suite: fsdd-frames\nversion: 1\nmodality: audio\ndescription: no frame labels\n"
                     "dataset: {name: fsdd, train: train, test: test}\n"
                     "encoder: {name: cpc-conv, options: {channels: 32}}\npretrain: {epochs: 0}\n"
                     "views: {crop_samples: 4800, short_clips: pad}\n"
                     "protocols:\n  - frame_linear: {target: phone}\nseeds: [0]\n")
    res = run_cli("run", "baseline.pixels", "--suite", str(suite), "--out", str(out))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "'frame_linear.target': 'phone'" in lines[0] and "fsdd" in lines[0], res.stderr
    assert not out.exists()


def test_few_shot_and_noisy_label_run_unchanged_on_audio_features(tmp_path):
    """Issue 13: the few-shot and noisy-label protocols on FSDD's MFCC features (real clips), through the CLI.
    With 100 labelled clips the digit probe is far above chance (10%); 40% symmetric label noise costs accuracy."""
    suite = tmp_path / "fsdd-protocols.yaml"
    suite.write_text("suite: fsdd-protocols\nversion: 1\nmodality: audio\ndescription: few-shot and noisy on audio\n"
                     "dataset: {name: fsdd, train: train, test: test, targets: [speaker]}\n"
                     "encoder: {name: cpc-conv, options: {channels: 32}}\npretrain: {epochs: 0}\n"
                     "views: {crop_samples: 4800, short_clips: pad}\nprotocols:\n"
                     "  - few_shot: {n: [100], per_class: [], fractions: [], repeats: 2, epochs: 100, lr: 0.01}\n"
                     "  - noisy_label: {rates: [0.0, 0.4], modes: [symmetric], repeats: 1, epochs: 30,"
                     " batch_size: 128, lr: 0.01}\n"
                     "seeds: [0]\n")
    out = tmp_path / "runs"
    res = run_cli("run", "baseline.pixels", "--suite", str(suite), "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    (record,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    m = {k: v["value"] for k, v in record["metrics"].items()}
    few = [v for k, v in m.items() if k.startswith("few_shot.") and "speaker" not in k]
    assert few and all(v > 50 for v in few), m
    assert m["noisy_label.acc@sym0"] > 80 and m["noisy_label.acc@sym0.4"] < m["noisy_label.acc@sym0"], m
    assert 0.3 < m["noisy_label.noise@sym0.4"] < 0.5  # the measured rate of flipped labels
    assert any(k.startswith("speaker:few_shot.") for k in m)  # and again on the speaker labels
