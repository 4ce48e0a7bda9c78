"""The Modality base class: everything that differs between images, graphs, text and audio.

The engine, the protocols, ``profile`` and fine-tuning never ask "which modality is this?";
they call the registered :class:`Modality` of the data set (``DataInfo.modality``):

- pretraining batches: :meth:`Modality.batch_source` returns a :class:`BatchSource`
  (``steps_per_epoch``, ``samples_per_step``, ``epoch_batches(epoch, start)``), usually an
  :class:`IndexedBatchSource` that draws the epoch's order from ``(seed, epoch)``;
- device conversions: :meth:`prepare_model` (memory format of the model) and :meth:`to_model`
  (of an input batch), :meth:`encode` (how an encoder takes this modality's inputs);
- evaluation: :meth:`eval_inputs` (the deterministic evaluation view, batched) and
  :meth:`features` (frozen features N x D of a split, computed once per run);
- subsets: :meth:`subset` (a split restricted to some samples, or nodes);
- fine-tuning: :meth:`finetune_inputs` (training inputs for a chunk of indices);
- throughput: :attr:`unit` (``images`` -> images/s, ``nodes`` -> nodes/s);
- the suite's ``views:`` section: :attr:`view_config`, a dataclass, and :meth:`check_views`.

A new modality is one file: subclass, decorate with
``@sslbench.plugins.register_modality("name")``, register its data sets and encoders with
``register_dataset`` / ``register_encoder``, and every protocol runs on it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..data.base import DataInfo, Split
from ..errors import ConfigError
from ..method import Batch
from ..seeding import step_seed


class BatchSource(Protocol):
    """What the engine needs from a modality's pretraining data: positions, not iterators, so that a resumed
    run replays exactly the batches an uninterrupted one would have seen."""

    steps_per_epoch: int
    samples_per_step: int  # what one step processes, in the modality's unit (images, nodes, ...)

    def epoch_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        """The batches of ``epoch`` from step ``start`` of that epoch on."""
        ...


class IndexedBatchSource:
    """Batches of ``batch_size`` sample indices in an order drawn from ``(seed, epoch)``; the last partial batch
    of an epoch is dropped. Before each batch is made, torch's global generator is seeded from
    ``(seed, global step)``, so augmentation and the method's own randomness replay on resume.

    Subclasses implement :meth:`make_batch` (indices -> :class:`Batch` on the device).

    Data parallel (``rank``, ``world``; by default the process group's, :mod:`sslbench.distributed`):
    ``batch_size`` is the global batch; every rank draws the same ``(seed, epoch)`` order and takes its
    contiguous slice of ``batch_size / world`` indices of each global batch (rank 0 the first), so the
    ranks of one step together hold exactly the samples of one process's step, and rank order is the global
    batch's order (what an all-gather returns). Per-sample seeded views (``(seed, epoch, index)``: workers,
    audio) are therefore the same as one process's; randomness drawn from the global generator (batched
    augmentation, dropout, a method's draws) is seeded from ``(seed, step)`` on rank 0 and from
    ``(seed, step, rank)`` on the others, so ranks do not repeat each other's draws. A global batch that
    the world size does not divide is refused.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, device: torch.device,
                 rank: int | None = None, world: int | None = None):
        from .. import distributed

        if batch_size > num_samples:
            raise ConfigError(f"pretrain.batch_size={batch_size} exceeds the {num_samples} training samples")
        self.rank = distributed.rank() if rank is None else rank
        self.world = distributed.world_size() if world is None else world
        check_global_batch(batch_size, self.world)
        self.n, self.batch_size, self.seed, self.device = num_samples, batch_size, seed, device
        self.local_batch = batch_size // self.world  # this rank's rows of each step
        self.samples_per_step = batch_size  # the global batch: throughput counts every rank's samples
        self.steps_per_epoch = num_samples // batch_size

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(step_seed(self.seed, -1 - epoch))
        return torch.randperm(self.n, generator=g)

    def chunks(self, epoch: int, start: int) -> list[torch.Tensor]:
        """Index tensors (int64, CPU) of the epoch's steps from ``start`` on: this rank's slice of each."""
        perm, bs = self.order(epoch), self.batch_size
        lo, hi = self.rank * self.local_batch, (self.rank + 1) * self.local_batch
        return [perm[i * bs:(i + 1) * bs][lo:hi] for i in range(start, self.steps_per_epoch)]

    def seed_step(self, epoch: int, step_in_epoch: int) -> None:
        seed = step_seed(self.seed, epoch * self.steps_per_epoch + step_in_epoch)
        torch.manual_seed(seed if self.rank == 0 else step_seed(seed, self.rank))

    def epoch_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        for k, idx in enumerate(self.chunks(epoch, start)):
            self.seed_step(epoch, start + k)
            yield self.make_batch(idx)

    def make_batch(self, idx: torch.Tensor) -> Batch:
        raise NotImplementedError


