"""Further label sets of the same samples (``Split.targets``, ``dataset.targets``): the protocols run on each,
on features computed once; a modality's subsets keep them aligned; an unknown target is one line."""

from __future__ import annotations

import torch

from sslbench.data.base import DataInfo, Split
from sslbench.plugins import PROTOCOLS, get_modality
from sslbench.protocols.base import EvalContext


class CountingMethod(torch.nn.Module):
    """Embeds B x 4 inputs as themselves, counting the calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def embed(self, x):
        self.calls += 1
        return x.float()


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two label sets of the same points: ``a`` readable from dimension 0, ``b`` from dimension 1."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, 2, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) * 0.3
    x[:, 0] += 3 * a
    x[:, 1] += 3 * b
    return x, a, b


def test_protocols_run_on_each_label_set_with_one_forward_pass(monkeypatch):
    xs, splits = {}, {}
    for name, n, seed in (("train", 300, 0), ("test", 200, 1)):
        x, a, b = _data(n, seed)
        xs[name] = x
        splits[name] = Split(labels=a, samples=x, targets={"b": b})
    info = DataInfo(name="two-labels", modality="image", num_classes=2, classes=["a0", "a1"],
                    targets={"b": ["b0", "b1", "b2"]})
    method = CountingMethod()
    ctx = EvalContext(method, info, splits, torch.device("cpu"), batch_size=1000)
    monkeypatch.setattr(ctx.modality, "eval_inputs", lambda split, data, device, bs, indices=None: iter([split.samples]))
    linear = PROTOCOLS.get("linear")(PROTOCOLS.get("linear").Config(epochs=30, batch_size=64, lr=0.05))
    primary = linear.run(ctx)["top1"].value
    other = ctx.retarget("b")
    secondary = linear.run(other)["top1"].value
    assert method.calls == 2  # train and test once, shared by both label sets
    assert other.data.num_classes == 3 and other.data.classes == ["b0", "b1", "b2"]
    assert torch.equal(other.features("test")[1], splits["test"].targets["b"])
    assert torch.equal(ctx.features("test")[1], splits["test"].labels)  # the primary context is untouched
    assert primary > 95 and secondary > 95, (primary, secondary)
    # a probe on the wrong label set is at chance: the label sets really are different
    swapped = EvalContext(method, info, {k: Split(labels=s.targets["b"] % 2, samples=s.samples)
                                         for k, s in splits.items()}, torch.device("cpu"), batch_size=1000)
    assert linear.run(swapped)["top1"].value < 75


def test_subsets_keep_targets_aligned():
    labels = torch.arange(10)
    split = Split(labels=labels, samples=torch.arange(10).float()[:, None], targets={"b": labels * 10})
    idx = torch.tensor([1, 4, 7])
    texts = Split(labels=labels, samples=[str(i) for i in range(10)], targets=split.targets)
    for name, s in (("image", split), ("graph", Split(labels=labels, nodes=labels, targets=split.targets)),
                    ("text", texts)):
        sub = get_modality(name).subset(s, idx)
        assert torch.equal(sub.targets["b"], sub.labels * 10), name
