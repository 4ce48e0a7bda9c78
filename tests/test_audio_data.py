"""Audio data and the audio modality: FSDD from the real tarball (official split, digit and speaker labels, 8 kHz
resampled to 16 kHz, the decoded cache), seeded crops and the gain / noise views, Waveforms padding, the MFCC
floor, and one-line errors (or counted skips) for undecodable and too-short clips through ``audiofolder``."""

from __future__ import annotations

import io
import math
import re
import tarfile
import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from sslbench.data import audio as audio_data
from sslbench.data.base import DataFileError
from sslbench.errors import ConfigError
from sslbench.modalities.audio import MFCC_DIM, AudioModality, mfcc_features
from sslbench.plugins import DATASETS, get_modality
from sslbench.views.audio import AudioViewConfig, Waveforms, as_waveforms, random_view

FSDD = SHARED_DATA / "audio" / "fsdd.tar.gz"
needs_fsdd = pytest.mark.skipif(not FSDD.is_file(), reason=f"FSDD not found at {FSDD}")
CPU = torch.device("cpu")


class _Method(torch.nn.Module):
    """What a batch source asks of a method: its view recipes, needs_labels and group_by."""

    needs_labels = False

    def __init__(self, n_views: int = 1, group_by: str | None = None):
        super().__init__()
        self.n_views, self.group_by = n_views, group_by

    def views(self, base):
        return [base] * self.n_views

    def embed(self, x: Waveforms) -> torch.Tensor:  # per clip: its length and the sum of its valid samples
        return torch.stack([x.lengths.double(), (x.x[:, 0].double() * x.mask()).sum(1)], dim=1)


def _source(split, views: AudioViewConfig, batch_size=8, seed=0, **method):
    return AudioModality().batch_source(split, None, _Method(**method), views, SimpleNamespace(batch_size=batch_size),
                                        seed, CPU)


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory):
    """FSDD's train and test splits decoded into a fresh cache; also the time of that first load."""
    if not FSDD.is_file():
        pytest.skip(f"FSDD not found at {FSDD}")
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLBENCH_CACHE", str(cache))
        info, splits = DATASETS.get("fsdd")(SHARED_DATA, ["train", "test"])
        # the second load reads the cache: decoding is not called at all
        mp.setattr(audio_data, "decode_audio", lambda data: pytest.fail("decoded again despite the cache"))
        again = DATASETS.get("fsdd")(SHARED_DATA, ["test"])
    return SimpleNamespace(info=info, train=splits["train"], test=splits["test"], again=again, cache=cache)


def _raw_fsdd(member: str) -> tuple[np.ndarray, int]:
    with tarfile.open(FSDD) as tf:
        data = tf.extractfile(member).read()
    with wave.open(io.BytesIO(data)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


@needs_fsdd
def test_fsdd_official_split_labels_and_speakers(fsdd):
    info, train, test = fsdd.info, fsdd.train, fsdd.test
    assert (len(train), len(test)) == (2700, 300) and info.modality == "audio" and info.fingerprint
    assert info.classes == [str(d) for d in range(10)]
    assert info.targets == {"speaker": ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]}
    for split, test_side in ((train, False), (test, True)):
        assert split.labels.dtype == split.targets["speaker"].dtype == torch.int64
        assert len(split.extra["files"]) == len(split.samples) == len(split)
        for name, digit, speaker in zip(split.extra["files"], split.labels.tolist(), split.targets["speaker"].tolist(),
                                         strict=True):
            d, spk, index = re.search(r"recordings/(\d)_([a-z]+)_(\d+)\.wav$", name).groups()
            assert (int(d), info.targets["speaker"][speaker]) == (digit, spk)
            assert (int(index) <= 4) == test_side  # the official split: clip indices 0-4 are the test set
    assert test.labels.bincount().tolist() == [30] * 10 and test.targets["speaker"].bincount().tolist() == [50] * 6
    assert train.targets["speaker"].bincount().tolist() == [450] * 6


