"""CPC (methods/cpc.py) and its encoder (sslbench/components/encoders/audio.py): the loss against a naive
transcription of the paper's InfoNCE, the negative sampler, the 10 ms latent rate, padding, resampling, and a
short real run on FSDD."""

from __future__ import annotations

import math
import tarfile
import wave
from pathlib import Path

import pytest
import torch
from sslbench_methods.cpc import (
    CPC,
    CausalTransformerPredictor,
    anchor_mask,
    frames_of,
    sample_negatives,
)
from torch import nn

import sslbench.components.encoders.audio  # noqa: F401  (registers cpc-conv)
from sslbench.components.encoders.audio import ChannelNorm, CPCEncoder, frame_lengths
from sslbench.components.losses import info_nce
from sslbench.data.base import DataInfo
from sslbench.errors import ConfigError, UnknownNameError
from sslbench.method import Batch
from sslbench.plugins import ENCODERS
from sslbench.views.audio import Waveforms

AUDIO = "audio"


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: on a busy 2-core machine one thread is several times faster than the pool's waits (restored)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _info(targets: dict | None = None) -> DataInfo:
    return DataInfo(name="synthetic", modality=AUDIO, num_classes=2, classes=["a", "b"], channels=1,
                    targets={"speaker": ["s0", "s1", "s2"]} if targets is None else targets)


def _method(dtype=torch.float64, channels: int = 16, context_dim: int = 8, **cfg) -> CPC:
    enc = CPCEncoder(channels=channels, context_dim=context_dim)
    return CPC(CPC.Config(**cfg), enc, context_dim, _info(), 100).to(dtype)


def _naive_loss(method: CPC, z, c, valid, negatives) -> torch.Tensor:
    """The paper's Eq. 4 written out: for every step k and context position t (t + k a valid frame), the positive
    z_{t+k} against the N sampled frames, f = exp(z^T W_k c_t / temperature); mean over t, then over k."""
    b, t_frames, _ = z.shape
    flat = z.reshape(b * t_frames, -1)
    tau = method.cfg.temperature
    per_k = []
    for k in range(1, method.cfg.steps + 1):
        w = method.predictors[k - 1].weight  # D x C
        terms = []
        for i in range(b):
            for t in range(t_frames - k):
                if t + k >= int(valid[i]):
                    continue
                pred = w @ c[i, t]
                pos = torch.exp(z[i, t + k] @ pred / tau)
                den = pos + sum(torch.exp(flat[j] @ pred / tau) for j in negatives[k - 1][i, t].tolist())
                terms.append(-torch.log(pos / den))
        if terms:
            per_k.append(torch.stack(terms).mean())
    return torch.stack(per_k).mean()


@pytest.mark.parametrize("valid", [[9, 9, 9], [9, 6, 4]])
def test_loss_equals_the_naive_transcription_values_and_gradients(valid):
    torch.manual_seed(0)
    m = _method(steps=3, negatives=5, temperature=0.7)
    b, t_frames, d = 3, 9, 16
    z = torch.randn(b, t_frames, d, dtype=torch.float64, requires_grad=True)
    c = torch.randn(b, t_frames, 8, dtype=torch.float64, requires_grad=True)
    valid = torch.tensor(valid)
    negs = sample_negatives(valid, t_frames, 3, 5, torch.zeros(b, dtype=torch.long))
    fast = m.cpc_loss(z, c, valid, negs)
    grads_fast = torch.autograd.grad(fast, [z, c, *m.predictors.parameters()])
    slow = _naive_loss(m, z, c, valid, negs)
    grads_slow = torch.autograd.grad(slow, [z, c, *m.predictors.parameters()])
    assert torch.allclose(fast, slow, rtol=1e-10, atol=1e-12)
    for gf, gs in zip(grads_fast, grads_slow, strict=True):
        assert torch.allclose(gf, gs, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
def test_indexed_negatives_equal_info_nce_on_the_gathered_negatives(normalize):
    """info_nce's negative_index (CPC's sampled negatives) against the same call on cand[idx], A x N x D."""
    torch.manual_seed(1)
    a = torch.randn(20, 6, dtype=torch.float64, requires_grad=True)
    p = torch.randn(20, 6, dtype=torch.float64, requires_grad=True)
    cand = torch.randn(50, 6, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, 50, (20, 7))
    ours = info_nce(a, p, cand, temperature=0.3, in_batch=False, normalize=normalize, negative_index=idx)
    shared = info_nce(a, p, cand[idx], temperature=0.3, in_batch=False, normalize=normalize)
    assert torch.allclose(ours, shared, rtol=1e-12)
    for g1, g2 in zip(torch.autograd.grad(ours, [a, p, cand]), torch.autograd.grad(shared, [a, p, cand]), strict=True):
        assert torch.allclose(g1, g2, rtol=1e-10, atol=1e-14)


def test_negative_index_needs_a_candidate_matrix():
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match="negative_index"):
        info_nce(a, a, None, negative_index=torch.zeros(4, 2, dtype=torch.long))


