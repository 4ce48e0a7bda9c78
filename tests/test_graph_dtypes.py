"""The GCN's sparse adjacency follows the features' dtype (float64 runs), and graph methods train under bf16
autocast (CPU has no bf16 sparse CSR kernel: the GCN runs in float32 on purpose there). Both failed before
issue 10: "expected scalar type Double but found Float" and "addmm_out_sparse_csr_impl_mkl not implemented for
'BFloat16'"."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from sslbench.components.encoders.graph import GCN
from sslbench.data.base import DataInfo
from sslbench.method import Batch

N, F = 60, 12


def _graph(dtype=torch.float32) -> Data:
    g = torch.Generator().manual_seed(0)
    return Data(x=torch.rand(N, F, generator=g, dtype=dtype), edge_index=torch.randint(0, N, (2, 240), generator=g),
                num_nodes=N)


def _dgi(dtype=torch.float32):
    from sslbench_methods.dgi import DGI

    info = DataInfo(name="toy", modality="graph", num_classes=2, classes=["a", "b"], num_features=F, num_nodes=N)
    torch.manual_seed(0)
    enc = GCN(F, (16,), "prelu")
    return DGI(DGI.Config(), enc, 16, info, N).to(dtype)


def test_gcn_in_float64_matches_float32():
    g = _graph()
    torch.manual_seed(0)
    enc = GCN(F, (16, 8), "relu")
    out32 = enc(g.x, g.edge_index)
    out64 = enc.double()(g.x.double(), g.edge_index)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dgi_trains_in_the_features_dtype(dtype):
    method, g = _dgi(dtype), _graph(dtype)
    opt = torch.optim.Adam(method.parameters(), lr=0.01)
    losses = []
    for _ in range(5):
        loss = method.training_step(Batch(views=[g], index=torch.arange(N))).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_dgi_step_under_bf16_autocast():
    method, g = _dgi(), _graph()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = method.training_step(Batch(views=[g], index=torch.arange(N))).loss
        h = method.encoder(g.x.bfloat16(), g.edge_index)  # bf16 features: computed in float32, cast back
    loss.float().backward()
    assert torch.isfinite(loss) and h.dtype == torch.bfloat16
    assert all(p.grad is not None for p in method.encoder.parameters())