@needs_fsdd
def test_fsdd_is_resampled_from_8khz_not_misread(fsdd):
    test = fsdd.test
    assert test.extra["sample_rate"] == 16000
    raw, rate = _raw_fsdd("recordings/0_george_0.wav")
    clip = test.samples[0]
    assert test.extra["files"][0].endswith("recordings/0_george_0.wav") and rate == 8000
    assert clip.dtype == torch.float32 and clip.dim() == 1 and len(clip) == 2 * len(raw)  # twice the samples ...
    assert len(clip) / test.extra["sample_rate"] == pytest.approx(len(raw) / rate)  # ... the same seconds
    # the 16 kHz clip's even samples are the 8 kHz ones (band-limited interpolation keeps them, up to the filter)
    even = clip[::2].numpy() * 32768
    assert np.corrcoef(even, raw)[0, 1] > 0.99 and np.abs(even - raw).max() < 0.05 * np.abs(raw).max()
    # at sample_rate 8000 the clips are the file's samples exactly
    _, native = DATASETS.get("fsdd")(SHARED_DATA, ["test"], sample_rate=8000)
    assert torch.equal(native["test"].samples[0], torch.from_numpy(raw.astype(np.float32) / 32768))
    assert native["test"].extra["sample_rate"] == 8000


@needs_fsdd
def test_fsdd_second_load_reads_the_cache(fsdd):
    info, splits = fsdd.again
    assert info.fingerprint == fsdd.info.fingerprint and len(splits["test"]) == 300
    assert all(torch.equal(a, b) for a, b in zip(splits["test"].samples, fsdd.test.samples, strict=True))
    assert torch.equal(splits["test"].targets["speaker"], fsdd.test.targets["speaker"])
    assert list((fsdd.cache / "decoded").glob("audio-fsdd-*/waves.bin"))


@needs_fsdd
def test_crops_are_seeded_per_sample_and_full_windows(fsdd):
    views = AudioViewConfig(crop_samples=2048)
    a, b = (_source(fsdd.train, views, seed=3) for _ in range(2))
    assert get_modality("audio").unit == "seconds" and a.samples_per_step == pytest.approx(8 * 2048 / 16000)
    batch, same = next(a.epoch_batches(0, 0)), next(b.epoch_batches(0, 0))
    w = batch.views[0]
    assert isinstance(w, Waveforms) and w.x.shape == (8, 1, 2048) and w.lengths.tolist() == [2048] * 8
    assert w.sample_rate == 16000 and torch.equal(w.x, same.views[0].x) and torch.equal(batch.index, same.index)
    for row, i in enumerate(batch.index.tolist()):  # each view is a contiguous window of its clip
        clip, seg = fsdd.train.samples[i], w.x[row, 0]
        starts = [s for s in range(len(clip) - 2047) if torch.equal(clip[s:s + 2048], seg)]
        assert len(starts) == 1
    # a sample's crop depends on (seed, epoch, index) only: not on the batch it falls in ...
    big = next(_source(fsdd.train, views, batch_size=64, seed=3).epoch_batches(0, 0))
    for row, i in enumerate(batch.index.tolist()):
        assert torch.equal(big.views[0].x[big.index.tolist().index(i)], w.x[row])
    # ... and changes with the seed and the epoch
    other = next(_source(fsdd.train, views, seed=4).epoch_batches(0, 0))
    assert not torch.equal(other.index, batch.index)
    assert torch.equal(a.pool, torch.arange(2700))  # no clip shorter than the crop: positions are indices
    assert torch.equal(a.make_batch(batch.index).views[0].x, w.x)
    a._epoch = 1
    assert not torch.equal(a.make_batch(batch.index).views[0].x, w.x)


def _pairs_of_views(recipe: AudioViewConfig, n=16, length=16000):
    g = torch.Generator().manual_seed(0)
    clips = [torch.sin(torch.arange(length) * (0.01 + 0.002 * i)) * 0.5 for i in range(n)]
    plain = AudioViewConfig(crop_samples=recipe.crop_samples)
    out = []
    for i, c in enumerate(clips):
        seed = 100 + i
        out.append((random_view(c, plain, torch.Generator().manual_seed(seed)),
                    random_view(c, recipe, torch.Generator().manual_seed(seed))))
    del g
    return out