def check_global_batch(batch_size: int, world: int) -> None:
    """A global batch must split evenly over the ranks (every rank the same rows, an all-gather of equal shards)."""
    if world > 1 and batch_size % world:
        lower, upper = batch_size // world * world, -(-batch_size // world) * world
        raise ConfigError(f"pretrain.batch_size={batch_size} (the global batch) is not divisible by the {world} "
                          f"processes; use a multiple of {world} (e.g. {lower or upper} or {upper})")


class Modality:
    """Base class of every modality plugin (``sslbench/modalities/image.py`` is the fullest example).

    The defaults serve a modality whose splits hold their samples in memory as one tensor
    (``Split.samples``, N x ...) or as a map-style ``Split.dataset`` of (input, label) items, and whose
    encoders take a batch tensor: a new modality overrides only what differs.
    """

    name: ClassVar[str] = ""
    unit: ClassVar[str] = "samples"  # what a step processes: throughput is reported in <unit>/s
    check_suite: ClassVar[str | None] = None  # its smallest real-data suite (benchmarks/gpu_check.py runs it)
    view_config: ClassVar[type | None] = None  # dataclass of the suite's `views:` section
    supports_finetune: ClassVar[bool] = True  # whether protocols may train the encoder on this modality

    # ------------------------------------------------------------ the model and its inputs

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model as training wants it (memory format); called once before it moves to the device."""
        return model

    def to_model(self, x: Any) -> Any:
        """An evaluation input batch as the model wants it (memory format); identity by default."""
        return x

    def encode(self, encoder: torch.nn.Module, x: Any) -> torch.Tensor:
        """Frozen features of a batch of inputs: B x D (a graph: N x D, one row per node)."""
        return encoder(x)

    def sample_shape(self, data: DataInfo) -> tuple[int, ...]:
        """The shape of one input sample (for analytic memory floors traced on random inputs): a vector of
        ``data.num_features`` by default."""
        return (int(data.num_features),)

    def probe_batch(self, data: DataInfo, batch: int, view: Any, generator: torch.Generator) -> Any:
        """A synthetic training batch of ``batch`` inputs of the largest size a view allows (a method traces its
        activations on it for its analytic memory floor): random inputs of ``sample_shape`` by default."""
        return torch.rand(batch, *self.sample_shape(data), generator=generator)

    def raw_features(self, x: Any) -> torch.Tensor:
        """The inputs themselves as features (the ``baseline.pixels`` floor): B x prod(shape)."""
        return x.flatten(1).float()

    def raw_feature_dim(self, data: DataInfo) -> int:
        raise ConfigError(f"The {self.name} modality has no raw-feature floor")

    def runs_method(self, method_cls: type) -> bool:
        """Whether a method class serves this modality: it declares this modality, or "any" (the floors, SCL)."""
        return method_cls.modality in (self.name, "any")

    def takes_encoder(self, make: Any) -> bool:
        """Whether the registered encoder factory ``make`` (its ``modality`` attribute) serves this modality."""
        return getattr(make, "modality", None) == self.name

    fallback_encoder_hint: ClassVar[str] = ""  # appended to "Unknown encoder" (e.g. " (or any timm model name)")

    def fallback_encoder(self, name: str) -> Callable[[DataInfo, dict], torch.nn.Module] | None:
        """A factory for an encoder name the registry does not hold (images: any timm model), or None."""
        return None

    # ------------------------------------------------------------ pretraining

    def check_views(self, views_cfg: Any, recipes: list[Any], split: Split) -> None:
        """Validate a method's view recipes before any run starts (one-line ConfigError)."""

    def max_batch_size(self, split: Split) -> int | None:
        """The largest ``pretrain.batch_size`` the split allows (its size), or None where a step is not a batch
        of samples (a whole graph)."""
        return len(split)

    def batch_source(self, split: Split, data: DataInfo, method: Any, views_cfg: Any, cfg: Any, seed: int,
                     device: torch.device) -> BatchSource:
        raise NotImplementedError(f"the {self.name} modality does not build pretraining batches")

    def check_distributed(self, world: int, cfg: Any) -> None:
        """Refuse (one-line ConfigError) pretraining over ``world`` > 1 processes that this modality cannot
        split; ``cfg`` is the ``pretrain`` section. Default: batches of samples, the global batch split evenly
        (:class:`IndexedBatchSource`)."""
        check_global_batch(int(cfg.batch_size), world)

    # ------------------------------------------------------------ subsets

    def subset(self, split: Split, idx: torch.Tensor) -> Split:
        """``split`` restricted to the samples ``idx`` (sorted int64)."""
        samples = split.samples[idx] if split.samples is not None else None
        dataset = Subset(split.dataset, idx.tolist()) if split.dataset is not None else None
        return Split(labels=split.labels[idx], samples=samples, dataset=dataset, extra=split.extra,
                     targets=subset_targets(split, idx))

    # ------------------------------------------------------------ evaluation

    def eval_inputs(self, split: Split, data: DataInfo, device: torch.device, batch_size: int,
                    indices: torch.Tensor | None = None) -> Iterator[Any]:
        """The deterministic evaluation view of the split's samples (or of ``indices``), in order, batched."""
        idx = torch.arange(len(split)) if indices is None else torch.as_tensor(indices).long()
        for i in range(0, len(idx), batch_size):
            chunk = idx[i:i + batch_size]
            if split.samples is not None:
                yield split.samples[chunk].to(device)
            else:
                yield _collate([split.dataset[int(j)][0] for j in chunk]).to(device)

    def eval_batches(self, split: Split, data: DataInfo, device: torch.device, batch_size: int
                     ) -> Iterator[tuple[torch.Tensor, Any]]:
        """The split's evaluation batches as (int64 positions in the split, inputs on ``device``), every sample
        once, in :meth:`eval_order`; what :meth:`features` and :meth:`frame_features` embed. A modality may
        batch differently (audio: by length, under a budget of padded samples)."""
        order = self.eval_order(split)
        idx = torch.arange(len(split)) if order is None else order
        for i, x in zip(range(0, len(idx), batch_size), self.eval_inputs(split, data, device, batch_size, order),
                        strict=True):
            yield idx[i:i + batch_size], x

    @torch.no_grad()
    def features(self, method: Any, split: Split, data: DataInfo, device: torch.device, batch_size: int,
                 shared: dict) -> torch.Tensor:
        """``method.embed`` in eval mode over a split: N samples -> N x D float32 on the CPU, in the split's
        order. ``shared`` is a per-run dict the modality may keep results in across splits (a graph embeds
        once for every split)."""
        out, where = [], []
        with eval_mode(method):
            for idx, x in self.eval_batches(split, data, device, batch_size):
                out.append(method.embed(self.to_model(x)).float().cpu())
                where.append(idx)
        feats = torch.cat(out)
        return torch.empty_like(feats).index_copy_(0, torch.cat(where), feats)

    @torch.no_grad()
    def frame_features(self, method: Any, split: Split, data: DataInfo, device: torch.device,
                       batch_size: int) -> list[torch.Tensor]:
        """``method.embed_frames`` in eval mode over a split: one T_i x D float32 CPU tensor per sample (its
        valid frames), in the split's order; the ``frame_linear`` protocol's features."""
        out: list[torch.Tensor | None] = [None] * len(split)
        with eval_mode(method):
            for idx, x in self.eval_batches(split, data, device, batch_size):
                feats, valid = method.embed_frames(self.to_model(x))
                for row, (j, v) in enumerate(zip(idx.tolist(), valid.tolist(), strict=True)):
                    out[j] = feats[row, :int(v)].float().cpu()
        return out  # type: ignore[return-value]

    def encode_frames(self, encoder: torch.nn.Module, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """An encoder's frame-level features of a batch: (B x T' x D, int64 B valid frames), from its
        ``frame_features`` (audio's ``cpc-conv``: the context c_t, one frame per 10 ms)."""
        fn = getattr(encoder, "frame_features", None)
        if not callable(fn):
            raise ConfigError(f"encoder {type(encoder).__name__} gives no frame-level features (no frame_features()); "
                              "frame_linear needs one (audio: cpc-conv)")
        return fn(x)

    def raw_frame_features(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw inputs as frame-level features (audio: MFCCs every 10 ms): (B x T' x D, int64 B valid)."""
        raise ConfigError(f"the {self.name} modality has no frame-level raw features (frame_linear with "
                          "baseline.pixels)")

    def eval_order(self, split: Split) -> torch.Tensor | None:
        """The order in which :meth:`features` batches the split's samples (features come back in the split's
        order): None, the split's own; a modality may group similar sizes (text: by length, less padding)
        where a sample's embedding does not depend on its batch companions."""
        return None

    # ------------------------------------------------------------ fine-tuning

    def finetune_inputs(self, split: Split, data: DataInfo, device: torch.device, augment: bool,
                        views: dict) -> Callable[[torch.Tensor], Any]:
        """A function: a chunk of training indices -> the fine-tuning input batch on the device. Without
        ``augment`` the deterministic evaluation view; ``views`` overrides the modality's fine-tuning views."""
        if augment:
            raise ConfigError(f"finetune augment: true is not built for {self.name} data; use augment: false")
        return lambda idx: next(self.eval_inputs(split, data, device, len(idx), idx))


def subset_targets(split: Split, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """The split's further label sets (``Split.targets``) restricted to ``idx``, aligned with the subset."""
    return {name: values[idx] for name, values in split.targets.items()}


class eval_mode:
    """Context manager: the module in eval mode, its training flag restored afterwards."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __enter__(self) -> torch.nn.Module:
        self.was_training = self.module.training
        self.module.eval()
        return self.module

    def __exit__(self, *exc: Any) -> None:
        self.module.train(self.was_training)


def _collate(items: list[Any]) -> Any:
    return torch.stack(items) if isinstance(items[0], torch.Tensor) else items


class MappedDataset(Dataset):
    """``base[i][0]`` through a transform: for DataLoaders over on-disk splits."""

    def __init__(self, base: Dataset, transform: Callable[[Any], Any]):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        return self.transform(self.base[i][0])


def loader_batches(dataset: Dataset, batch_size: int, device: torch.device) -> Iterator[Any]:
    """Batches of an on-disk dataset in order (no workers: evaluation is deterministic and single-pass)."""
    for x in DataLoader(dataset, batch_size=batch_size, num_workers=0):
        yield x.to(device)


__all__ = ["Modality", "BatchSource", "IndexedBatchSource", "check_global_batch", "MappedDataset", "eval_mode", "loader_batches"]
