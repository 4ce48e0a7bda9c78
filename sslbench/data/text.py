"""Text classification data sets: GLUE tasks as TSV and the SentEval classification files, one loader.

Each task is a small :class:`TextTask` spec (files per split, text columns, label column, label values
and names, encoding) registered as a data set of the ``text`` modality. Files are read from the data
root; nothing is downloaded here (a missing file is one DataNotFoundError line naming what was looked
for and the official source to fetch it from).

Layout under the data root::

    text/<task>/train.tsv, dev.tsv            GLUE (sst2, rte, cola, mrpc, qnli, qqp; mnli: dev_matched.tsv,
                                              dev_mismatched.tsv)
    text/senteval/<file> or text/<task>/<file> SentEval (rt-polarity.all, custrev.all, mpqa.all, subj.all,
                                              TREC.{train,test}.all, stsa.fine.*, stsa.binary.*)

Splits: GLUE's test labels are hidden, so split ``test`` is the GLUE dev set (``dev.tsv``; also named
``dev``), as few-shot papers evaluate. SentEval's MR, CR, MPQA and SUBJ come as one file without an
official split (SentEval itself cross-validates): ``train``/``test`` is a seeded, stratified split
(options ``test_fraction``, default 0.2, and ``split_seed``, default 0; as the torchvision sets without
splits), and ``all`` is the whole file. Option ``balanced_test: true`` (any task) keeps a seeded class-balanced
sample of the test split (every class cut to the smallest class's count). Samples: a list of str, or of
(str, str) for pair tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataNotFoundError
from ..plugins import register_dataset
from .base import DataFileError, DataInfo, Split, one_line, stratified_split
from .fingerprint import combine_fingerprints, files_fingerprint

GLUE_URL = "https://gluebenchmark.com/tasks (zips: https://dl.fbaipublicfiles.com/glue/data/{zip})"
SENTEVAL_URL = ("https://github.com/harvardnlp/sent-conv-torch/tree/master/data (the label-first .all files; "
                "SentEval's originals: https://github.com/facebookresearch/SentEval, data/downstream/get_transfer_data.bash)")


@dataclass(frozen=True)
class TextTask:
    """How one task's files are read.

    files:      split name -> file name (GLUE: tab-separated; SentEval: ``label sentence`` per line)
    columns:    the text column(s): one for sentences, two for pairs (header names, or int positions when
                ``header`` is False)
    label:      the label column (name or position); SentEval: the first word of the line
    values:     the label values as written in the file, in class order
    classes:    the class names (default: the values)
    split_all:  the file split into train/test with a seeded stratified split (no official split)
    """

    name: str
    kind: str  # "glue" | "senteval"
    files: dict[str, str]
    values: tuple[str, ...]
    classes: tuple[str, ...] = ()
    columns: tuple[Any, ...] = ("sentence",)
    label: Any = "label"
    header: bool = True
    encoding: str = "utf-8"
    split_all: bool = False
    source: str = ""
    description: str = ""
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes or self.values)


def _glue(name: str, zip_name: str, description: str, columns: tuple[Any, ...], values: tuple[str, ...],
          classes: tuple[str, ...], label: Any = "label", header: bool = True,
          files: dict[str, str] | None = None) -> TextTask:
    return TextTask(name=name, kind="glue", files=files or {"train": "train.tsv", "test": "dev.tsv"}, values=values,
                    classes=classes, columns=columns, label=label, header=header,
                    source=GLUE_URL.format(zip=zip_name), description=description, aliases={"dev": "test"})


BINARY = ("0", "1")
POLARITY = ("negative", "positive")

TASKS: tuple[TextTask, ...] = (
    _glue("sst2", "SST-2.zip", "GLUE SST-2: movie-review sentence sentiment, 2 classes (test = GLUE dev)",
          ("sentence",), BINARY, POLARITY),
    _glue("rte", "RTE.zip", "GLUE RTE: textual entailment, sentence pairs, 2 classes (test = GLUE dev)",
          ("sentence1", "sentence2"), ("entailment", "not_entailment"), ()),
    _glue("cola", "CoLA.zip", "GLUE CoLA: grammatical acceptability, 2 classes (test = GLUE dev)",
          (3,), BINARY, ("unacceptable", "acceptable"), label=1, header=False),
    _glue("mrpc", "MRPC (from Microsoft, see the GLUE site)", "GLUE MRPC: paraphrase sentence pairs, 2 classes "
          "(test = GLUE dev)", ("#1 String", "#2 String"), BINARY, ("not_equivalent", "equivalent"), label="Quality"),
    _glue("qnli", "QNLIv2.zip", "GLUE QNLI: question-sentence entailment pairs, 2 classes (test = GLUE dev)",
          ("question", "sentence"), ("entailment", "not_entailment"), ()),
    _glue("mnli", "MNLI.zip", "GLUE MNLI: entailment pairs, 3 classes (test = GLUE dev matched)",
          ("sentence1", "sentence2"), ("entailment", "neutral", "contradiction"), (), label="gold_label",
          files={"train": "train.tsv", "test": "dev_matched.tsv", "test_mismatched": "dev_mismatched.tsv"}),
    _glue("qqp", "QQP-clean.zip", "GLUE QQP: duplicate question pairs, 2 classes (test = GLUE dev)",
          ("question1", "question2"), BINARY, ("not_duplicate", "duplicate"), label="is_duplicate"),
    TextTask("mr", "senteval", {"all": "rt-polarity.all"}, BINARY, POLARITY, encoding="latin-1", split_all=True,
             source=SENTEVAL_URL, description="SentEval MR: movie-review sentences (Pang & Lee), 2 classes, 10,662"),
    TextTask("cr", "senteval", {"all": "custrev.all"}, BINARY, POLARITY, encoding="latin-1", split_all=True,
             source=SENTEVAL_URL, description="SentEval CR: customer reviews (Hu & Liu), 2 classes, 3,775"),
    TextTask("mpqa", "senteval", {"all": "mpqa.all"}, BINARY, POLARITY, encoding="latin-1", split_all=True,
             source=SENTEVAL_URL, description="SentEval MPQA: opinion polarity phrases (Wiebe et al.), 2 classes"),
    TextTask("subj", "senteval", {"all": "subj.all"}, BINARY, (), encoding="latin-1", split_all=True,
             source=SENTEVAL_URL, description="SentEval SUBJ: subjectivity (Pang & Lee), 2 classes"),
    TextTask("trec", "senteval", {"train": "TREC.train.all", "test": "TREC.test.all"},
             tuple(str(i) for i in range(6)), (), encoding="latin-1", source=SENTEVAL_URL,
             description="SentEval TREC: question types, 6 classes"),
    TextTask("sst5", "senteval", {"train": "stsa.fine.train", "dev": "stsa.fine.dev", "test": "stsa.fine.test"},
             tuple(str(i) for i in range(5)), ("very negative", "negative", "neutral", "positive", "very positive"),
             source=SENTEVAL_URL, description="SentEval SST-5: fine-grained sentiment, 5 classes"),
    TextTask("sst2-senteval", "senteval", {"train": "stsa.binary.train", "dev": "stsa.binary.dev",
                                           "test": "stsa.binary.test"}, BINARY, POLARITY, source=SENTEVAL_URL,
             description="SentEval SST-2 (stsa.binary, official test set), 2 classes"),
)
OWN_OPTIONS = ("test_fraction", "split_seed")
# every task: ``balanced_test: true`` keeps a seeded class-balanced sample of the test split (each class cut to
# the smallest class's count, with ``split_seed``), the test set of the SCL few-shot reproductions
ANY_TASK_OPTIONS = ("balanced_test", "split_seed")


def balanced_sample(labels: np.ndarray, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced subset: every class cut to the smallest class's count, seeded."""
    rng = np.random.default_rng(int(seed))
    classes, counts = np.unique(labels, return_counts=True)
    keep = [np.flatnonzero(labels == c)[rng.permutation(int((labels == c).sum()))[: counts.min()]] for c in classes]
    return np.sort(np.concatenate(keep))


