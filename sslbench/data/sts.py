"""Semantic textual similarity (STS) files: STS12-16, STS Benchmark and SICK-R, read for the ``sts`` protocol.

The files are not downloaded here. They are the ones SentEval's ``data/downstream/get_transfer_data.bash``
fetches (https://github.com/facebookresearch/SentEval; SimCSE ships the same files, already tokenised,
in ``senteval.tar``, https://github.com/princeton-nlp/SimCSE, ``SentEval/data/downstream/download_dataset.sh``).
Put them under the data root in SentEval's downstream layout, with SentEval's ``STS/`` folder renamed
``sts/`` and its ``SICK/`` folder moved into it::

    <root>/sts/STS12-en-test/STS.input.<topic>.txt, STS.gs.<topic>.txt     (likewise STS13..STS16-en-test)
    <root>/sts/STSBenchmark/sts-train.csv, sts-dev.csv, sts-test.csv
    <root>/sts/SICK/SICK_train.txt, SICK_trial.txt, SICK_test_annotated.txt

Formats (all UTF-8, as SentEval reads them; lines end at ``\\n``):

* STS12-16 (SemEval tasks, Agirre et al. 2012-2016): per topic, ``STS.input.<topic>.txt`` holds one
  tab-separated pair per line (sentence 1, sentence 2; further columns, which some STS16 files carry,
  are ignored) and ``STS.gs.<topic>.txt`` the gold score (0-5) on the same line number; an EMPTY gold
  line means the pair has no gold score and is dropped (as SentEval does). The topics of each year are
  SentEval's (:data:`STS_TOPICS`; STS13's licensed SMT topic is left out, as in SentEval). SentEval's
  script renames STS16's ``STS2016.input.*``/``STS2016.gs.*`` files to these names.
* STS Benchmark (Cer et al. 2017): ``sts-<split>.csv``, tab-separated, NOT CSV-quoted: genre, file,
  year, id, score (0-5), sentence 1, sentence 2, and on some lines further columns (ignored).
* SICK relatedness (Marelli et al. 2014): ``SICK_<split>.txt``, tab-separated with a header naming
  ``pair_ID``, ``sentence_A``, ``sentence_B``, ``relatedness_score`` (1-5) and ``entailment_judgment``;
  columns are found by their header names.

Splits: STS12-16 only have ``test``. STS-B and SICK-R have ``train``, ``dev`` (SICK: ``SICK_trial.txt``)
and ``test``. Sentences are whitespace-normalised (runs of blanks become one space; SentEval splits
each sentence into words and SimCSE's batcher joins them with one space). A missing file is one
:class:`~sslbench.errors.DataNotFoundError` line naming the path; an unusable line is one
:class:`~sslbench.data.base.DataFileError` line ``path:line: what is wrong``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataNotFoundError
from .base import DataFileError, one_line
from .fingerprint import files_fingerprint

SENTEVAL_STS_URL = ("SentEval's data/downstream/get_transfer_data.bash "
                    "(https://github.com/facebookresearch/SentEval)")

STS_TOPICS: dict[str, tuple[str, ...]] = {
    "sts12": ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    "sts13": ("FNWN", "headlines", "OnWN"),  # SMT is licensed: not distributed, left out as in SentEval
    "sts14": ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    "sts15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "sts16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}
STS_FOLDERS = {name: f"STS{name[3:]}-en-test" for name in STS_TOPICS}  # sts12 -> STS12-en-test
STSB_FILES = {"train": "sts-train.csv", "dev": "sts-dev.csv", "test": "sts-test.csv"}
SICK_FILES = {"train": "SICK_train.txt", "dev": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}
SICK_COLUMNS = ("sentence_A", "sentence_B", "relatedness_score")

TASKS: tuple[str, ...] = (*STS_TOPICS, "stsb", "sickr")  # SimCSE's table order
TASK_TITLES = {"sts12": "STS12", "sts13": "STS13", "sts14": "STS14", "sts15": "STS15", "sts16": "STS16",
               "stsb": "STS-B", "sickr": "SICK-R"}
SCORE_RANGE = (0.0, 5.0)  # STS gold scores are 0-5, SICK relatedness 1-5


@dataclass
class STSData:
    """One task's pairs: ``pairs[i]`` = (sentence 1, sentence 2), ``scores[i]`` its gold score (float64),
    ``topics[i]`` the topic (STS12-16) or the split name (STS-B, SICK-R) it came from; ``files`` the files
    read, ``fingerprint`` their contents' fingerprint."""

    task: str
    split: str
    pairs: list[tuple[str, str]]
    scores: np.ndarray
    topics: list[str]
    files: list[Path] = field(default_factory=list)
    fingerprint: str = ""

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def topic_names(self) -> list[str]:
        """The topics in file order (each once)."""
        return list(dict.fromkeys(self.topics))