def test_gain_view_scales_each_crop_within_the_range():
    gains = []
    for base, gained in _pairs_of_views(AudioViewConfig(crop_samples=4000, gain_db=6.0)):
        ratio = gained / base
        ok = base.abs() > 1e-3
        assert torch.allclose(ratio[ok], ratio[ok][0].expand(int(ok.sum())), rtol=1e-4)  # one gain per crop
        gains.append(20 * math.log10(float(ratio[ok][0])))
    assert all(-6.0 - 1e-4 <= g <= 6.0 + 1e-4 for g in gains) and max(gains) - min(gains) > 3  # drawn, not fixed


def test_noise_view_has_the_requested_snr():
    for snr in (20.0, 0.0):
        measured = []
        for base, noisy in _pairs_of_views(AudioViewConfig(crop_samples=8000, noise_snr_db=snr)):
            noise = noisy - base
            measured.append(10 * math.log10(float(base.pow(2).mean() / noise.pow(2).mean())))
        assert np.mean(measured) == pytest.approx(snr, abs=0.3) and np.std(measured) < 0.5
    base, same = _pairs_of_views(AudioViewConfig(crop_samples=8000))[0]
    assert torch.equal(base, same)  # no gain, no noise: the crop itself


@needs_fsdd
def test_eval_inputs_are_padded_waveforms_with_lengths_and_features_come_back_in_order(fsdd):
    modality, test = AudioModality(), fsdd.test
    w = next(modality.eval_inputs(test, fsdd.info, CPU, 5))
    lengths = [len(test.samples[i]) for i in range(5)]
    assert w.lengths.tolist() == lengths and w.x.shape == (5, 1, max(lengths)) and w.lengths.dtype == torch.int64
    for i, n in enumerate(lengths):
        assert torch.equal(w.x[i, 0, :n], test.samples[i]) and not w.x[i, 0, n:].any()
    assert torch.equal(w.mask().sum(1), w.lengths) and torch.equal(w.clip(1), test.samples[1])
    # features: length-sorted batches under a sample budget, returned in the split's order
    feats = modality.features(_Method(), test, fsdd.info, CPU, 7, {})
    expected = torch.tensor([[len(c), float(c.double().sum())] for c in test.samples], dtype=torch.float64)
    assert feats.shape == (300, 2) and torch.allclose(feats.double(), expected, rtol=1e-5, atol=1e-3)


@needs_fsdd
def test_mfcc_floor_shape_and_independence_from_padding(fsdd):
    modality, test = AudioModality(), fsdd.test
    assert modality.raw_feature_dim(fsdd.info) == MFCC_DIM == 78
    w = next(modality.eval_inputs(test, fsdd.info, CPU, 6))
    feats = modality.raw_features(w)
    assert feats.shape == (6, 78) and torch.isfinite(feats).all()
    alone = torch.cat([mfcc_features(Waveforms.collate([test.samples[i]], 16000)) for i in range(6)])
    assert torch.allclose(feats, alone, atol=1e-4)
    longer = Waveforms(torch.nn.functional.pad(w.x, (0, 5000)), w.lengths, 16000)  # more padding, same features
    assert torch.allclose(modality.raw_features(longer), feats, atol=1e-4)
    assert modality.raw_features(as_waveforms(w.x[:1, :, :4000])).shape == (1, 78)  # a bare tensor: full rows


@needs_fsdd
def test_subset_keeps_targets_files_and_clips_aligned(fsdd):
    idx = torch.tensor([3, 50, 299])
    sub = AudioModality().subset(fsdd.test, idx)
    assert sub.labels.tolist() == fsdd.test.labels[idx].tolist()
    assert sub.targets["speaker"].tolist() == fsdd.test.targets["speaker"][idx].tolist()
    assert sub.extra["files"] == [fsdd.test.extra["files"][i] for i in idx.tolist()]
    assert all(torch.equal(sub.samples[k], fsdd.test.samples[i]) for k, i in enumerate(idx.tolist()))


