"""A fourth modality from a plugin folder: the proof that text and audio are new files, not new branches.

The folder written here defines everything a modality needs and nothing else: tabular vectors
(a float N x F tensor per split) with Gaussian-noise views, a data set of Gaussian clusters, an
MLP encoder, a view config, and SimCLR declared for the new modality. Pretraining, the linear,
kNN, few-shot and noisy-label protocols, ``profile`` and ``list`` then run through the
unchanged engine, protocols and CLI.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import run_cli

PLUGIN = textwrap.dedent('''
    """Tabular vectors: a modality, a data set, an encoder and a method, registered from a plugin file."""
    from dataclasses import dataclass

    import torch
    from torch import nn

    from sslbench.data.base import DataInfo, Split
    from sslbench.method import Batch
    from sslbench.modalities.base import IndexedBatchSource, Modality
    from sslbench.plugins import register_dataset, register_encoder, register_method, register_modality
    from sslbench_methods.simclr import SimCLR


    @dataclass
    class NoiseViews:
        noise_std: float = 0.3  # views: x + noise_std * N(0, I)


    class NoiseBatchSource(IndexedBatchSource):
        def __init__(self, split, method, views_cfg, cfg, seed, device):
            super().__init__(len(split), cfg.batch_size, seed, device)
            self.x, self.recipes = split.samples, method.views(views_cfg)

        def make_batch(self, idx):
            x = self.x[idx].to(self.device)
            return Batch(views=[x + r.noise_std * torch.randn_like(x) for r in self.recipes], index=idx.to(self.device))


    @register_modality("tabular")
    class Tabular(Modality):
        unit = "rows"
        view_config = NoiseViews

        def raw_feature_dim(self, data):
            return data.num_features

        def batch_source(self, split, data, method, views_cfg, cfg, seed, device):
            return NoiseBatchSource(split, method, views_cfg, cfg, seed, device)


    @register_dataset("blobs", modality="tabular")
    def load_blobs(root, splits, download=False, n=600, features=16, classes=4, spread=1.5):
        """Gaussian clusters: n training and n // 2 test rows of F features, C classes."""
        g = torch.Generator().manual_seed(1234)
        means = 2.0 * torch.randn(classes, features, generator=g)
        out = {}
        for name, size in (("train", n), ("test", n // 2)):
            y = torch.arange(size) % classes
            out[name] = Split(labels=y, samples=means[y] + spread * torch.randn(size, features, generator=g))
        info = DataInfo(name="blobs", modality="tabular", num_classes=classes, classes=[str(c) for c in range(classes)],
                        num_features=features, fingerprint="blobs-1234", source="generated")
        return info, {s: out[s] for s in splits}


    class MLP(nn.Module):
        def __init__(self, d_in, width):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(d_in, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width))
            self.num_features = width

        def forward(self, x):
            return self.net(x)


    @register_encoder("mlp", modality="tabular")
    def mlp(data, options):
        """A 2-layer MLP (options: width)."""
        return MLP(data.num_features, int(options.get("width", 32)))


    @register_method("tabsimclr")
    class TabSimCLR(SimCLR):
        modality = "tabular"
''')

SUITE = textwrap.dedent('''
    suite: blobs-ssl
    version: 1
    modality: tabular
    dataset: {name: blobs}
    encoder: {name: mlp, options: {width: 32}}
    pretrain: {epochs: 8, batch_size: 64, lr: 0.003}
    views: {noise_std: 0.5}
    methods:
      tabsimclr: {temperature: 0.2, proj_hidden_dim: 64, proj_dim: 16}
    protocols:
      - linear: {epochs: 30, batch_size: 64, lr: 0.01}
      - knn: {k: 10, temperature: 0.1}
      - few_shot: {n: [20], per_class: [], fractions: [], repeats: 2, epochs: 100, batch_size: 64, lr: 0.01}
      - noisy_label: {rates: [0.0, 0.3], modes: [symmetric], repeats: 2, epochs: 30, batch_size: 64, lr: 0.01}
    seeds: [0]
''')


@pytest.fixture()
def plugin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "tabular.py").write_text(PLUGIN)
    (d / "blobs-ssl.yaml").write_text(SUITE)
    return d


def test_a_plugin_modality_runs_every_protocol(plugin_dir: Path, tmp_path: Path):
    out = tmp_path / "runs"
    p = run_cli("--plugins", str(plugin_dir), "run", "tabsimclr", "--suite", "blobs-ssl", "--quiet", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "rows/s" in p.stderr  # the modality's own throughput unit
    (record,) = [json.loads(f.read_text()) for f in out.glob("*.json")]
    assert record["status"] == "ok" and record["config"]["modality"] == "tabular"
    m = {k: v["value"] for k, v in record["metrics"].items()}
    # 4 classes: chance is 25%; the clusters are separable, so every protocol must be far above it
    assert m["linear.top1"] > 80 and m["knn.top1"] > 80, m
    assert m["few_shot.acc@n20"] > 60, m
    assert m["noisy_label.acc@sym0"] > 80 and m["noisy_label.acc@sym0.3"] > 60, m
    history = record["train"]["loss_history"]
    assert history[-1][1] < history[0][1]  # pretraining lowered the loss


def test_a_plugin_modality_profiles_and_lists(plugin_dir: Path, tmp_path: Path):
    out = tmp_path / "prof"
    p = run_cli("--plugins", str(plugin_dir), "profile", "tabsimclr", "--suite", "blobs-ssl", "--negatives", "32,64",
                "--steps", "2", "--warmup", "1", "--out", str(out))
    assert p.returncode == 0, p.stderr + p.stdout
    recs = [json.loads(f.read_text()) for f in out.glob("*.json")]
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs)
    assert {r["metrics"]["samples_per_s"]["unit"] for r in recs} == {"rows/s"}
    listed = run_cli("--plugins", str(plugin_dir), "list", "methods", "tab*")
    assert listed.returncode == 0 and "tabular" in listed.stdout and "plugins:" in listed.stdout
