"""Few-shot subsets, label noise, their protocols, fine-tuning and the baseline method (fast, CPU)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from conftest import run_cli

from sslbench.data.base import DataInfo, Split
from sslbench.errors import ConfigError
from sslbench.protocols.base import EvalContext
from sslbench.protocols.few_shot import FewShot
from sslbench.protocols.finetune import FinetuneConfig, finetune_and_test
from sslbench.protocols.linear import standardize_subset
from sslbench.protocols.noisy_label import NoisyLabel
from sslbench.protocols.subsets import (
    MNIST_CONFUSION,
    confusion_map,
    few_shot_indices,
    labels_digest,
    mean_std_ci,
    noisy_labels,
)

torch.set_num_threads(1)

RATES = (0.1, 0.2, 0.4, 0.6)


@pytest.fixture(scope="module")
def mnist_labels(data_root) -> dict[str, torch.Tensor]:
    from sslbench.data import load_dataset

    _, splits = load_dataset("mnist", ["train", "test"], data_root)
    return {s: splits[s].labels for s in ("train", "test")}


def _synthetic_ctx(n_train=600, n_test=400, classes=10, dim=32, spread=1.6, seed=0, name="synthetic"):
    """An EvalContext whose feature cache is pre-filled with Gaussian clusters (no encoder is ever run)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dim, generator=g) * 1.0
    y_tr = torch.arange(n_train) % classes
    y_te = torch.arange(n_test) % classes
    x_tr = means[y_tr] + spread * torch.randn(n_train, dim, generator=g)
    x_te = means[y_te] + spread * torch.randn(n_test, dim, generator=g)
    info = DataInfo(name=name, modality="image", num_classes=classes, classes=[str(c) for c in range(classes)])
    splits = {"train": Split(labels=y_tr.clone()), "test": Split(labels=y_te.clone())}
    ctx = EvalContext(method=None, data=info, splits=splits, device=torch.device("cpu"), seed=0)
    ctx._feats.update(train=x_tr, test=x_te)
    ctx._labels.update(train=y_tr.clone(), test=y_te.clone())
    return ctx


# ---------------------------------------------------------------- label noise


@pytest.mark.parametrize("rate", RATES)
def test_symmetric_noise_rate_on_mnist(mnist_labels, rate):
    labels = mnist_labels["train"]
    before = labels.clone()
    noisy, measured = noisy_labels(labels, rate, "symmetric", 10, seed=3)
    assert torch.equal(labels, before), "the input labels must not be modified"
    assert abs(measured - rate) < 0.002
    changed = noisy != labels
    assert int(changed.sum()) == round(rate * len(labels))  # every replaced label differs from the original
    assert measured == pytest.approx(float(changed.float().mean()))
    assert int(noisy.min()) >= 0 and int(noisy.max()) <= 9
    # replacements are spread over the other classes: each class goes to all 9 others
    for c in range(10):
        targets = set(noisy[changed & (labels == c)].tolist())
        assert c not in targets and len(targets) == 9


@pytest.mark.parametrize("rate", RATES)
def test_asymmetric_noise_rate_and_map_on_mnist(mnist_labels, rate):
    labels = mnist_labels["train"]
    noisy, measured = noisy_labels(labels, rate, "asymmetric", 10, seed=1, dataset="mnist")
    assert abs(measured - rate) < 0.002
    changed = noisy != labels
    sources = torch.tensor(sorted(MNIST_CONFUSION))
    n_src = int(torch.isin(labels, sources).sum())
    assert int(changed.sum()) == round(rate * n_src)
    # only the source classes move, and only to their targets
    pairs = Counter(zip(labels[changed].tolist(), noisy[changed].tolist(), strict=True))
    assert set(pairs) <= set(MNIST_CONFUSION.items())
    assert not bool(changed[~torch.isin(labels, sources)].any())
    for s in MNIST_CONFUSION:  # each source class flips with (about) the requested probability
        members = labels == s
        assert abs(float(changed[members].float().mean()) - rate) < 0.002


def test_noise_is_reproducible_from_the_seed_only():
    labels = torch.arange(1000) % 10
    for mode in ("symmetric", "asymmetric"):
        torch.manual_seed(123)
        a, _ = noisy_labels(labels, 0.3, mode, 10, seed=7, dataset="cifar10")
        torch.manual_seed(456)  # the global RNG plays no part
        b, _ = noisy_labels(labels, 0.3, mode, 10, seed=7, dataset="cifar10")
        c, _ = noisy_labels(labels, 0.3, mode, 10, seed=8, dataset="cifar10")
        assert torch.equal(a, b) and not torch.equal(a, c)
    zero, rate0 = noisy_labels(labels, 0.0, "symmetric", 10, seed=0)
    assert torch.equal(zero, labels) and rate0 == 0.0