@needs_fsdd
def test_groups_follow_the_methods_group_by(fsdd):
    batch = next(_source(fsdd.train, AudioViewConfig(crop_samples=2048), group_by="speaker").epoch_batches(0, 0))
    assert torch.equal(batch.groups, fsdd.train.targets["speaker"][batch.index])
    assert next(_source(fsdd.train, AudioViewConfig(crop_samples=2048)).epoch_batches(0, 0)).groups is None
    with pytest.raises(ConfigError, match="'gender'.*speaker"):
        _source(fsdd.train, AudioViewConfig(crop_samples=2048), group_by="gender")


@needs_fsdd
def test_clips_shorter_than_the_window_error_skip_or_pad(fsdd, capsys):
    modality, train = AudioModality(), fsdd.train
    crop = 8192  # 0.512 s: FSDD holds shorter clips
    short = (train.samples.lengths < crop).nonzero().flatten()
    with pytest.raises(DataFileError) as err:
        modality.check_views(AudioViewConfig(crop_samples=crop), [AudioViewConfig(crop_samples=crop)], train)
    line = str(err.value)
    assert "\n" not in line and train.extra["files"][int(short[0])] in line and "views.short_clips" in line
    assert f"{len(short)} of 2700" in line
    skip = _source(train, AudioViewConfig(crop_samples=crop, short_clips="skip"))
    assert len(skip.pool) == 2700 - len(short) and "left out of pretraining" in capsys.readouterr().err
    assert (train.samples.lengths[skip.pool] >= crop).all()
    pad = _source(train, AudioViewConfig(crop_samples=crop, short_clips="pad"), batch_size=64)
    w = next(pad.epoch_batches(0, 0)).views[0]
    assert w.x.shape[-1] == crop and (w.lengths < crop).any()
    for row in (w.lengths < crop).nonzero().flatten().tolist():
        assert not w.x[row, 0, int(w.lengths[row]):].any()


# --------------------------------------------------------------------------- audiofolder, bad clips