def task_folders(root: Path, task: TextTask) -> list[Path]:
    """Where a task's files are looked for, in order."""
    folders = [root / "text" / task.name]
    if task.kind == "senteval":
        folders.append(root / "text" / "senteval")
    return folders


def find_file(root: Path, task: TextTask, file: str) -> Path:
    folders = task_folders(root, task)
    for folder in folders:
        if (folder / file).is_file():
            return folder / file
    looked = " or ".join(str(f / file) for f in folders)
    raise DataNotFoundError(f"{task.name}: {looked} not found; download it from {task.source} "
                            f"(set the data root with --data-dir or SSLBENCH_DATA)")


def read_rows(path: Path, task: TextTask) -> tuple[list[Any], list[int]]:
    """The file's samples (str, or (str, str) for pairs) and integer labels; unlabelled rows are skipped."""
    try:
        text = path.read_text(encoding=task.encoding)
    except (OSError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path} cannot be read as {task.encoding} text: {one_line(err)}") from err
    # split on newlines only: str.splitlines also breaks at U+0085, which rt-polarity.all's Latin-1 holds
    lines = [ln.rstrip("\r") for ln in text.split("\n") if ln.strip()]
    label_of = {v: i for i, v in enumerate(task.values)}
    samples: list[Any] = []
    labels: list[int] = []
    if task.kind == "senteval":
        for n, line in enumerate(lines, 1):
            value, _, sentence = line.strip().partition(" ")
            if value not in label_of:
                raise DataFileError(f"{path}:{n}: label {value!r} is not one of {', '.join(task.values)}")
            samples.append(sentence.strip())
            labels.append(label_of[value])
        return samples, labels
    start = 0
    if task.header:
        names = lines[0].split("\t") if lines else []
        missing = [c for c in (*task.columns, task.label) if c not in names]
        if missing:
            raise DataFileError(f"{path} has no column {', '.join(map(repr, missing))} in its header "
                                f"(it has: {', '.join(names) or 'none'})")
        cols, label_col, start = [names.index(c) for c in task.columns], names.index(task.label), 1
    else:
        cols, label_col = list(task.columns), task.label
    width = max(*cols, label_col) + 1
    for n, line in enumerate(lines[start:], start + 1):
        fields = line.split("\t")
        if len(fields) < width:
            raise DataFileError(f"{path}:{n}: {len(fields)} tab-separated fields, expected at least {width}")
        value = fields[label_col].strip()
        if value in ("", "-"):  # MNLI's rows without a gold label
            continue
        if value not in label_of:
            raise DataFileError(f"{path}:{n}: label {value!r} is not one of {', '.join(task.values)}")
        texts = tuple(fields[c].strip() for c in cols)
        samples.append(texts[0] if len(texts) == 1 else texts)
        labels.append(label_of[value])
    return samples, labels


