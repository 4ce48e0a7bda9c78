"""Audio data sets: the Free Spoken Digit Dataset, LibriSpeech train-clean-100 and any folder of WAV/FLAC files.

Every loader is ``load(root, splits, download=False, **options) -> (DataInfo, {split: Split})``; a split holds
``samples``: a :class:`Clips` (a sequence of variable-length 1-D float32 tensors, mono, in [-1, 1], at the
``sample_rate`` option, default 16000 Hz), ``labels`` int64 N, ``targets`` (further label sets, e.g.
``{"speaker": int64 N}``, class names in ``DataInfo.targets``) and ``extra``: ``{"files": [one name per clip,
for messages], "sample_rate": Hz}``.

Decoding. PCM WAV (8/16/24/32-bit integer) is read by the standard library's ``wave`` module: no codec
library needed, which is what this machine has (torchaudio 2.11's ``torchaudio.load`` needs torchcodec and
FFmpeg). Everything else (FLAC, float or extensible WAV, OGG) goes through ``soundfile`` when it is installed,
else ``torchaudio.load``; with neither, one line says to install soundfile. Channels are averaged to mono.
Every clip is resampled to ``sample_rate`` with ``torchaudio.functional.resample`` (windowed sinc, Hann,
``lowpass_filter_width`` 6, ``rolloff`` 0.99; clips batched zero-padded, which gives the same samples as one
clip at a time): FSDD's 8 kHz clips become 16 kHz, twice as many samples and the same duration.

Cache. The decoded, resampled clips of a source are written once under ``<cache_dir>/decoded/audio-<name>-<key>/``
(``waves.bin``: every clip concatenated, raw little-endian float32, or int16 for LibriSpeech, 100 hours;
``offsets.npy`` int64 N+1; ``meta.json``: member names, clips that could not be decoded and why, dtype) into a
private temporary folder renamed into place, and memory-mapped on later loads. The key covers the source's
fingerprint (a tarball's sha256; a folder's names, sizes and modification times), the sample rate and the
decoder version; a damaged entry is a miss.

Bad clips. A clip that cannot be decoded, is empty, holds non-finite values, is shorter than ``min_samples``
(at ``sample_rate``) or whose name does not match the data set's pattern raises one
:class:`~sslbench.data.base.DataFileError` line naming the file and what is wrong; with ``skip_bad: true`` such
clips are left out and one warning line counts them (and names the first). Clips shorter than a training crop
are the audio modality's business (``views.short_clips``), since only the views know the crop.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import wave
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write, atomic_write_text, install_dir
from ..errors import ConfigError, DataNotFoundError
from ..plugins import register_dataset
from ..registry import warn_once
from .base import DataFileError, DataInfo, Split, one_line, stratified_split
from .fingerprint import combine_fingerprints, file_sha256, tree_fingerprint
from .root import cache_dir

DEFAULT_SAMPLE_RATE = 16000
AUDIO_EXTENSIONS = (".wav", ".flac")
DECODER_VERSION = 1  # bump when decoding or resampling changes: old cache entries are then never read
READ_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError)
COMMON_OPTIONS = ("sample_rate", "skip_bad", "min_samples")
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.tar.gz"
FSDD_NAME = re.compile(r"(?:^|/)recordings/(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<index>\d+)\.wav$")
LIBRI_NAME = re.compile(r"(?:^|/)(?P<speaker>\d+)/(?P<chapter>\d+)/(?P=speaker)-(?P=chapter)-(?P<utt>\d+)\.flac$")


class NoDecoder(ConfigError):
    """No installed library decodes this kind of file (not a fault of the file: never skipped)."""


class BadClip(Exception):
    """A clip that cannot be used; the message says why (the caller names the file)."""


# --------------------------------------------------------------------------- clips


class Clips(Sequence):
    """Variable-length mono clips held in one concatenated 1-D tensor (float32, or int16 scaled by 1/32768), as a
    sequence: ``clips[i]`` is a 1-D float32 tensor (a view for float32 storage), ``clips[idx]`` with a list,
    slice or int64 tensor is a Clips sharing the storage; ``lengths`` int64 N."""

    def __init__(self, data: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor):
        self.data, self.starts, self.lengths = data, starts.long(), lengths.long()

    @classmethod
    def from_list(cls, clips: Sequence[torch.Tensor]) -> Clips:
        lengths = torch.tensor([int(c.numel()) for c in clips], dtype=torch.int64)
        starts = torch.cumsum(lengths, 0) - lengths
        data = torch.cat([c.reshape(-1).float() for c in clips]) if len(clips) else torch.zeros(0)
        return cls(data, starts, lengths)

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, int | np.integer) or (isinstance(i, torch.Tensor) and i.dim() == 0):
            i = int(i)
            if i < 0:
                i += len(self)
            if not 0 <= i < len(self):
                raise IndexError(f"clip {i} of {len(self)}")
            s, n = int(self.starts[i]), int(self.lengths[i])
            clip = self.data[s:s + n]
            return clip.float().div_(32768.0) if clip.dtype == torch.int16 else clip
        idx = torch.arange(len(self))[i] if isinstance(i, slice) else torch.as_tensor(i, dtype=torch.int64)
        return Clips(self.data, self.starts[idx], self.lengths[idx])

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[i] for i in range(len(self)))

    def seconds(self, sample_rate: int) -> float:
        return float(self.lengths.sum()) / float(sample_rate)


# --------------------------------------------------------------------------- decoding


def _pcm_to_float(raw: bytes, width: int, channels: int) -> np.ndarray:
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        v = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise BadClip(f"has {width}-byte samples (PCM WAV holds 1 to 4)")
    return x.reshape(-1, channels).mean(axis=1, dtype=np.float32) if channels > 1 else x


def _wav_stdlib(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(frames)
    if channels < 1 or rate < 1:
        raise BadClip(f"declares {channels} channels at {rate} Hz")
    got = len(raw) // (channels * width)
    if got < frames:
        raise BadClip(f"is truncated: its header gives {frames} frames, it holds {got}")
    return _pcm_to_float(raw[:frames * channels * width], width, channels), rate


def _soundfile(data: bytes) -> tuple[np.ndarray, int] | None:
    try:
        import soundfile
    except (ImportError, OSError):  # not installed, or libsndfile missing
        return None
    try:
        x, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as err:  # noqa: BLE001 - soundfile raises LibsndfileError, RuntimeError, TypeError, ...
        raise BadClip(f"cannot be decoded: {one_line(err)}") from err
    return x.mean(axis=1, dtype=np.float32), int(rate)


def _torchaudio(data: bytes) -> tuple[np.ndarray, int] | None:
    try:
        import torchaudio

        x, rate = torchaudio.load(io.BytesIO(data))
    except ImportError:  # torchaudio >= 2.9 without torchcodec
        return None
    except Exception as err:  # noqa: BLE001 - decoder errors of any type
        raise BadClip(f"cannot be decoded: {one_line(err)}") from err
    return x.mean(dim=0).numpy().astype(np.float32), int(rate)


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Encoded audio bytes -> (float32 mono samples in [-1, 1], sample rate). Raises BadClip (the file is at fault)
    or NoDecoder (no installed library reads this format)."""
    riff = data[:4] in (b"RIFF", b"RIFX") and data[8:12] == b"WAVE"
    reason = ""
    if riff:
        try:
            x, rate = _wav_stdlib(data)
            return _checked(x), rate
        except (wave.Error, EOFError, ValueError) as err:
            reason = one_line(err)
    elif len(data) < 12:
        raise BadClip(f"is not an audio file ({len(data)} bytes)")
    for library in (_soundfile, _torchaudio):
        found = library(data)
        if found is not None:
            return _checked(found[0]), found[1]
    kind = "a WAV format the standard library does not read" if riff else f"a {data[:4]!r}... file"
    if riff and not reason.startswith(("Error: unknown format", "Error: bad sample width")):
        raise BadClip(f"is not a readable WAV file: {reason}")
    raise NoDecoder(f"cannot decode {kind} ({reason or 'not WAV'}): install soundfile (pip install soundfile) "
                    "for FLAC, OGG and float WAV (torchaudio.load needs torchcodec and FFmpeg)")


