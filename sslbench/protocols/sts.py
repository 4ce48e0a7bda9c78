"""Semantic textual similarity (STS): the SimCSE evaluation (Gao et al. 2021, arXiv 2104.08821, Sec. 4 and App. B).

No training: each sentence is embedded once with the method's frozen features (through the modality, as
every protocol; nothing here depends on the modality), each pair is scored by the cosine similarity of its two
embeddings, and the score of a task is Spearman's rank correlation (x100) between those similarities and the
gold scores, on STS12-STS16, STS-B and SICK-R (files and layout: :mod:`sslbench.data.sts`).

Aggregation (SimCSE App. B, "all" setting): for STS12-16 the topics of a year are concatenated and ONE
Spearman is computed over all of the year's pairs. This is what SimCSE's evaluation reports
(``evaluation.py`` prints ``results[task]['all']['spearman']['all']``, which its SentEval fork adds to
``STSEval.run``); the original SentEval reports only the per-topic mean and the pair-weighted mean, which are
kept in the metric's ``detail`` (``spearman_mean``, ``spearman_wmean``) with every topic's own correlation.
STS-B and SICK-R are scored on their ``split`` (default ``test``; STS-B ``dev`` is SimCSE's model-selection
set). ``sts_avg`` is the plain mean over the tasks run (SimCSE's "Avg.", which averages the 2-decimal
rounded scores; here the unrounded ones).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.base import DataInfo, Split
from ..data.root import data_root
from ..data.sts import STS_TOPICS, TASKS, STSData, load_sts, require_files
from ..plugins import register_protocol
from ..results.records import Metric
from ..validation import check, check_section
from .base import EvalContext, Protocol

SPLITS = ("test", "dev")
UNIT = "spearman x100"


def _task_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(t, str) and t in TASKS for t in v)


@dataclass
class STSMetric(Metric):
    """A :class:`Metric` with the facts behind it (pairs, Pearson, per-topic correlations) in ``detail``."""

    detail: dict | None = None


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties) of two equal-length arrays; NaN when either is constant."""
    from scipy.stats import spearmanr

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(x, y)[0])


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import pearsonr

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(pearsonr(x, y)[0])


def pair_cosines(emb: torch.Tensor, left: list[int], right: list[int]) -> np.ndarray:
    """Cosine similarity of rows ``left[i]`` and ``right[i]`` of ``emb`` (N x D), as float64."""
    e = F.normalize(emb.double(), dim=1)
    return (e[left] * e[right]).sum(1).numpy()


def task_scores(data: STSData, sims: np.ndarray) -> tuple[float, dict[str, Any]]:
    """A task's headline Spearman x100 (all of its pairs at once) and its detail."""
    gold = data.scores
    value = 100 * spearman(sims, gold)
    detail: dict[str, Any] = {"split": data.split, "n": len(data), "pearson": _r(100 * pearson(sims, gold)),
                              "fingerprint": data.fingerprint}
    topics = data.topic_names
    if data.task in STS_TOPICS:  # STS12-16: per-topic correlations and SentEval's means
        names = np.asarray(data.topics)
        masks = [names == t for t in topics]
        rho = np.array([100 * spearman(sims[m], gold[m]) for m in masks])
        r = np.array([100 * pearson(sims[m], gold[m]) for m in masks])
        w = np.array([m.sum() for m in masks], dtype=float)
        per = {t: {"n": int(n), "spearman": _r(a), "pearson": _r(b)}
               for t, n, a, b in zip(topics, w, rho, r, strict=True)}
        detail.update(aggregation="all: one correlation over the concatenated topics (SimCSE)",
                      spearman_mean=_r(rho.mean()), spearman_wmean=_r(np.average(rho, weights=w)),
                      pearson_mean=_r(r.mean()), pearson_wmean=_r(np.average(r, weights=w)), topics=per)
    return value, detail


def _r(x: float) -> float:
    return round(float(x), 4) if math.isfinite(x) else float(x)


@register_protocol("sts")
class STS(Protocol):
    """Spearman x100 of embedding cosine similarity vs. gold similarity on STS12-16, STS-B and SICK-R."""

    version = 1

    @dataclass
    class Config:
        tasks: list[str] = field(default_factory=lambda: list(TASKS),
                                 metadata=check(_task_list, f"a non-empty list of STS tasks from: {', '.join(TASKS)}"))
        batch_size: int = 128
        split: str = field(default="test", metadata=check(lambda v: v in SPLITS,
                                                          f"one of {', '.join(SPLITS)} (used by stsb and sickr)"))

    def _tasks(self) -> list[str]:
        check_section(self.cfg, "protocols.sts")
        return list(dict.fromkeys(self.cfg.tasks))

    def preflight(self, data: DataInfo, root: Path) -> None:
        """Every file of every task is there (one DataNotFoundError line otherwise) and parses."""
        tasks = self._tasks()
        require_files(Path(root), tasks, self.cfg.split)
        for task in tasks:
            load_sts(Path(root), task, self.cfg.split)

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        tasks = self._tasks()
        root = Path(getattr(ctx, "data_root", None) or data_root())
        require_files(root, tasks, self.cfg.split)
        loaded = [load_sts(root, t, self.cfg.split) for t in tasks]
        # each distinct sentence once, shortest first (less padding per batch)
        distinct = sorted({s for d in loaded for pair in d.pairs for s in pair}, key=lambda s: (len(s), s))
        index = {s: i for i, s in enumerate(distinct)}
        split = Split(labels=torch.zeros(len(distinct), dtype=torch.long), samples=distinct)
        emb = ctx.modality.features(ctx.method, split, ctx.data, ctx.device, self.cfg.batch_size, {})
        out: dict[str, Metric] = {}
        for d in loaded:
            sims = pair_cosines(emb, [index[a] for a, _ in d.pairs], [index[b] for _, b in d.pairs])
            value, detail = task_scores(d, sims)
            out[d.task] = STSMetric(value, True, UNIT, "sts", detail=detail)
        values = [m.value for m in out.values()]
        out["sts_avg"] = STSMetric(float(np.mean(values)), True, UNIT, "sts",
                                   detail={"tasks": list(out), "split": self.cfg.split})
        return out


__all__ = ["STS", "STSMetric", "spearman", "pearson", "pair_cosines", "task_scores"]