def test_loss_at_initialisation_is_log_of_the_candidates():
    """Equal scores for every candidate: -log 1/(1 + N)."""
    m = _method(steps=2, negatives=7)
    z = torch.zeros(2, 6, 16, dtype=torch.float64)
    c = torch.randn(2, 6, 8, dtype=torch.float64)
    negs = sample_negatives(torch.tensor([6, 6]), 6, 2, 7, torch.zeros(2, dtype=torch.long))
    assert math.isclose(m.cpc_loss(z, c, torch.tensor([6, 6]), negs).item(), math.log(8), rel_tol=1e-12)


# ---------------------------------------------------------------- the sampler


def _pools(mode: str, groups: torch.Tensor) -> torch.Tensor:
    b = groups.shape[0]
    return {"batch": torch.zeros(b, dtype=torch.long), "sequence": torch.arange(b), "speaker": groups}[mode]


@pytest.mark.parametrize("mode", ["batch", "sequence", "speaker"])
@pytest.mark.parametrize("valid", [[20] * 6, [20, 14, 20, 5, 17, 20]])
def test_negatives_never_include_the_positive_and_stay_in_their_pool(mode, valid):
    b, t_frames, steps, n = 6, 20, 12, 64
    groups = torch.tensor([2, 0, 2, 1, 0, 2])
    valid = torch.tensor(valid)
    pool = _pools(mode, groups)
    seen = torch.zeros(b, b * t_frames, dtype=torch.bool)  # window -> frames drawn as its negatives
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        negs = sample_negatives(valid, t_frames, steps, n, pool, g)
        for k, idx in enumerate(negs, 1):
            assert idx.shape == (b, t_frames - k, n) and idx.dtype == torch.long
            keep = anchor_mask(valid, t_frames, k)
            rows = torch.arange(b)[:, None].expand(b, t_frames - k)
            positive = rows * t_frames + torch.arange(t_frames - k)[None, :] + k
            sel, pos, row = idx[keep], positive[keep], rows[keep]
            assert not (sel == pos[:, None]).any(), f"step {k}: a negative is the positive"
            seq, frame = sel // t_frames, sel % t_frames
            assert (frame < valid[seq]).all(), "a negative from past a window's valid frames"
            assert (pool[seq] == pool[row][:, None]).all(), f"{mode}: a negative from another pool"
            seen[row[:, None].expand_as(sel).flatten(), sel.flatten()] = True
    frames = torch.arange(b * t_frames)
    in_pool = (pool[frames // t_frames][None, :] == pool[:, None]) & (frames % t_frames < valid[frames // t_frames])
    drew = valid > 1  # windows with at least one anchor
    # every frame of the pool is drawn by some anchor of the window (each anchor skips only its own positive)
    assert torch.equal(seen[drew], in_pool[drew]), f"{mode}: the draws miss frames of the pool"
    if mode == "speaker":  # the same speaker's other windows, not only its own
        assert set((torch.nonzero(seen[0]).flatten() // t_frames).tolist()) == {0, 2, 5}


def test_negative_draws_are_uniform_without_the_positive():
    """Two windows of 3 frames, one pool: anchor (0, t=0), k=1, positive frame 1; the 5 other frames alike."""
    g = torch.Generator().manual_seed(3)
    negs = sample_negatives(torch.tensor([3, 3]), 3, 1, 20000, torch.zeros(2, dtype=torch.long), g)[0][0, 0]
    counts = torch.bincount(negs, minlength=6).double() / negs.numel()
    assert counts[1] == 0
    assert torch.allclose(counts[[0, 2, 3, 4, 5]], torch.full((5,), 0.2, dtype=torch.float64), atol=0.015)


def test_sampling_is_seeded_by_the_global_generator():
    m = _method(steps=4, negatives=8)
    valid, pool = torch.tensor([30, 30]), torch.zeros(2, dtype=torch.long)
    torch.manual_seed(5)
    a = m.sample(valid, 30, pool)
    torch.manual_seed(5)
    b = m.sample(valid, 30, pool)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------- the encoder


@pytest.mark.parametrize("samples,frames", [(16000, 100), (20480, 128), (4800, 30), (159, 1), (319, 2), (318, 1)])
def test_ten_ms_latent_rate(samples, frames):
    """floor((T + 1) / 160) latents: 16000 samples (1 s at 16 kHz) -> 100, 20480 -> 128."""
    enc = CPCEncoder(channels=8, context_dim=4)
    with torch.no_grad():
        z = enc.frames(torch.randn(1, 1, samples))
    assert z.shape == (1, frames, 8) and frame_lengths(samples) == frames == frames_of(samples)


@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_features_do_not_depend_on_the_batch_padding(norm, pooling):
    torch.manual_seed(0)
    enc = CPCEncoder(channels=16, context_dim=8, norm=norm, pooling=pooling).double().eval()
    clips = [torch.randn(n, dtype=torch.float64) for n in (7000, 3001, 1650, 5000)]
    batch = Waveforms.collate(clips, 16000)
    batch.x = batch.x.double()
    batch.x[1, 0, 3001:] = 1.0  # whatever the padding holds
    with torch.no_grad():
        together = enc(batch)
        alone = torch.cat([enc(c[None, None]) for c in clips])
        c, valid = enc.frame_features(batch)
    assert torch.allclose(together, alone, atol=1e-10)
    assert valid.tolist() == [frame_lengths(len(x)) for x in clips] and c.shape == (4, 43, 8)


def test_encoder_options_and_registration():
    make = ENCODERS.get("cpc-conv")
    assert make.modality == AUDIO
    enc = make(_info(), {})
    assert enc.num_features == 256 and enc.channels == 512 and isinstance(enc.ar, nn.GRU)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv1d)]
    assert [(m.kernel_size[0], m.stride[0], m.out_channels) for m in convs] == [
        (10, 5, 512), (8, 4, 512), (4, 2, 512), (4, 2, 512), (4, 2, 512)]
    enc = make(_info(), {"norm": "layer", "context": "lstm", "context_dim": 64})
    assert isinstance(enc.ar, nn.LSTM) and enc.num_features == 64
    assert sum(isinstance(m, ChannelNorm) for m in enc.modules()) == 5
    with pytest.raises(ConfigError, match="encoder.options.norm"):
        make(_info(), {"norm": "group"})
    with pytest.raises(UnknownNameError, match="Unknown option 'stride'"):
        make(_info(), {"stride": 3})


# ---------------------------------------------------------------- the method


def test_training_step_on_waveforms_and_speaker_groups():
    torch.manual_seed(0)
    m = _method(dtype=torch.float32, steps=4, negatives=16, negatives_from="speaker")
    assert m.group_by == "speaker" and m.num_negatives(8) == 16
    x = Waveforms(torch.randn(4, 1, 1600), torch.tensor([1600, 1600, 1200, 1600]))
    out = m.training_step(Batch(views=[x], index=torch.arange(4), groups=torch.tensor([0, 1, 0, 1])))
    assert out.loss.requires_grad and math.isfinite(out.loss.item())
    with pytest.raises(ConfigError, match="Batch.groups"):
        m.training_step(Batch(views=[x], index=torch.arange(4)))
    with pytest.raises(ConfigError, match="crop_samples"):
        m.training_step(Batch(views=[torch.randn(4, 1, 640)], index=torch.arange(4)))


def test_speaker_negatives_need_a_speaker_target():
    with pytest.raises(ConfigError, match="no 'speaker' target"):
        CPC(CPC.Config(negatives_from="speaker"), CPCEncoder(channels=8, context_dim=8), 8, _info({}), 10)
    with pytest.raises(ConfigError, match="method.negatives_from"):
        CPC(CPC.Config(negatives_from="chapter"), CPCEncoder(channels=8, context_dim=8), 8, _info(), 10)
    assert _method(negatives_from="sequence").group_by is None


def test_cpc_audio_variant_builds_the_reference_architecture():
    from sslbench.suites import build_run_config

    cfg, cls, _ = build_run_config("cpc.audio", "fsdd-cpc", seed=0)
    assert cls is CPC and cfg.method_config.negatives == 128 and cfg.method_config.negatives_from == "speaker"
    m = CPC(cfg.method_config, CPCEncoder(channels=512, context_dim=256), 256, _info(), 10)
    assert isinstance(m.encoder.ar, nn.LSTM) and m.encoder.channels == 256
    assert sum(isinstance(x, ChannelNorm) for x in m.encoder.modules()) == 5
    assert len(m.predictors) == 12 and all(isinstance(p, CausalTransformerPredictor) for p in m.predictors)
    assert m.group_by == "speaker" and m.cfg.temperature == 256.0


def test_transformer_predictor_is_causal():
    torch.manual_seed(0)
    p = CausalTransformerPredictor(16, 24, heads=4).eval()
    c = torch.randn(2, 10, 16)
    c2 = c.clone()
    c2[:, 6:] = torch.randn(2, 4, 16)
    with torch.no_grad():
        assert torch.allclose(p(c)[:, :6], p(c2)[:, :6], atol=1e-6)
        assert p(c).shape == (2, 10, 24)


def test_memory_floor_grows_with_the_negatives():
    m = _method(steps=12, negatives=64)
    m.views(type("V", (), {"crop_samples": 20480})())
    small = m.negatives_memory_bytes(8)
    m.cfg.negatives = 128
    assert m.negatives_memory_bytes(8) > small > 0 and CPC.negatives_key == "method.negatives"


# ---------------------------------------------------------------- real audio


def _write_wav(path: Path, samples: int, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = torch.arange(samples, dtype=torch.float64) / rate
    pcm = (0.3 * torch.sin(2 * math.pi * 440 * t) * 32767).short()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.numpy().tobytes())


def test_an_8khz_clip_is_resampled_to_16khz_before_the_encoder(tmp_path):
    """A 1-second 8 kHz file -> 16000 samples -> 100 latents (not 8000 samples read as 16 kHz -> 50)."""
    from sslbench.data import load_dataset

    for name in ["a/one.wav", "a/two.wav", "b/three.wav", "b/four.wav"]:
        _write_wav(tmp_path / "clips" / name, 8000, 8000)
    _, splits = load_dataset("audiofolder", ["all"], tmp_path, path="clips")
    clip = splits["all"].samples[0]
    assert clip.shape[-1] == 16000
    enc = CPCEncoder(channels=8, context_dim=4)
    with torch.no_grad():
        assert enc.frames(clip.reshape(1, 1, -1)).shape[1] == 100


def test_the_loss_falls_on_fsdd(data_root):
    """A few dozen steps of a small CPC on real FSDD windows (through build_run and the trainer)."""
    if not (data_root / "audio" / "fsdd.tar.gz").is_file():
        pytest.skip("FSDD not in the data root")
    from sslbench.build import RunOptions, build_run
    from sslbench.suites import build_run_config

    sets = [("encoder.options.channels", 32), ("encoder.options.context_dim", 32), ("pretrain.batch_size", 16),
            ("views.crop_samples", 3200), ("pretrain.lr", 2e-3), ("method.negatives", 32), ("pretrain.epochs", 1),
            ("pretrain.threads", 1)]
    cfg, cls, _ = build_run_config("cpc", "fsdd-cpc", sets, seed=0)
    run = build_run(cfg, cls, RunOptions(data_root=data_root, progress=False))
    # FSDD's 8 kHz files reach the encoder at 16 kHz: twice the samples (two frames per 320 samples at 8 kHz)
    name = run.train.extra["files"][0].rpartition(":")[2]
    with tarfile.open(data_root / "audio" / "fsdd.tar.gz") as tar:
        member = next(m for m in tar if m.name.endswith(name))
        with wave.open(tar.extractfile(member)) as w:
            assert w.getframerate() == 8000
            raw = w.getnframes()
    clip = run.train.samples[0]
    assert abs(clip.shape[-1] - 2 * raw) <= 1 and run.train.extra["sample_rate"] == 16000
    assert run.method.encoder.frames(clip.reshape(1, 1, -1)).shape[1] == frame_lengths(2 * raw)
    losses = [run.trainer.train_step(b) for b in run.trainer.batches(40)]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert math.isclose(losses[0], math.log(33), rel_tol=0.02)  # chance: 1 positive among 33 candidates
    assert last < first - 0.1, losses