def test_confusion_maps():
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert confusion_map("cifar10", 10, names) == {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
    shuffled = list(reversed(names))  # resolved by class name, not position
    cm = confusion_map("cifar10", 10, shuffled)
    assert {shuffled[s]: shuffled[t] for s, t in cm.items()} == {"truck": "automobile", "bird": "airplane",
                                                                  "deer": "horse", "cat": "dog", "dog": "cat"}
    assert confusion_map("mnist", 10) == {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
    assert confusion_map("something", 4) == {0: 1, 1: 2, 2: 3, 3: 0}
    with pytest.raises(ConfigError):
        noisy_labels(torch.arange(10) % 2, 0.2, "pairflip", 2)


# ---------------------------------------------------------------- few-shot subsets


def test_few_shot_balanced_counts(mnist_labels):
    labels = mnist_labels["train"]
    idx = few_shot_indices(labels, n=20, seed=0)
    assert len(idx) == 20 and len(set(idx.tolist())) == 20
    assert sorted(Counter(labels[idx].tolist()).values()) == [2] * 10
    idx = few_shot_indices(labels, n=25, seed=0)
    assert sorted(Counter(labels[idx].tolist()).values()) == [2] * 5 + [3] * 5
    for n in (100, 1000, 37):
        counts = Counter(labels[few_shot_indices(labels, n=n, seed=2)].tolist()).values()
        assert sum(counts) == n and max(counts) - min(counts) <= 1
    idx = few_shot_indices(labels, per_class=5, seed=0)
    assert sorted(Counter(labels[idx].tolist()).values()) == [5] * 10
    for f in (0.01, 0.1):
        assert len(few_shot_indices(labels, fraction=f, seed=0)) == round(f * len(labels))
    assert len(few_shot_indices(labels, n=50, balanced=False, seed=0)) == 50


def test_few_shot_same_seed_same_examples(mnist_labels):
    labels = mnist_labels["train"]
    torch.manual_seed(0)
    a = few_shot_indices(labels, n=100, seed=4)
    torch.manual_seed(99)  # a different run seed / method must not change the subset
    torch.rand(1000)
    b = few_shot_indices(labels.clone(), n=100, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, few_shot_indices(labels, n=100, seed=5))
    # nested for a fixed seed: N=20 picks a prefix of each class's N=100 picks
    small = set(few_shot_indices(labels, n=20, seed=4).tolist())
    assert small <= set(a.tolist())


def test_few_shot_errors():
    labels = torch.tensor([0] * 50 + [1] * 3)
    with pytest.raises(ConfigError, match="class 1"):
        few_shot_indices(labels, per_class=5)
    with pytest.raises(ConfigError, match="exactly one"):
        few_shot_indices(labels, n=10, fraction=0.1)
    with pytest.raises(ConfigError, match="exactly one"):
        few_shot_indices(labels)
    assert len(few_shot_indices(labels, n=20, balanced=False)) == 20


def test_mean_std_ci():
    mean, std, ci, n = mean_std_ci([1.0, 2.0, 3.0])
    assert (mean, std, n) == (2.0, 1.0, 3)
    assert ci == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    mean, std, ci, n = mean_std_ci([5.0])
    assert mean == 5.0 and n == 1 and math.isnan(std) and math.isnan(ci)


def test_standardize_subset_zeroes_constant_dims():
    train = torch.tensor([[0.0, 1.0], [0.0, 3.0]])
    test = torch.tensor([[5.0, 2.0]])
    tr, te = standardize_subset(train, test)
    assert torch.all(tr[:, 0] == 0) and te[0, 0] == 0 and torch.isfinite(te).all()


# ---------------------------------------------------------------- protocols


def test_few_shot_protocol_metrics_and_accuracy_rises_with_n():
    ctx = _synthetic_ctx()
    proto = FewShot(FewShot.Config(n=[20, 500], per_class=[3], fractions=[0.1], repeats=3, epochs=60))
    out = proto.run(ctx)
    assert set(out) == {"acc@n20", "acc@n500", "acc@k3", "acc@p10"}
    for m in out.values():
        assert len(m.per_seed) == 3 and m.n == 3 and m.std is not None and m.ci95 is not None
        assert m.unit == "%" and m.protocol == "few_shot" and m.higher_is_better
        assert m.value == pytest.approx(sum(m.per_seed) / 3)
    assert out["acc@p10"].detail["examples"] == 60
    assert out["acc@n500"].value > out["acc@n20"].value + 10
    # the record keeps per_seed, std, n and ci95
    from sslbench.results.records import RunRecord

    rec = RunRecord("r", "ok", {}, {}, {}, "h", 0)
    rec.add_metric("few_shot.acc@n20", out["acc@n20"])
    assert {"per_seed", "std", "n", "ci95"} <= set(rec.metrics["few_shot.acc@n20"])


def test_noisy_label_protocol_leaves_test_labels_untouched():
    ctx = _synthetic_ctx(name="mnist")
    test_split_digest = labels_digest(ctx.splits["test"].labels)
    cached_test = ctx._labels["test"].clone()
    train_before = ctx._labels["train"].clone()
    cfg = NoisyLabel.Config(rates=[0.0, 0.2, 0.6], modes=["symmetric", "asymmetric"], repeats=2, epochs=30,
                            batch_size=64)
    out = NoisyLabel(cfg).run(ctx)
    assert labels_digest(ctx.splits["test"].labels) == test_split_digest
    assert torch.equal(ctx._labels["test"], cached_test)
    assert torch.equal(ctx._labels["train"], train_before)
    for tag in ("sym", "asym"):
        for r in (0.0, 0.2, 0.6):
            acc, noise = out[f"acc@{tag}{r:g}"], out[f"noise@{tag}{r:g}"]
            assert len(acc.per_seed) == 2 and acc.n == 2 and acc.unit == "%"
            assert noise.unit == "fraction" and not noise.higher_is_better
            assert abs(noise.value - r) < 0.01 and noise.detail["requested"] == r
    assert out["acc@sym0"].per_seed == out["acc@asym0"].per_seed
    assert out["acc@sym0.6"].value < out["acc@sym0"].value


# ---------------------------------------------------------------- fine-tuning and the baseline


class _TinyMethod(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                           torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
        self.loss_calls = 0

    @torch.no_grad()
    def embed(self, x):
        return self.encoder(x)

    def finetune_features(self, x):
        return self.encoder(x)

    def finetune_loss(self, logits, features, labels):
        self.loss_calls += 1
        return torch.nn.functional.cross_entropy(logits, labels)


def _image_ctx(method, n_train=60, n_test=40, classes=3):
    g = torch.Generator().manual_seed(0)
    y_tr, y_te = torch.arange(n_train) % classes, torch.arange(n_test) % classes

    def images(y):  # the class sets the brightness: learnable in a few steps
        base = (y.float() * 80 + 20).view(-1, 1, 1, 1)
        return (base + 20 * torch.rand(len(y), 1, 8, 8, generator=g)).clamp(0, 255).to(torch.uint8)

    info = DataInfo(name="synthetic", modality="image", num_classes=classes, classes=["a", "b", "c"], channels=1,
                    image_size=8, mean=(0.5,), std=(0.25,))
    splits = {"train": Split(labels=y_tr, images=images(y_tr)), "test": Split(labels=y_te, images=images(y_te))}
    return EvalContext(method=method, data=info, splits=splits, device=torch.device("cpu"), seed=0, batch_size=32)


def test_finetune_runs_and_leaves_the_method_untouched():
    method = _TinyMethod()
    before = {k: v.clone() for k, v in method.state_dict().items()}
    ctx = _image_ctx(method)
    labels = ctx.splits["train"].labels
    cfg = FinetuneConfig(epochs=3, batch_size=16, lr=1e-2)
    acc = finetune_and_test(ctx, torch.arange(len(labels)), labels, cfg, seed=0)
    assert 0.0 <= acc <= 100.0
    assert acc == finetune_and_test(ctx, torch.arange(len(labels)), labels, cfg, seed=0)  # deterministic
    for k, v in method.state_dict().items():
        assert torch.equal(v, before[k]), f"fine-tuning changed the original method's {k}"
    assert method.loss_calls == 0  # the hook ran on the copy
    aug = finetune_and_test(ctx, torch.arange(10), labels[:10], FinetuneConfig(epochs=1, batch_size=4,
                                                                               augment=True,
                                                                               views={"flip_p": 0.0}))
    assert 0.0 <= aug <= 100.0
    out = FewShot(FewShot.Config(n=[6], repeats=2, head="finetune", epochs=2, batch_size=8)).run(ctx)
    assert len(out["acc@n6"].per_seed) == 2
    from sslbench.protocols.finetune import Finetune

    top1 = Finetune(Finetune.Config(epochs=1, batch_size=16)).run(ctx)["top1"]
    assert top1.protocol == "finetune" and top1.n == 1 and top1.per_seed == [top1.value]


def test_baseline_method():
    from sslbench.method import Batch
    from sslbench.plugins import load_method_class

    cls = load_method_class("baseline")
    assert set(cls.variants) == {"random", "pixels", "frozen"} and cls.modality == "any"
    info = DataInfo(name="digits", modality="image", num_classes=10, classes=list("0123456789"), channels=1,
                    image_size=8, mean=(0.5,), std=(0.25,))
    encoder = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    x = torch.rand(5, 1, 8, 8)
    pixels = cls(cls.Config(pixels=True), encoder, 4, info, 100)
    assert pixels.feature_dim == 64 and torch.equal(pixels.embed(x), x.flatten(1))
    random = cls(cls.Config(), encoder, 4, info, 100)
    assert random.embed(x).shape == (5, 4)
    with pytest.warns(UserWarning, match="pretrain.epochs=0"):
        loss = random.training_step(Batch(views=[x, x], index=torch.arange(5))).loss
    assert loss.requires_grad and float(loss.detach()) == 0.0
    loss.backward()
    assert all(p.grad is None for p in random.parameters())  # an optimiser step leaves the weights alone


def test_cli_lists_the_new_protocols_and_suites():
    res = run_cli("list", "protocols", timeout=120)
    assert res.returncode == 0, res.stderr
    for name in ("few_shot", "noisy_label", "finetune"):
        assert name in res.stdout
    res = run_cli("list", "suites", "*-fewshot", timeout=120)
    assert res.returncode == 0, res.stderr
    for name in ("digits-fewshot", "mnist-fewshot", "cifar10-fewshot"):
        assert name in res.stdout
