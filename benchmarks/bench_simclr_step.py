"""Throughput of one SimCLR training step, three ways, in one run on one machine.

1. sslbench end to end: the run as ``sslbench run`` builds it (:func:`sslbench.build.build_run`),
   the image modality's batches (per-sample views with kornia on the device) feeding
   ``Trainer.train_step``: data, augmentation, forward, loss, backward, update.
2. The floor: the same model, loss and optimiser on one fixed pre-augmented batch (no data,
   no augmentation): the best any pipeline could do.
3. lightly (if installed): SimCLRTransform in a DataLoader, lightly's NTXentLoss, the same
   backbone, projector, optimiser and batch.

Prints pairs per second for each and the ratios (sslbench / floor, lightly / floor,
sslbench / lightly). Example (CPU, CIFAR-10 at 32 px, batch 256, the 4-layer CNN of
cifar10-linear-small):

    SSLBENCH_DATA=../shared/data python benchmarks/bench_simclr_step.py --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from PIL import Image

from sslbench.build import RunOptions, build_run
from sslbench.config import parse_set
from sslbench.suites import build_run_config


def timed(step, warmup: int, steps: int, sync) -> list[float]:
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def make_trainer(args):
    sets = args.set + [f"pretrain.batch_size={args.batch}", "pretrain.epochs=1000", f"pretrain.device={args.device}"]
    cfg, cls, _ = build_run_config("simclr", args.suite, parse_set(sets), seed=0)
    run = build_run(cfg, cls, RunOptions(progress=False))
    return cfg, run.info, run.train, run.trainer, run.device


def bench_sslbench(trainer, args, sync) -> list[float]:
    batches = trainer.batches()
    return timed(lambda: trainer.train_step(next(batches)), args.warmup, args.steps, sync)


def bench_floor(trainer, args, sync) -> list[float]:
    batch = next(trainer.batches(1))  # augmented once, reused every step
    return timed(lambda: trainer.train_step(batch), args.warmup, args.steps, sync)


def bench_lightly(cfg, info, split, trainer, device, args, sync) -> list[float] | None:
    try:
        from lightly.loss import NTXentLoss
        from lightly.transforms import SimCLRTransform
    except ImportError:
        print("lightly is not installed: skipping its pipeline (pip install lightly)")
        return None
    v = cfg.views
    transform = SimCLRTransform(input_size=info.image_size, min_scale=v.crop_scale[0], cj_strength=v.jitter_strength,
                                cj_prob=v.jitter_p, random_gray_scale=v.grayscale_p, gaussian_blur=v.blur_p,
                                hf_prob=v.flip_p, vf_prob=0.0, rr_prob=0.0,
                                normalize={"mean": list(info.mean), "std": list(info.std)})
    images = split.images

    class PILDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return transform(Image.fromarray(images[i].permute(1, 2, 0).numpy())), 0

    loader = torch.utils.data.DataLoader(PILDataset(), batch_size=args.batch, shuffle=True, drop_last=True,
                                         num_workers=args.lightly_workers, persistent_workers=args.lightly_workers > 0)
    method = trainer.method
    criterion = NTXentLoss(temperature=cfg.method_config.temperature)
    opt = torch.optim.AdamW(method.parameters(), lr=cfg.pretrain.lr, weight_decay=cfg.pretrain.weight_decay)
    it = iter(loader)

    def step():
        (x0, x1), _ = next(it)
        x0, x1 = x0.to(device), x1.to(device)
        n = x0.shape[0]
        z = method.projector(method.encoder(torch.cat([x0, x1])))
        loss = criterion(z[:n], z[n:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return timed(step, args.warmup, args.steps, sync)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="cifar10-linear-small")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--lightly-workers", type=int, default=2)
    p.add_argument("--set", action="append", default=[], help="config override, as in sslbench run --set")
    args = p.parse_args()
    cfg, info, split, trainer, device = make_trainer(args)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"SimCLR step on {cfg.suite} ({info.name}, {info.image_size}px), encoder {cfg.encoder.name}, "
          f"batch {args.batch}, device {device}, torch threads {torch.get_num_threads()}")
    results = {"floor (fixed batch)": bench_floor(trainer, args, sync),
               "sslbench end to end": bench_sslbench(trainer, args, sync)}
    lightly_times = bench_lightly(cfg, info, split, trainer, device, args, sync)
    if lightly_times is not None:
        results["lightly pipeline"] = lightly_times
    rate = {k: args.batch / statistics.median(v) for k, v in results.items()}
    for k, r in rate.items():
        print(f"{k:22s} {r:9.1f} pairs/s   median step {1000 * args.batch / r:7.1f} ms")
    floor = rate["floor (fixed batch)"]
    print(f"sslbench / floor   = {rate['sslbench end to end'] / floor:.3f}")
    if "lightly pipeline" in rate:
        print(f"lightly / floor    = {rate['lightly pipeline'] / floor:.3f}")
        print(f"sslbench / lightly = {rate['sslbench end to end'] / rate['lightly pipeline']:.3f}")


if __name__ == "__main__":
    main()
