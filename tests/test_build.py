"""The one run assembly (sslbench.build) and the trainer's public surface."""

from __future__ import annotations

import torch

from sslbench.build import RunOptions, build_run
from sslbench.suites import build_run_config


def _run(tmp_path, *sets, method="simclr"):
    cfg, cls, _ = build_run_config(method, "digits-linear", [("pretrain.epochs", 1), *sets], seed=0)
    return build_run(cfg, cls, RunOptions(out_dir=tmp_path, progress=False))


def test_build_run_is_reproducible_from_the_seed(tmp_path):
    a, b = _run(tmp_path), _run(tmp_path)
    for (k, x), y in zip(a.method.state_dict().items(), b.method.state_dict().values(), strict=True):
        assert torch.equal(x, y), k
    assert a.config_hash == b.config_hash and a.trainer.unit == "images"


def test_batches_and_train_step_replay_fit(tmp_path):
    """Feeding ``batches()`` to ``train_step`` by hand is the same run as ``fit()``."""
    fitted = _run(tmp_path)
    fitted.trainer.fit()
    manual = _run(tmp_path)
    losses = [manual.trainer.train_step(batch) for batch in manual.trainer.batches()]
    assert manual.trainer.step == fitted.trainer.step == len(losses) == manual.trainer.total_steps
    for (k, x), y in zip(fitted.method.state_dict().items(), manual.method.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


def test_after_step_gets_the_step_and_the_total(tmp_path):
    run = _run(tmp_path)
    seen = []
    run.method.after_step = lambda step, total: seen.append((step, total))
    run.trainer.fit()
    total = run.trainer.total_steps
    assert seen == [(s, total) for s in range(1, total + 1)]


def test_pretrain_split_pretrains_on_another_split(tmp_path):
    """``dataset.pretrain_split`` (STL-10's unlabeled images) pretrains on that split; protocols keep train."""
    run = _run(tmp_path, ("dataset.pretrain_split", "test"), method="instdisc")
    assert len(run.train) == 1257 and len(run.pretrain) == len(run.test) == 540
    assert run.method.train_size == 540  # InstDisc's bank holds one entry per pretraining sample
    assert run.trainer.source.steps_per_epoch == 540 // 128
    default = _run(tmp_path, method="instdisc")
    assert default.pretrain is default.train and default.config_hash != run.config_hash
