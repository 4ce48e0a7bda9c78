"""Repeated logistic regression on frozen embeddings: the graph papers' own evaluations.

- ``solver: adam`` (DGI, Velickovic et al. 2019; official ``execute.py``): a linear layer
  (Xavier-uniform weights, zero bias) trained full-batch on the raw embeddings of the
  training nodes with Adam (lr 0.01, no weight decay) for 100 epochs, tested on the test
  nodes; repeated ``repeats`` (50) times from fresh initialisations. The value is the mean
  test accuracy, with the per-repeat values and their standard deviation, as the paper's
  "82.3 +- 0.6".
- ``solver: liblinear-cv`` (GRACE, Zhu et al. 2020; official ``eval.py``): embeddings
  L2-normalised per node, one-vs-rest liblinear logistic regression with C chosen from
  2^-10 .. 2^9 by 5-fold cross-validation on the training nodes (scikit-learn), accuracy
  (micro-F1 for single-label nodes) on the test nodes. Deterministic given the split.

``normalize`` (none | l2 | standard) applies before either solver; DGI uses none.
Metric ``top1``: % on the test split, mean over repeats with per_seed, std, n, ci95.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..plugins import register_protocol
from ..results.records import Metric
from .base import EvalContext, Protocol, topk_accuracy
from .few_shot import probe_seed
from .linear import standardize
from .subsets import repeated_metric

SOLVERS = ("adam", "liblinear-cv")
NORMALIZE = ("none", "l2", "standard")


def fit_logreg_adam(x: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int, lr: float,
                    weight_decay: float, seed: int) -> torch.nn.Linear:
    """DGI's LogReg: full-batch softmax regression on x (N x D), labels y (N); Xavier init, Adam."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = torch.nn.Linear(x.shape[1], num_classes)
        torch.nn.init.xavier_uniform_(head.weight)
        torch.nn.init.zeros_(head.bias)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(head(x), y).backward()
        opt.step()
    return head


def liblinear_cv_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                          y_test: torch.Tensor, seed: int) -> float:
    """GRACE's evaluation: one-vs-rest liblinear logistic regression, C in 2^-10..2^9 by 5-fold CV."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.multiclass import OneVsRestClassifier

    grid = GridSearchCV(OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=seed)),
                        {"estimator__C": 2.0 ** np.arange(-10, 10)}, cv=5, n_jobs=1)
    grid.fit(x_train.numpy(), y_train.numpy())
    return 100.0 * float((grid.predict(x_test.numpy()) == y_test.numpy()).mean())


@register_protocol("logreg")
class LogRegProbe(Protocol):
    version = 1

    @dataclass
    class Config:
        repeats: int = 50
        solver: str = "adam"  # adam (DGI) | liblinear-cv (GRACE)
        normalize: str = "none"  # none | l2 (GRACE) | standard (training split's mean and std)
        epochs: int = 100  # adam only
        lr: float = 0.01  # adam only
        weight_decay: float = 0.0  # adam only

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        c = self.cfg
        if c.solver not in SOLVERS:
            raise ConfigError(f"Bad value for 'protocols.logreg.solver': {c.solver!r}. Valid: {', '.join(SOLVERS)}")
        if c.normalize not in NORMALIZE:
            raise ConfigError(f"Bad value for 'protocols.logreg.normalize': {c.normalize!r}. "
                              f"Valid: {', '.join(NORMALIZE)}")
        if c.repeats < 1:
            raise ConfigError(f"protocols.logreg.repeats must be at least 1, got {c.repeats}")
        x_train, y_train = ctx.features("train")
        x_test, y_test = ctx.features("test")
        if c.normalize == "l2":
            x_train, x_test = F.normalize(x_train, dim=1), F.normalize(x_test, dim=1)
        elif c.normalize == "standard":
            x_train, x_test = standardize(x_train, x_test)
        accs = []
        for r in range(c.repeats):
            seed = probe_seed(ctx.seed, r)
            if c.solver == "adam":
                head = fit_logreg_adam(x_train, y_train, ctx.data.num_classes, c.epochs, c.lr, c.weight_decay, seed)
                with torch.no_grad():
                    accs.append(topk_accuracy(head(x_test), y_test, 1))
            else:
                accs.append(liblinear_cv_accuracy(x_train, y_train, x_test, y_test, seed))
        detail = {"solver": c.solver, "train_examples": len(y_train), "test_examples": len(y_test)}
        return {"top1": repeated_metric(accs, "logreg", "%", detail=detail)}


__all__ = ["LogRegProbe", "fit_logreg_adam", "liblinear_cv_accuracy"]