def check_task(task: str, split: str = "test") -> None:
    """One-line ConfigError for a task or split that does not exist."""
    if task not in TASKS:
        raise ConfigError(f"Unknown STS task {task!r}; valid: {', '.join(TASKS)}")
    valid = ("test",) if task in STS_TOPICS else tuple(STSB_FILES)
    if split not in valid:
        raise ConfigError(f"{task} has no split {split!r}; valid splits: {', '.join(valid)}")


def task_files(root: Path, task: str, split: str = "test") -> list[Path]:
    """The files ``task`` (one of :data:`TASKS`) needs under the data root ``root`` (for preflight checks).
    STS12-16 have only a test split: their ``split`` must be ``test``."""
    check_task(task, split)
    base = Path(root) / "sts"
    if task in STS_TOPICS:
        folder = base / STS_FOLDERS[task]
        return [folder / f"STS.{kind}.{topic}.txt" for topic in STS_TOPICS[task] for kind in ("input", "gs")]
    if task == "stsb":
        return [base / "STSBenchmark" / STSB_FILES[split]]
    return [base / "SICK" / SICK_FILES[split]]


def missing_files(root: Path, task: str, split: str = "test") -> list[Path]:
    return [p for p in task_files(root, task, split) if not p.is_file()]


def require_files(root: Path, tasks: list[str] | tuple[str, ...], split: str = "test") -> None:
    """Raise one DataNotFoundError line naming the first missing file (and how many more) of ``tasks``."""
    missing: list[tuple[str, Path]] = []
    for task in tasks:
        missing += [(task, p) for p in missing_files(root, task, _task_split(task, split))]
    if missing:
        task, path = missing[0]
        more = f" (and {len(missing) - 1} more STS file{'s' * (len(missing) > 2)})" if len(missing) > 1 else ""
        raise DataNotFoundError(
            f"{task}: {path} not found{more}; get the STS files with {SENTEVAL_STS_URL} and put SentEval's "
            f"STS/* folders and SICK/ under {Path(root) / 'sts'}/ (set the data root with --data-dir or "
            f"SSLBENCH_DATA)")


def _task_split(task: str, split: str) -> str:
    """The split read for ``task``: STS12-16 always ``test`` (their only split)."""
    return "test" if task in STS_TOPICS else split


def load_sts(root: Path, task: str, split: str = "test") -> STSData:
    """Read ``task``'s pairs and gold scores from under ``root`` (see the module docstring). ``split`` is
    used by STS-B and SICK-R; STS12-16 always read their test files."""
    split = _task_split(task, split)
    check_task(task, split)
    require_files(root, [task], split)
    files = task_files(root, task, split)
    if task in STS_TOPICS:
        pairs: list[tuple[str, str]] = []
        scores: list[float] = []
        topics: list[str] = []
        for topic, input_path, gs_path in zip(STS_TOPICS[task], files[0::2], files[1::2], strict=True):
            p, s = read_sts_topic(input_path, gs_path)
            pairs += p
            scores += s
            topics += [topic] * len(p)
    elif task == "stsb":
        pairs, scores = read_stsb(files[0])
        topics = [split] * len(pairs)
    else:
        pairs, scores = read_sick(files[0])
        topics = [split] * len(pairs)
    if not pairs:
        raise DataFileError(f"{task}: {', '.join(map(str, files))} hold no scored pairs")
    return STSData(task=task, split=split, pairs=pairs, scores=np.asarray(scores, dtype=np.float64), topics=topics,
                   files=files, fingerprint=files_fingerprint(files))