def _checked(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        raise BadClip("holds no audio (0 samples)")
    if not np.isfinite(x).all():
        raise BadClip("holds non-finite samples (NaN or inf)")
    return np.ascontiguousarray(x, dtype=np.float32)


def resample_many(clips: list[np.ndarray], rates: list[int], target: int) -> list[torch.Tensor]:
    """Each clip resampled from its rate to ``target`` (torchaudio.functional.resample), in the given order;
    clips of a rate are batched zero-padded (sorted by length, about 2M samples a batch)."""
    import torchaudio.functional as AF

    out: list[torch.Tensor | None] = [None] * len(clips)
    by_rate: dict[int, list[int]] = {}
    for i, r in enumerate(rates):
        by_rate.setdefault(int(r), []).append(i)
    for rate, members in by_rate.items():
        if rate == target:
            for i in members:
                out[i] = torch.from_numpy(clips[i])
            continue
        members.sort(key=lambda i: len(clips[i]))
        start = 0
        while start < len(members):
            longest = len(clips[members[start]])
            stop = start + 1
            while stop < len(members) and len(clips[members[stop]]) * (stop - start + 1) <= (1 << 21):
                stop += 1
            group = members[start:stop]
            longest = len(clips[group[-1]])
            batch = torch.zeros(len(group), longest)
            for row, i in enumerate(group):
                batch[row, :len(clips[i])] = torch.from_numpy(clips[i])
            res = AF.resample(batch, rate, target)
            for row, i in enumerate(group):
                n = -(-len(clips[i]) * target // rate)  # ceil(len * target / rate), as torchaudio's own length
                out[i] = res[row, :n].clone()
            start = stop
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- sources and the cache


@dataclass
class Source:
    """Where a data set's clips are read from: a tarball (streamed, never extracted) or a folder."""

    path: Path
    members: Callable[[], Iterator[tuple[str, bytes]]]  # (name relative to the source, encoded bytes)
    fingerprint: str  # recorded with results
    cache_key: str  # the fingerprint plus what makes a cache entry stale (a folder's modification times)

    def display(self, name: str) -> str:
        return f"{self.path}:{name}" if self.path.is_file() else str(self.path / name)


def tar_source(path: Path, wanted: Callable[[str], bool]) -> Source:
    def members() -> Iterator[tuple[str, bytes]]:
        last = ""
        try:
            with tarfile.open(path, "r|*") as tf:
                for member in tf:
                    if member.isfile() and wanted(member.name):
                        f = tf.extractfile(member)
                        if f is not None:
                            last = member.name
                            yield member.name, f.read()
        except READ_ERRORS as err:
            after = f" after {last}" if last else ""
            raise DataFileError(f"{path} is not a readable tar archive (truncated or corrupt?){after}: "
                                f"{one_line(err)}") from err

    fp = file_sha256(path)
    return Source(path, members, fp, fp)


def folder_files(folder: Path, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[str]:
    """Audio files under ``folder`` (recursively; hidden entries skipped) as sorted relative posix paths."""
    found = []
    try:
        for dirpath, dirnames, filenames in os.walk(folder, onerror=_raise):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = Path(dirpath).relative_to(folder)
            found += [(rel / f).as_posix() for f in filenames if f.lower().endswith(extensions)
                      and not f.startswith(".")]
    except OSError as err:
        raise DataFileError(f"Cannot read {getattr(err, 'filename', None) or folder}: {one_line(err)}") from err
    return sorted(found)


def _raise(err: OSError) -> None:
    raise err


def folder_source(folder: Path, names: list[str]) -> Source:
    def members() -> Iterator[tuple[str, bytes]]:
        for name in names:
            try:
                yield name, (folder / name).read_bytes()
            except OSError as err:
                raise DataFileError(f"Cannot read {folder / name}: {one_line(err)}") from err

    stats = []
    for name in names:
        try:
            st = (folder / name).stat()
        except OSError as err:
            raise DataFileError(f"Cannot read {folder / name}: {one_line(err)}") from err
        stats.append(f"{name}\t{st.st_size}\t{st.st_mtime_ns}")
    fp = tree_fingerprint(folder)
    return Source(folder, members, fp, combine_fingerprints([fp, *stats]))


@dataclass
class Decoded:
    """Every clip of a source, decoded and resampled (in the order the source yielded them)."""

    names: list[str]
    clips: Clips
    bad: dict[str, str]  # name -> why it cannot be used


def _entry_dir(name: str, source: Source, sample_rate: int, dtype: str) -> Path:
    key = combine_fingerprints([source.cache_key, f"sample_rate={sample_rate}", f"dtype={dtype}",
                                f"decoder={DECODER_VERSION}"])
    return cache_dir() / "decoded" / f"audio-{name}-{key.removeprefix('sha256:')}"


def _read_entry(folder: Path) -> Decoded | None:
    """A cache entry, memory-mapped, or None when missing, partial or damaged."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        names, bad, dtype, total = meta["names"], meta["bad"], np.dtype(meta["dtype"]), int(meta["total"])
        offsets = np.load(folder / "offsets.npy", allow_pickle=False)
        if (dtype not in (np.dtype("<f4"), np.dtype("<i2")) or not isinstance(names, list) or not isinstance(bad, dict)
                or offsets.dtype != np.int64 or offsets.shape != (len(names) + 1,) or offsets[0] != 0
                or offsets[-1] != total or (np.diff(offsets) <= 0).any()
                or (folder / "waves.bin").stat().st_size != total * dtype.itemsize):
            return None
        if total:
            data = torch.from_numpy(np.memmap(folder / "waves.bin", dtype=dtype, mode="c", shape=(total,)))
        else:
            data = torch.zeros(0, dtype=torch.float32 if dtype.kind == "f" else torch.int16)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    off = torch.from_numpy(offsets)
    return Decoded([str(n) for n in names], Clips(data, off[:-1], off[1:] - off[:-1]),
                   {str(k): str(v) for k, v in bad.items()})


def _write_entry(folder: Path, source: Source, sample_rate: int, dtype: str) -> Decoded:
    """Decode every member into a new cache entry (streamed to disk, 256 clips at a time) and return it. Written in
    a private temporary folder renamed into place; where the cache cannot be written, decoded in memory."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    except OSError:
        return _decode_in_memory(source, sample_rate)
    try:
        names, bad, offsets = [], {}, [0]
        with open(tmp / "waves.bin", "wb") as out:
            for chunk in _decoded_chunks(source, sample_rate):
                for name, clip in chunk:
                    if isinstance(clip, str):
                        bad[name] = clip
                        continue
                    names.append(name)
                    out.write(_stored(clip, dtype).tobytes())
                    offsets.append(offsets[-1] + int(clip.numel()))
        atomic_write(tmp / "offsets.npy", lambda f: np.save(f, np.asarray(offsets, dtype=np.int64)), binary=True)
        atomic_write_text(tmp / "meta.json", json.dumps({"names": names, "bad": bad, "dtype": np.dtype(dtype).str,
                                                         "total": offsets[-1], "sample_rate": sample_rate,
                                                         "source": str(source.path)}))
        install_dir(tmp, folder, lambda f: _read_entry(f) is not None)
    except OSError:  # a full disk, a read-only cache: decode without it
        shutil.rmtree(tmp, ignore_errors=True)
        return _decode_in_memory(source, sample_rate)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    entry = _read_entry(folder)
    return entry if entry is not None else _decode_in_memory(source, sample_rate)


def _stored(clip: torch.Tensor, dtype: str) -> np.ndarray:
    x = clip.numpy()
    if np.dtype(dtype).kind == "i":
        return np.clip(np.rint(x * 32768.0), -32768, 32767).astype("<i2")
    return x.astype("<f4")


def _decode_in_memory(source: Source, sample_rate: int) -> Decoded:
    names, clips, bad = [], [], {}
    for chunk in _decoded_chunks(source, sample_rate):
        for name, clip in chunk:
            if isinstance(clip, str):
                bad[name] = clip
            else:
                names.append(name)
                clips.append(clip)
    return Decoded(names, Clips.from_list(clips), bad)


def _decoded_chunks(source: Source, sample_rate: int, size: int = 256
                    ) -> Iterator[list[tuple[str, torch.Tensor | str]]]:
    """(name, resampled clip) or (name, why it is bad), ``size`` members at a time."""
    pending: list[tuple[str, bytes]] = []

    def flush() -> list[tuple[str, torch.Tensor | str]]:
        decoded, results = [], {}
        for name, data in pending:
            try:
                decoded.append((name, *decode_audio(data)))
            except BadClip as err:
                results[name] = str(err)
            except NoDecoder as err:
                raise NoDecoder(f"{source.display(name)}: {err}") from None
        resampled = resample_many([x for _, x, _ in decoded], [r for _, _, r in decoded], sample_rate)
        for (name, _, _), clip in zip(decoded, resampled, strict=True):
            results[name] = clip
        return [(name, results[name]) for name, _ in pending]

    for item in source.members():
        pending.append(item)
        if len(pending) >= size:
            yield flush()
            pending = []
    if pending:
        yield flush()


def decoded(name: str, source: Source, sample_rate: int, dtype: str = "float32") -> Decoded:
    """Every clip of ``source`` at ``sample_rate``: from the cache, or decoded and cached."""
    folder = _entry_dir(name, source, sample_rate, dtype)
    return _read_entry(folder) or _write_entry(folder, source, sample_rate, dtype)


# --------------------------------------------------------------------------- options, labels and splits


def _options(dataset: str, options: dict[str, Any], own: Iterable[str]) -> dict[str, Any]:
    valid = (*COMMON_OPTIONS, *own)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"Unknown option '{unknown[0]}' for data set {dataset}. Valid: {', '.join(valid)}")
    rate, skip, least = (options.get("sample_rate", DEFAULT_SAMPLE_RATE), options.get("skip_bad", False),
                         options.get("min_samples", 1))
    if not isinstance(rate, int) or isinstance(rate, bool) or not 1000 <= rate <= 384_000:
        raise ConfigError(f"Bad value for 'dataset.options.sample_rate': {rate!r}; must be an integer in Hz "
                          "(1000 to 384000)")
    if not isinstance(skip, bool):
        raise ConfigError(f"Bad value for 'dataset.options.skip_bad': {skip!r}; valid: true or false")
    if not isinstance(least, int) or isinstance(least, bool) or least < 1:
        raise ConfigError(f"Bad value for 'dataset.options.min_samples': {least!r}; must be an integer >= 1")
    fraction, seed = options.get("test_fraction", 0.2), options.get("split_seed", 0)
    if not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0 < fraction < 1:
        raise ConfigError(f"Bad value for 'dataset.options.test_fraction': {fraction!r}; must be in (0, 1)")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"Bad value for 'dataset.options.split_seed': {seed!r}; must be an integer >= 0")
    return {"sample_rate": rate, "skip_bad": skip, "min_samples": least}


def _check_splits(dataset: str, splits: Sequence[str], valid: Sequence[str]) -> list[str]:
    requested = [splits] if isinstance(splits, str) else list(dict.fromkeys(splits))
    bad = [s for s in requested if s not in valid]
    if bad:
        raise ConfigError(f"{dataset} has no split {', '.join(map(repr, bad))}; valid splits: {', '.join(valid)}")
    return requested


def class_names(values: Iterable[str]) -> list[str]:
    """Sorted distinct values; numerically when every value is an integer (speaker ids, digits: 2 before 10)."""
    distinct = set(values)
    if distinct and all(v.isdigit() for v in distinct):
        return sorted(distinct, key=lambda v: (int(v), v))
    return sorted(distinct)


@dataclass
class Usable:
    """The clips a data set keeps, in its order, with their parsed name fields."""

    names: list[str]
    clips: Clips
    fields: list[dict[str, str]]
    skipped: list[str]  # names left out under skip_bad


def usable_clips(dataset: str, source: Source, found: Decoded, match: Callable[[str], dict[str, str] | None],
                 opts: dict[str, Any], what: str) -> Usable:
    """Apply the bad-clip policy: the decoded clips whose names ``match`` and that are at least ``min_samples``
    long, sorted by name; anything else is one DataFileError line naming the first (in name order), or, with
    ``skip_bad``, left out with one warning line counting them."""
    problems: dict[str, str] = dict(found.bad)
    keep: list[tuple[str, int, dict[str, str]]] = []
    lengths = found.clips.lengths.tolist()
    for i, name in enumerate(found.names):
        fields = match(name)
        if fields is None:
            problems[name] = f"does not match {what}"
        elif lengths[i] < opts["min_samples"]:
            sr = opts["sample_rate"]
            problems[name] = (f"is {lengths[i]} samples long ({lengths[i] / sr:.3f} s at {sr} Hz), shorter than "
                              f"min_samples={opts['min_samples']}")
        else:
            keep.append((name, i, fields))
    if problems:
        first = min(problems)
        line = f"{source.display(first)} {problems[first]}"
        if not opts["skip_bad"]:
            more = f" ({len(problems) - 1} more such clips)" if len(problems) > 1 else ""
            raise DataFileError(f"{line}{more}; set dataset.options.skip_bad: true to skip such clips")
        warn_once(f"{dataset}: skipped {len(problems)} of {len(found.names) + len(found.bad)} clips that cannot be "
                  f"used (skip_bad); the first: {line}", colour="yellow")
    keep.sort(key=lambda t: t[0])
    idx = torch.tensor([i for _, i, _ in keep], dtype=torch.int64)
    return Usable([n for n, _, _ in keep], found.clips[idx], [f for _, _, f in keep], sorted(problems))


def build_splits(dataset: str, source: Source, usable: Usable, label: str, targets: Sequence[str],
                 index: dict[str, np.ndarray], requested: list[str], sample_rate: int,
                 classes: list[str] | None = None) -> tuple[list[str], dict[str, list[str]], dict[str, Split]]:
    """Splits from the usable clips: ``label`` and each of ``targets`` are name fields turned into int64 class
    indices (classes from every usable clip, so labels do not depend on the splits asked for; ``classes`` fixes
    the label's classes)."""
    classes = classes or class_names(f[label] for f in usable.fields)
    names_of = {t: class_names(f[t] for f in usable.fields) for t in targets}
    lookup = {label: {c: i for i, c in enumerate(classes)}, **{t: {c: i for i, c in enumerate(n)}
                                                                for t, n in names_of.items()}}
    y = np.asarray([lookup[label][f[label]] for f in usable.fields], dtype=np.int64)
    extra_y = {t: np.asarray([lookup[t][f[t]] for f in usable.fields], dtype=np.int64) for t in targets}
    out = {}
    for s in requested:
        idx = index[s]
        if not len(idx):
            raise DataFileError(f"{dataset}: split {s} holds no clips (source {source.path})")
        t = torch.from_numpy(idx.astype(np.int64))
        out[s] = Split(labels=torch.from_numpy(y[idx]), samples=usable.clips[t],
                       targets={k: torch.from_numpy(v[idx]) for k, v in extra_y.items()},
                       extra={"files": [source.display(usable.names[i]) for i in idx.tolist()],
                              "sample_rate": sample_rate})
    return classes, names_of, out


def _fingerprint(source: Source, opts: dict[str, Any], usable: Usable, *more: str) -> str:
    parts = [source.fingerprint, f"sample_rate={opts['sample_rate']}", *more]
    if usable.skipped:
        parts.append("skipped=" + combine_fingerprints(usable.skipped))
    return combine_fingerprints(parts)


# --------------------------------------------------------------------------- FSDD


def _fsdd_source(root: Path, download: bool) -> Source:
    looked = []
    for folder in (root / "audio" / "fsdd", root / "audio" / "free-spoken-digit-dataset", root / "fsdd"):
        looked.append(folder / "recordings")
        if (folder / "recordings").is_dir():
            wavs = [f"recordings/{n}" for n in folder_files(folder / "recordings", (".wav",))]
            return folder_source(folder, wavs)
    for tarball in (root / "audio" / "fsdd.tar.gz", root / "fsdd.tar.gz"):
        looked.append(tarball)
        if tarball.is_file():
            return tar_source(tarball, lambda n: n.lower().endswith(".wav") and "recordings/" in n)
    if download:
        target = root / "audio" / "fsdd.tar.gz"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(FSDD_URL, str(target), progress=False)
        except Exception as err:  # noqa: BLE001 - urllib, OSError, ...
            raise DataNotFoundError(f"Could not download FSDD into {target.parent}: {one_line(err)}") from err
        return tar_source(target, lambda n: n.lower().endswith(".wav") and "recordings/" in n)
    raise DataNotFoundError(f"FSDD not found: looked for {', '.join(map(str, looked))}. Pass --download to fetch it "
                            f"({FSDD_URL}), or point --data-dir / SSLBENCH_DATA at a folder holding audio/fsdd.tar.gz.")


@register_dataset("fsdd", "audio", description="Free Spoken Digit Dataset: 3,000 spoken digits, 6 speakers, 8 kHz "
                  "resampled to 16 kHz; labels digit, target speaker; official test split = clip indices 0-4")
def load_fsdd(root: Path, splits: Sequence[str], download: bool = False, **options: Any
              ) -> tuple[DataInfo, dict[str, Split]]:
    """Free Spoken Digit Dataset (Jakobovski et al.): ``recordings/{digit}_{speaker}_{index}.wav``, 8 kHz mono.

    Read from ``{root}/audio/fsdd.tar.gz`` (streamed) or an extracted ``{root}/audio/fsdd/recordings/``; with
    ``download`` the repository's archive is fetched to ``{root}/audio/fsdd.tar.gz``. Official split (the
    dataset's README): indices 0-4 test (300 clips), 5-49 train (2,700); ``all`` is both. Labels: the digit (10
    classes); ``targets``: ``speaker`` (6, sorted names). Clips resampled to ``sample_rate`` (16000), sorted by
    file name. Options: sample_rate, skip_bad, min_samples."""
    opts = _options("fsdd", options, ())
    requested = _check_splits("fsdd", splits, ("train", "test", "all"))
    source = _fsdd_source(Path(root), download)
    found = decoded("fsdd", source, opts["sample_rate"])
    usable = usable_clips("fsdd", source, found, lambda n: _groups(FSDD_NAME, n), opts,
                          "recordings/{digit}_{speaker}_{index}.wav")
    test = np.asarray([int(f["index"]) <= 4 for f in usable.fields], dtype=bool)
    index = {"train": np.flatnonzero(~test), "test": np.flatnonzero(test), "all": np.arange(len(test))}
    classes, targets, out = build_splits("fsdd", source, usable, "digit", ["speaker"], index, requested,
                                         opts["sample_rate"], classes=[str(d) for d in range(10)])
    info = DataInfo(name="fsdd", modality="audio", num_classes=len(classes), classes=classes, channels=1,
                    fingerprint=_fingerprint(source, opts, usable), source=str(source.path), targets=targets)
    return info, out


def _groups(pattern: re.Pattern, name: str) -> dict[str, str] | None:
    m = pattern.search(name)
    return None if m is None else {k: v for k, v in m.groupdict().items() if v is not None}


# --------------------------------------------------------------------------- LibriSpeech train-clean-100


def _libri_folder(root: Path, download: bool) -> Path:
    candidates = [root / "audio" / "LibriSpeech" / "train-clean-100", root / "LibriSpeech" / "train-clean-100"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    if download:
        try:
            from torchaudio.datasets import LIBRISPEECH

            (root / "audio").mkdir(parents=True, exist_ok=True)
            LIBRISPEECH(str(root / "audio"), url="train-clean-100", download=True)
        except Exception as err:  # noqa: BLE001 - network, disk, a torchaudio without datasets
            raise DataNotFoundError(f"Could not download LibriSpeech train-clean-100 into {root / 'audio'}: "
                                    f"{one_line(err)}") from err
        if candidates[0].is_dir():
            return candidates[0]
    raise DataNotFoundError(f"LibriSpeech train-clean-100 not found: looked for {', '.join(map(str, candidates))}. "
                            "Pass --download to fetch it (6.3 GB, https://www.openslr.org/12), or point --data-dir / "
                            "SSLBENCH_DATA at a folder holding audio/LibriSpeech/train-clean-100/<speaker>/<chapter>/.")


PHONES_FILE = "converted_aligned_phones.txt"  # CPC_audio's LibriSpeech-100 phone alignment (41 classes)


def _read_ids(path: Path) -> set[str]:
    try:
        return {ln.strip() for ln in path.read_text().split("\n") if ln.strip()}
    except (OSError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path} cannot be read as a list of utterance ids: {one_line(err)}") from err


def read_frame_labels(path: Path) -> dict[str, torch.Tensor]:
    """CPC_audio's frame alignment file (``converted_aligned_phones.txt``): one utterance a line, its id then one
    integer class per 10 ms frame (``103-1240-0000 0 0 12 12 ...``) -> {id: int64 T}."""
    out: dict[str, torch.Tensor] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path} cannot be read as a frame alignment: {one_line(err)}") from err
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            labels = [int(p) for p in parts[1:]]
        except ValueError:
            raise DataFileError(f"{path}:{n}: expected '<utterance id> <integer label per 10 ms frame> ...', got "
                                f"{line[:60]!r}") from None
        if not labels or min(labels) < 0:
            raise DataFileError(f"{path}:{n}: utterance {parts[0]} has no frame labels or a negative one")
        out[parts[0]] = torch.tensor(labels, dtype=torch.int64)
    if not out:
        raise DataFileError(f"{path} holds no frame alignment lines")
    return out


@register_dataset("librispeech100", "audio", description="LibriSpeech train-clean-100 (CPC's setting): 251 speakers, "
                  "16 kHz FLAC; labels speaker; the CPC split files when given, else a seeded 80/20 per speaker")
def load_librispeech100(root: Path, splits: Sequence[str], download: bool = False, **options: Any
                        ) -> tuple[DataInfo, dict[str, Split]]:
    """LibriSpeech train-clean-100 (Panayotov et al. 2015): ``{root}/audio/LibriSpeech/train-clean-100/<speaker>/
    <chapter>/<speaker>-<chapter>-<utt>.flac`` (torchaudio's LIBRISPEECH layout; fetched by it with ``download``).

    Labels: speaker (251, sorted by id); ``targets``: ``chapter``, and ``speaker`` again (the labels, so that
    ``cpc.audio`` can draw same-speaker negatives through ``group_by``). Split: the CPC authors' utterance lists
    (``split_files: [train_split.txt, test_split.txt]``, one utterance id a line, as CPC_audio reads them; by
    default looked for beside ``train-clean-100``), else a seeded stratified split per speaker (``test_fraction``
    0.2, ``split_seed`` 0): the CPC speaker probe splits each speaker's utterances. FLAC needs ``soundfile``.
    Decoded once (about 100 hours, int16 in the cache: 11.5 GB at 16 kHz), memory-mapped after."""
    opts = _options("librispeech100", options, ("split_files", "test_fraction", "split_seed", "phones"))
    requested = _check_splits("librispeech100", splits, ("train", "test", "all"))
    folder = _libri_folder(Path(root), download)
    names = folder_files(folder, (".flac",))
    if not names:
        raise DataFileError(f"{folder} holds no .flac files (expected <speaker>/<chapter>/<speaker>-<chapter>-<utt>"
                            ".flac)")
    source = folder_source(folder, names)
    found = decoded("librispeech100", source, opts["sample_rate"], dtype="int16")
    usable = usable_clips("librispeech100", source, found, lambda n: _groups(LIBRI_NAME, n), opts,
                          "<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac")
    ids = [PurePosixPath(n).stem for n in usable.names]
    files = options.get("split_files")
    if files is None:
        default = [folder.parent / "train_split.txt", folder.parent / "test_split.txt"]
        files = default if all(p.is_file() for p in default) else None
    extra = []
    if files is not None:
        if not (isinstance(files, list | tuple) and len(files) == 2):
            raise ConfigError(f"Bad value for 'dataset.options.split_files': {files!r}; must be [train list, test list]")
        paths = [(Path(root) / Path(p).expanduser()).resolve() for p in files]
        train_ids, test_ids = (_read_ids(p) for p in paths)
        index = {"train": np.asarray([i for i, u in enumerate(ids) if u in train_ids], dtype=np.int64),
                 "test": np.asarray([i for i, u in enumerate(ids) if u in test_ids], dtype=np.int64)}
        extra = [f"split_files={file_sha256(paths[0])},{file_sha256(paths[1])}"]
    else:
        y = np.asarray([int(f["speaker"]) for f in usable.fields])
        index = stratified_split(y, float(options.get("test_fraction", 0.2)), int(options.get("split_seed", 0)))
        extra = [f"test_fraction={float(options.get('test_fraction', 0.2))}",
                 f"split_seed={int(options.get('split_seed', 0))}"]
    index["all"] = np.arange(len(ids))
    classes, targets, out = build_splits("librispeech100", source, usable, "speaker", ["chapter", "speaker"], index, requested,
                                         opts["sample_rate"])
    phones, frame_targets = options.get("phones"), {}
    if phones is None and (folder.parent / PHONES_FILE).is_file():
        phones = folder.parent / PHONES_FILE
    if phones is not None:  # CPC's phone alignment: frame labels for frame_linear
        path = (Path(root) / Path(str(phones)).expanduser()).resolve()
        if not path.is_file():
            raise DataNotFoundError(f"Bad value for 'dataset.options.phones': {path} is not a file (CPC_audio's "
                                    f"{PHONES_FILE}: '<utterance id> <phone per 10 ms> ...' lines)")
        aligned = read_frame_labels(path)
        count = 1 + max(int(v.max()) for v in aligned.values())
        frame_targets = {"phone": [str(i) for i in range(count)]}
        none = torch.zeros(0, dtype=torch.int64)
        for name, split in out.items():
            split.frame_targets = {"phone": [aligned.get(ids[i], none) for i in index[name].tolist()]}
        extra.append(f"phones={file_sha256(path)}")
    info = DataInfo(name="librispeech100", modality="audio", num_classes=len(classes), classes=classes, channels=1,
                    fingerprint=_fingerprint(source, opts, usable, *extra), source=str(folder), targets=targets,
                    frame_targets=frame_targets)
    return info, out


# --------------------------------------------------------------------------- any folder of WAV/FLAC files


@register_dataset("audiofolder", "audio", description="Any folder of WAV/FLAC files, labels parsed from the file path "
                  "by a regex (named groups: label and further targets)")
def load_audiofolder(root: Path, splits: Sequence[str], download: bool = False, **options: Any
                     ) -> tuple[DataInfo, dict[str, Split]]:
    """Every ``.wav``/``.flac`` file under ``path`` (relative to the data root, or absolute; recursively).

    ``pattern``: a regular expression searched in each file's path relative to ``path`` (posix, e.g.
    ``spk1/7_take3.wav``; a flat folder's is the file name); its named group ``label`` (or the group the
    option ``label`` names) is the primary label, every other named group a further label set
    (``DataInfo.targets``). Default ``^(?P<label>[^/]+)/``: the first folder is the class. A file that does
    not match is a bad clip (one line, or skipped under ``skip_bad``). Split: ``test_pattern`` (a regex searched
    in the relative path: matching files are the test split) or a seeded stratified split on the label
    (``test_fraction`` 0.2, ``split_seed`` 0); ``all`` is every clip. ``name`` names the set in DataInfo."""
    opts = _options("audiofolder", options, ("path", "pattern", "label", "test_pattern", "test_fraction",
                                              "split_seed", "name"))
    requested = _check_splits("audiofolder", splits, ("train", "test", "all"))
    if options.get("path") is None:
        raise ConfigError("audiofolder needs the option path=<folder of .wav/.flac files>")
    folder = (Path(root) / Path(str(options["path"])).expanduser()).resolve()
    if not folder.is_dir():
        raise DataNotFoundError(f"Audio folder not found: {folder}")
    pattern = _regex("pattern", options.get("pattern", r"^(?P<label>[^/]+)/"))
    label = options.get("label", "label")
    if label not in pattern.groupindex:
        raise ConfigError(f"Bad value for 'dataset.options.pattern': {pattern.pattern!r} has no named group "
                          f"{label!r} (the label; named groups: {', '.join(pattern.groupindex) or 'none'})")
    test_pattern = _regex("test_pattern", options["test_pattern"]) if options.get("test_pattern") else None
    names = folder_files(folder)
    if not names:
        raise DataFileError(f"{folder} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    source = folder_source(folder, names)
    found = decoded("audiofolder", source, opts["sample_rate"])
    usable = usable_clips("audiofolder", source, found, lambda n: _groups(pattern, n), opts,
                          f"pattern {pattern.pattern!r}")
    if not usable.names:
        raise DataFileError(f"{folder}: no usable clips")
    targets = [g for g in pattern.groupindex if g != label]
    for f, n in zip(usable.fields, usable.names, strict=True):
        missing = [g for g in (label, *targets) if g not in f]
        if missing:
            raise DataFileError(f"{source.display(n)}: pattern group {missing[0]!r} matched nothing")
    if test_pattern is not None:
        test = np.asarray([test_pattern.search(n) is not None for n in usable.names], dtype=bool)
        index = {"train": np.flatnonzero(~test), "test": np.flatnonzero(test)}
        extra = [f"test_pattern={test_pattern.pattern}"]
    else:
        y = np.asarray([f[label] for f in usable.fields])
        fraction, seed = float(options.get("test_fraction", 0.2)), int(options.get("split_seed", 0))
        index = stratified_split(np.unique(y, return_inverse=True)[1], fraction, seed)
        extra = [f"test_fraction={fraction}", f"split_seed={seed}"]
    index["all"] = np.arange(len(usable.names))
    classes, target_names, out = build_splits("audiofolder", source, usable, label, targets, index, requested,
                                              opts["sample_rate"])
    info = DataInfo(name=str(options.get("name", "audiofolder")), modality="audio", num_classes=len(classes),
                    classes=classes, channels=1, fingerprint=_fingerprint(source, opts, usable, f"pattern="
                                                                          f"{pattern.pattern}", f"label={label}",
                                                                          *extra),
                    source=str(folder), targets=target_names)
    return info, out


def _regex(option: str, value: Any) -> re.Pattern:
    try:
        return re.compile(str(value))
    except re.error as err:
        raise ConfigError(f"Bad value for 'dataset.options.{option}': {value!r} is not a regular expression: "
                          f"{err}") from err


__all__ = ["Clips", "decode_audio", "resample_many", "load_fsdd", "load_librispeech100", "load_audiofolder",
           "DEFAULT_SAMPLE_RATE", "class_names"]