def _write_wav(path: Path, x: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.rint(x * 32767), -32768, 32767).astype("<i2").tobytes())
    return path


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * freq * t)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A flat folder of WAVs named {digit}_{speaker}_{take}.wav at 8 and 16 kHz; a private cache."""
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    for d in range(3):
        for spk, rate in (("ann", 8000), ("bob", 16000)):
            for take in range(4):
                _write_wav(root / "clips" / f"{d}_{spk}_{take}.wav", _tone(0.3 + 0.05 * take, rate, 200 + 100 * d), rate)
    return root


PATTERN = r"^(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav$"


def test_audiofolder_labels_targets_and_splits_from_the_file_name(folder):
    load = DATASETS.get("audiofolder")
    info, s = load(folder, ["train", "test", "all"], path="clips", pattern=PATTERN, test_pattern=r"_0\.wav$")
    assert info.classes == ["0", "1", "2"] and info.targets == {"speaker": ["ann", "bob"], "take": ["0", "1", "2", "3"]}
    assert (len(s["train"]), len(s["test"]), len(s["all"])) == (18, 6, 24)
    assert all(f.endswith("_0.wav") for f in s["test"].extra["files"])
    for split in s.values():
        for f, y, spk, take in zip(split.extra["files"], split.labels, split.targets["speaker"], split.targets["take"],
                                      strict=True):
            d, who, t = re.search(PATTERN[1:], Path(f).name).groups()
            assert (int(d), info.targets["speaker"][int(spk)], info.targets["take"][int(take)]) == (int(y), who, t)
        for f, clip in zip(split.extra["files"], split.samples, strict=True):  # every clip at 16 kHz, durations kept
            take = int(re.search(r"_(\d)\.wav$", f).group(1))
            assert len(clip) == round((0.3 + 0.05 * take) * 16000)
    # a label group named by the option, and a seeded stratified split without test_pattern
    info2, s2 = load(folder, ["train", "test"], path="clips", pattern=PATTERN, label="speaker", test_fraction=0.25)
    assert info2.classes == ["ann", "bob"] and set(info2.targets) == {"label", "take"}
    assert s2["test"].labels.bincount().tolist() == [3, 3] and len(s2["train"]) == 18
    again = load(folder, ["test"], path="clips", pattern=PATTERN, label="speaker", test_fraction=0.25)
    assert again[1]["test"].extra["files"] == s2["test"].extra["files"] and again[0].fingerprint == info2.fingerprint
    with pytest.raises(ConfigError, match="no named group 'label'"):
        load(folder, ["train"], path="clips", pattern=r"(?P<digit>\d)_")
    with pytest.raises(ConfigError, match="Unknown option 'patern'"):
        load(folder, ["train"], path="clips", patern=PATTERN)


def test_a_corrupt_wav_is_one_line_naming_it_or_skipped_with_a_count(folder, capsys):
    bad = folder / "clips" / "1_ann_9.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 10)  # a header cut short
    truncated = _write_wav(folder / "clips" / "2_bob_9.wav", _tone(0.5, 16000), 16000)
    truncated.write_bytes(truncated.read_bytes()[:4000])  # the data chunk cut: fewer frames than the header says
    load = DATASETS.get("audiofolder")
    with pytest.raises(DataFileError) as err:
        load(folder, ["train"], path="clips", pattern=PATTERN)
    line = str(err.value)
    assert "\n" not in line and str(bad) in line and "1 more" in line and "skip_bad" in line
    info, s = load(folder, ["all"], path="clips", pattern=PATTERN, skip_bad=True)
    assert len(s["all"]) == 24 and not any("_9.wav" in f for f in s["all"].extra["files"])
    assert re.search(r"skipped 2 of 26 clips .*1_ann_9\.wav", capsys.readouterr().err.replace("\n", " "))
    bad.unlink()
    with pytest.raises(DataFileError, match=r"2_bob_9\.wav is truncated: its header gives 8000 frames"):
        load(folder, ["all"], path="clips", pattern=PATTERN)


def test_too_short_and_unmatched_clips_are_one_line_naming_the_file(folder, capsys):
    load = DATASETS.get("audiofolder")
    with pytest.raises(DataFileError) as err:
        load(folder, ["train"], path="clips", pattern=PATTERN, min_samples=5000)  # 0.3 s at 16 kHz is 4800
    line = str(err.value)
    assert "\n" not in line and re.search(r"clips/0_ann_0\.wav is 4800 samples long \(0\.300 s at 16000 Hz\), "
                                          r"shorter than min_samples=5000", line)
    _, s = load(folder, ["all"], path="clips", pattern=PATTERN, min_samples=5000, skip_bad=True)
    assert len(s["all"]) == 18 and "skipped 6 of 24" in capsys.readouterr().err
    _write_wav(folder / "clips" / "notes.wav", _tone(0.5, 8000), 8000)
    with pytest.raises(DataFileError, match=r"clips/notes\.wav does not match pattern"):
        load(folder, ["train"], path="clips", pattern=PATTERN)
    # a clip shorter than the training window, known to the views only
    _, s = load(folder, ["all"], path="clips", pattern=PATTERN, skip_bad=True)
    with pytest.raises(DataFileError, match=r"clips/0_ann_0\.wav is 4800 samples long .*views\.crop_samples=5600"):
        AudioModality().check_views(None, [AudioViewConfig(crop_samples=5600)], s["all"])


def test_fsdd_layout_from_a_small_tarball_and_a_truncated_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    for name in ("3_amy_0.wav", "3_amy_7.wav", "5_bo_2.wav", "5_bo_30.wav"):
        _write_wav(src / "recordings" / name, _tone(0.25, 8000), 8000)
    (tmp_path / "root" / "audio").mkdir(parents=True)
    tarball = tmp_path / "root" / "audio" / "fsdd.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(src / "recordings", arcname="free-spoken-digit-dataset-master/recordings")
    info, s = DATASETS.get("fsdd")(tmp_path / "root", ["train", "test"])
    assert info.classes == [str(d) for d in range(10)] and info.targets == {"speaker": ["amy", "bo"]}
    assert [Path(f).name for f in s["test"].extra["files"]] == ["3_amy_0.wav", "5_bo_2.wav"]
    assert [len(c) for c in s["train"].samples] == [4000, 4000]  # 0.25 s, 8 kHz -> 16 kHz
    data = tarball.read_bytes()
    tarball.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match=r"fsdd\.tar\.gz is not a readable tar archive"):
        DATASETS.get("fsdd")(tmp_path / "root", ["train"])
    with pytest.raises(ConfigError, match="no split 'dev'"):
        DATASETS.get("fsdd")(tmp_path / "root", ["dev"])


def test_flac_needs_soundfile_or_reads_through_it(tmp_path, monkeypatch):
    """FLAC is decoded by soundfile when installed; without a decoder the message says what to install."""
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    try:
        import soundfile
    except (ImportError, OSError):
        soundfile = None
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "x.flac"
    if soundfile is None:
        path.write_bytes(b"fLaC" + b"\x00" * 64)
        monkeypatch.setattr(audio_data, "_torchaudio", lambda data: None)
        with pytest.raises(ConfigError, match=r"x\.flac: cannot decode .*pip install soundfile"):
            DATASETS.get("audiofolder")(tmp_path, ["all"], path=".", pattern=r"(?P<label>\w)\.flac")
        return
    soundfile.write(str(path), _tone(0.5, 8000).astype(np.float32), 8000, format="FLAC")
    _, s = DATASETS.get("audiofolder")(tmp_path, ["all"], path=".", pattern=r"(?P<label>\w)\.flac")
    assert len(s["all"].samples[0]) == 8000


def test_librispeech_layout_speakers_and_split(tmp_path, monkeypatch):
    """train-clean-100's tree (speaker/chapter/speaker-chapter-utt.flac): speaker labels, chapter target, the
    seeded per-speaker split, or the CPC authors' utterance lists when given."""
    soundfile = pytest.importorskip("soundfile", reason="FLAC needs soundfile")
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    base = tmp_path / "audio" / "LibriSpeech" / "train-clean-100"
    for spk, chapter in ((19, 198), (103, 1240), (1034, 121119)):
        for utt in range(5):
            path = base / str(spk) / str(chapter) / f"{spk}-{chapter}-{utt:04d}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(path), _tone(0.2 + 0.01 * utt, 16000).astype(np.float32), 16000, format="FLAC",
                            subtype="PCM_16")
    load = DATASETS.get("librispeech100")
    info, s = load(tmp_path, ["train", "test"])
    assert info.classes == ["19", "103", "1034"]
    assert info.targets == {"chapter": ["198", "1240", "121119"], "speaker": ["19", "103", "1034"]}
    assert torch.equal(s["train"].targets["speaker"], s["train"].labels)  # cpc.audio groups negatives by it
    assert sorted(s["test"].labels.tolist()) == [0, 1, 2] and len(s["train"]) == 12  # 20% of each speaker's 5
    assert len(s["train"].samples[0]) == 3200 and s["train"].samples.data.dtype == torch.int16  # stored as int16
    assert abs(float(s["train"].samples[0].abs().max()) - 0.3) < 1e-3
    (base.parent / "train_split.txt").write_text("19-198-0000\n103-1240-0001\n")
    (base.parent / "test_split.txt").write_text("1034-121119-0004\n")
    info2, s2 = load(tmp_path, ["train", "test"])
    assert sorted(Path(f).stem for f in s2["train"].extra["files"]) == ["103-1240-0001", "19-198-0000"]
    assert [Path(f).stem for f in s2["test"].extra["files"]] == ["1034-121119-0004"]
    assert info2.fingerprint != info.fingerprint
