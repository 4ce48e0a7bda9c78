"""Frozen text features with and without length bucketing, on real sentences.

The text modality sorts the sentences of a split by length before batching them for evaluation
(:meth:`sslbench.modalities.text.TextModality.eval_order`), so that each batch pads to about its own
longest sentence, and puts the features back in the split's order. This script embeds the same
sentences both ways (bucketed, and in the split's order the base ``Modality.eval_order``) with
the same encoder, and prints sentences/s for each, the speed-up and the largest difference between
the two feature matrices (float rounding only: each embedding is independent of its batch companions).

    SSLBENCH_DATA=../shared/data python benchmarks/bench_text_features.py --dataset sst2 --split test
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from sslbench.components.encoders import build_encoder
from sslbench.config import EncoderConfig
from sslbench.data import data_root, load_dataset
from sslbench.data.base import Split
from sslbench.modalities.base import Modality
from sslbench.plugins import get_modality


class Frozen(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def embed(self, x):
        return self.encoder(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="sst2")
    ap.add_argument("--split", default="test")
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--max-samples", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    info, splits = load_dataset(args.dataset, [args.split], data_root())
    s = splits[args.split]
    n = min(len(s), args.max_samples)
    split = Split(labels=s.labels[:n], samples=s.samples[:n])
    encoder, _ = build_encoder(EncoderConfig(name=args.encoder), info)
    method = Frozen(encoder).eval()
    text = get_modality(info.modality)
    class InOrder(type(text)):
        def eval_order(self, split):  # the base class's: the split's own order
            return Modality.eval_order(self, split)

    ways = {"in order": lambda: InOrder().features(method, split, info, torch.device("cpu"), args.batch_size, {}),
            "bucketed": lambda: text.features(method, split, info, torch.device("cpu"), args.batch_size, {})}
    best: dict[str, float] = {}
    feats: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for name, way in ways.items():
            t0 = time.perf_counter()
            feats[name] = way()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
    print(f"{args.dataset}/{args.split}: {n} sentences, batch {args.batch_size}, {torch.get_num_threads()} threads")
    for name, t in best.items():
        print(f"  {name:9s} {n / t:8.1f} sentences/s  ({t:.1f} s, best of {args.repeats})")
    print(f"  speed-up  {best['in order'] / best['bucketed']:.2f}x; "
          f"max |difference| {(feats['in order'] - feats['bucketed']).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