def load_task(task: TextTask, root: Path, splits: Sequence[str], download: bool = False,
              **options: Any) -> tuple[DataInfo, dict[str, Split]]:
    """Read the task's files under ``root`` (see the module docstring) into ``{split: Split}``."""
    allowed = tuple(dict.fromkeys((*(OWN_OPTIONS if task.split_all else ()), *ANY_TASK_OPTIONS)))
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"Unknown option '{unknown[0]}' for data set {task.name}. Valid: {', '.join(allowed)}")
    balanced = options.get("balanced_test", False)
    if not isinstance(balanced, bool):
        raise ConfigError(f"Bad value for 'dataset.options.balanced_test': {balanced!r}; valid: true or false")
    valid = (["train", "test", "all"] if task.split_all else list(task.files)) + list(task.aliases)
    requested = [splits] if isinstance(splits, str) else list(dict.fromkeys(splits))
    bad = [s for s in requested if s not in valid]
    if bad:
        raise ConfigError(f"{task.name} has no split {', '.join(map(repr, bad))}; valid splits: {', '.join(valid)}")
    out: dict[str, Split] = {}
    read: list[Path] = []
    if task.split_all:
        path = find_file(root, task, task.files["all"])
        samples, labels = read_rows(path, task)
        read.append(path)
        y = np.asarray(labels, dtype=np.int64)
        index = stratified_split(y, float(options.get("test_fraction", 0.2)), int(options.get("split_seed", 0)))
        for s in requested:
            idx = index[s]
            out[s] = Split(labels=torch.from_numpy(y[idx]), samples=[samples[i] for i in idx.tolist()])
        extra = [f"test_fraction={float(options.get('test_fraction', 0.2))}",
                 f"split_seed={int(options.get('split_seed', 0))}"]
    else:
        extra = []
        for s in requested:
            path = find_file(root, task, task.files[task.aliases.get(s, s)])
            samples, labels = read_rows(path, task)
            read.append(path)
            out[s] = Split(labels=torch.tensor(labels, dtype=torch.int64), samples=samples)
    for s, split in out.items():
        if not len(split):
            raise DataFileError(f"{task.name}: split {s} holds no labelled rows")
    if balanced and "test" in out:
        seed = int(options.get("split_seed", 0))
        idx = torch.from_numpy(balanced_sample(out["test"].labels.numpy(), seed))
        out["test"] = Split(labels=out["test"].labels[idx], samples=[out["test"].samples[i] for i in idx.tolist()])
        extra.append(f"balanced_test=True,split_seed={seed}")
    fingerprint = combine_fingerprints([files_fingerprint(sorted(set(read))), *extra])
    info = DataInfo(name=task.name, modality="text", num_classes=len(task.values), classes=task.class_names,
                    channels=0, fingerprint=fingerprint, source=", ".join(str(p) for p in sorted(set(read))))
    return info, out


def _register(task: TextTask) -> None:
    def load(root: Path, splits: Sequence[str], download: bool = False, **options: Any):
        return load_task(task, Path(root), splits, download, **options)

    load.__doc__ = task.description
    load.__name__ = f"load_{task.name.replace('-', '_')}"
    register_dataset(task.name, "text", description=task.description)(load)


for _task in TASKS:
    _register(_task)

TASKS_BY_NAME = {t.name: t for t in TASKS}

__all__ = ["TASKS", "TASKS_BY_NAME", "TextTask", "load_task", "read_rows"]