# ------------------------------------------------------------------------------------------------ readers


def _lines(path: Path) -> list[str]:
    """The file's lines (UTF-8, split at ``\\n`` only, ``\\r`` stripped; a final newline ends the last line)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFileError(f"{path} cannot be read: {one_line(err)}") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DataFileError(f"{path}:{line}: not UTF-8 text ({one_line(err)})") from err
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _sentence(text: str) -> str:
    return " ".join(text.split())


def _score(value: str, path: Path, n: int, what: str = "gold score") -> float:
    try:
        score = float(value)
    except ValueError:
        raise DataFileError(f"{path}:{n}: {what} {value.strip()!r} is not a number") from None
    lo, hi = SCORE_RANGE
    if not math.isfinite(score) or not lo <= score <= hi:
        raise DataFileError(f"{path}:{n}: {what} {value.strip()!r} is outside {lo:g}-{hi:g}")
    return score


def read_sts_topic(input_path: Path, gs_path: Path) -> tuple[list[tuple[str, str]], list[float]]:
    """One STS12-16 topic: the pairs of ``STS.input.<topic>.txt`` with the gold scores of ``STS.gs.<topic>.txt``;
    pairs whose gold line is empty are dropped."""
    inputs, golds = _lines(input_path), _lines(gs_path)
    if len(inputs) != len(golds):
        raise DataFileError(f"{gs_path}: {len(golds)} lines but {input_path.name} has {len(inputs)} pairs "
                            f"(one gold line, possibly empty, per pair)")
    pairs, scores = [], []
    for n, (line, gold) in enumerate(zip(inputs, golds, strict=True), 1):
        if not gold.strip():
            continue  # no gold score for this pair
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataFileError(f"{input_path}:{n}: no tab; expected sentence 1 <TAB> sentence 2")
        scores.append(_score(gold, gs_path, n))
        pairs.append((_sentence(fields[0]), _sentence(fields[1])))
    return pairs, scores


def read_stsb(path: Path) -> tuple[list[tuple[str, str]], list[float]]:
    """An STS Benchmark ``sts-<split>.csv``: columns 5 (score), 6 and 7 (sentences) of the tab-separated
    line; extra columns are ignored; blank lines are passed over."""
    pairs, scores = [], []
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 7:
            raise DataFileError(f"{path}:{n}: {len(fields)} tab-separated fields, expected at least 7 (genre, "
                                f"file, year, id, score, sentence 1, sentence 2)")
        scores.append(_score(fields[4], path, n, "score"))
        pairs.append((_sentence(fields[5]), _sentence(fields[6])))
    return pairs, scores


def read_sick(path: Path) -> tuple[list[tuple[str, str]], list[float]]:
    """A SICK file (``SICK_test_annotated.txt``...): header line, then tab-separated rows; sentence_A,
    sentence_B and relatedness_score found by the header's names."""
    lines = _lines(path)
    header = lines[0].split("\t") if lines else []
    names = [h.strip() for h in header]
    absent = [c for c in SICK_COLUMNS if c not in names]
    if absent:
        raise DataFileError(f"{path}:1: the header has no column {', '.join(absent)} (it has: "
                            f"{', '.join(names) or 'nothing'}); expected SICK's pair_ID, sentence_A, sentence_B, "
                            f"relatedness_score, entailment_judgment")
    a, b, s = (names.index(c) for c in SICK_COLUMNS)
    width = max(a, b, s) + 1
    pairs, scores = [], []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < width:
            raise DataFileError(f"{path}:{n}: {len(fields)} tab-separated fields, expected at least {width}")
        scores.append(_score(fields[s], path, n, "relatedness_score"))
        pairs.append((_sentence(fields[a]), _sentence(fields[b])))
    return pairs, scores


__all__ = ["STSData", "STS_TOPICS", "STS_FOLDERS", "TASKS", "TASK_TITLES", "check_task", "task_files",
           "missing_files", "require_files", "load_sts", "read_sts_topic", "read_stsb", "read_sick"]
