"""Tests of alster_mapping.nets.sparse (both backends) and nets.unet3d.

Correctness of the pure-PyTorch backend is checked against dense ``conv3d`` /
``conv_transpose3d`` on a small grid; the MinkowskiEngine backend (the reference the ALSTER
paper used) is compared op by op and for the whole U-Net with shared weights: outputs and
gradients of the input and of every parameter. "Relative error" is max|a - b| / max|b|
over a tensor. Parity tests skip with the reason when MinkowskiEngine does not import.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from alster_mapping.nets import sparse as sp
from alster_mapping.nets.sparse import minkowski_backend, torch_convolution
from alster_mapping.nets.sparse import torch_backend as tb
from alster_mapping.nets.unet3d import UNet3D, count_parameters

needs_minkowski = pytest.mark.skipif(
    not sp.minkowski_available(), reason=sp.minkowski_unavailable_reason() or "MinkowskiEngine available"
)

KERNEL_CASES = [(3, 1, 1), (3, 1, 2), (3, 2, 1), (2, 2, 1), (3, 2, 2), (1, 1, 1), (1, 2, 1), (2, 1, 1)]  # (K, stride, dilation)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / max|b| (0 for two empty tensors)."""
    if b.numel() == 0:
        return 0.0
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def surface_keys(seed: int, n_surfaces: int = 6, voxel: float = 0.04, extent: float = 1.5) -> torch.Tensor:
    """Distinct voxel keys (N, 3) int32 of random planes and sphere shells, sampled every
    1 cm with 5 mm noise, voxelized at ``voxel`` metres; centred on the origin, so
    coordinates of both signs occur."""
    rng = np.random.default_rng(seed)
    points = []
    for i in range(n_surfaces):
        if i % 2 == 0:
            normal = rng.normal(size=3)
            normal /= np.linalg.norm(normal)
            u = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
            u /= np.linalg.norm(u)
            v = np.cross(normal, u)
            size = rng.uniform(0.3, 0.7)
            a, b = np.meshgrid(np.arange(-size, size, 0.01), np.arange(-size, size, 0.01), indexing="ij")
            p = rng.uniform(-0.5, 0.5, 3) + a.reshape(-1, 1) * u + b.reshape(-1, 1) * v
        else:
            radius = rng.uniform(0.15, 0.35)
            d = rng.normal(size=(int(4 * np.pi * radius**2 / 1e-4), 3))
            p = rng.uniform(-0.8, 0.8, 3) + radius * d / np.linalg.norm(d, axis=1, keepdims=True)
        points.append(p + rng.normal(0.0, 0.005, p.shape))
    pts = np.concatenate(points)
    pts = pts[np.all(np.abs(pts) < extent, axis=1)]
    keys = np.unique(np.floor(pts / voxel).astype(np.int64), axis=0)
    keys = keys[rng.permutation(len(keys))]
    return torch.from_numpy(keys).to(torch.int32)


def batched(keys: torch.Tensor, batches: int = 2) -> torch.Tensor:
    """(N, 4) int32 [batch, x, y, z]: ``keys`` repeated in ``batches`` batches, the copies shifted."""
    parts = [torch.cat([torch.full((len(keys), 1), b), keys + 3 * b], 1) for b in range(batches)]
    return torch.cat(parts).to(torch.int32)


def sort_rows(x: sp.SparseTensor) -> torch.Tensor:
    """Row order that sorts the tensor's coordinates lexicographically (backends order strided sets differently)."""
    c = x.coordinates.to(torch.int64)
    c = c - c.min(0).values
    ext = c.max(0).values + 1
    code = ((c[:, 0] * ext[1] + c[:, 1]) * ext[2] + c[:, 2]) * ext[3] + c[:, 3]
    return torch.argsort(code)


# ---------------------------------------------------------------------------
# Torch backend against dense convolution
# ---------------------------------------------------------------------------


@pytest.fixture(params=["dense", "single", "pairs"])
def propagation(request, monkeypatch):
    """Run the torch backend with each of its three propagation forms forced where possible."""
    if request.param == "pairs":
        monkeypatch.setattr(tb, "DENSE_MIN_DENSITY", 2.0)
        monkeypatch.setattr(tb._MapCore, "single", lambda self, input_side: None)
    elif request.param == "single":
        monkeypatch.setattr(tb, "DENSE_MIN_DENSITY", 2.0)
    else:
        monkeypatch.setattr(tb, "DENSE_MIN_DENSITY", 0.0)
    monkeypatch.setattr(torch_convolution, "COLUMN_BYTES", 4096)  # several im2col chunks on a small grid
    return request.param


def dense_grid_case(seed: int, grid: int = 8, c_in: int = 3):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand((grid, grid, grid), generator=g) < 0.35
    coords = mask.nonzero().to(torch.int32)
    feats = torch.randn((len(coords), c_in), generator=g, dtype=torch.float64)
    dense = torch.zeros((1, c_in, grid, grid, grid), dtype=torch.float64)
    dense[0, :, coords[:, 0], coords[:, 1], coords[:, 2]] = feats.T
    c4 = torch.cat([torch.zeros((len(coords), 1), dtype=torch.int32), coords], 1)
    return coords, feats, dense, c4


@pytest.mark.parametrize("kernel_size,stride,dilation", KERNEL_CASES)
def test_conv_matches_dense_conv3d(kernel_size, stride, dilation, propagation):
    torch.manual_seed(0)
    coords, feats, dense, c4 = dense_grid_case(1)
    conv = sp.SparseConv3d(3, 4, kernel_size, stride, dilation, bias=True).double()
    y = conv(sp.sparse_tensor(c4, feats))
    k = kernel_size
    w = conv.weight.detach().reshape(k, k, k, 3, 4).permute(4, 3, 0, 1, 2)
    if k % 2:
        ref = F.conv3d(dense, w, conv.bias.detach(), stride=stride, padding=(k // 2) * dilation, dilation=dilation)
    else:  # offsets 0 .. K-1: pad after only
        padded = F.pad(dense, (0, (k - 1) * dilation) * 3)
        ref = F.conv3d(padded, w, conv.bias.detach(), stride=stride, dilation=dilation)
    ref = ref[0]
    oc = (y.coordinates[:, 1:] // stride).long()
    assert y.stride == stride
    assert torch.equal(y.coordinates[:, 0], torch.zeros(len(y), dtype=torch.int32))
    if stride == 1:
        assert torch.equal(y.coordinates, c4)
    else:  # every coarse cell holding an input voxel, once
        assert len(torch.unique(oc, dim=0)) == len(oc) == len(torch.unique(coords // stride, dim=0))
    expected = ref[:, oc[:, 0], oc[:, 1], oc[:, 2]].T
    assert (y.features.detach() - expected).abs().max() < 1e-5


@pytest.mark.parametrize("kernel_size,dilation", [(2, 1), (3, 1), (3, 2)])
def test_transposed_conv_matches_dense_conv_transpose3d(kernel_size, dilation, propagation):
    torch.manual_seed(0)
    coords, feats, dense, c4 = dense_grid_case(2)
    x = sp.sparse_tensor(c4, feats)
    down = sp.SparseConv3d(3, 5, kernel_size, 2, dilation).double()(x)
    up = sp.SparseConvTranspose3d(5, 2, kernel_size, 2, dilation, bias=True).double()
    y = up(down, target=x)
    assert torch.equal(y.coordinates, c4) and y.stride == 1
    k = kernel_size
    coarse = torch.zeros((1, 5, 4, 4, 4), dtype=torch.float64)
    oc = (down.coordinates[:, 1:] // 2).long()
    coarse[0, :, oc[:, 0], oc[:, 1], oc[:, 2]] = down.features.detach().T
    w = up.weight.detach().reshape(k, k, k, 5, 2).permute(3, 4, 0, 1, 2)
    pad = (k // 2) * dilation if k % 2 else 0
    ref = F.conv_transpose3d(
        coarse, w, up.bias.detach(), stride=2, padding=pad, output_padding=1 if k % 2 else 0, dilation=dilation
    )[0]
    expected = ref[:, coords[:, 0], coords[:, 1], coords[:, 2]].T
    assert (y.features.detach() - expected).abs().max() < 1e-5
    # Without a target it returns to the set it was down-sampled from.
    assert torch.allclose(up(down).features, y.features)


@pytest.mark.parametrize("kernel_size,stride", [(3, 1), (3, 2), (2, 2)])
def test_explicit_backward_passes_gradcheck(kernel_size, stride, propagation):
    keys = surface_keys(3, n_surfaces=2)
    keys = keys[torch.argsort((keys - keys[0]).abs().sum(1))[:40]]  # a compact patch: many pairs
    c4 = batched(keys, 1)
    x = sp.sparse_tensor(c4, torch.zeros((len(c4), 1)))
    _, kmap = x.manager.convolution_map(x.key, kernel_size, stride, 1)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn((len(c4), 2), generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn((kernel_size**3, 2, 2), generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, w: sp.sparse_convolution(f, w, kmap), (feats, weight))
    coarse = torch.randn((kmap.num_out, 2), generator=g, dtype=torch.float64, requires_grad=True)
    weight_t = torch.randn((kernel_size**3, 2, 2), generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, w: sp.sparse_convolution(f, w, kmap.transposed()), (coarse, weight_t))


@pytest.mark.parametrize("kernel_size,dilation", [(3, 1), (3, 2), (2, 1)])
def test_grid_and_sorted_kernel_maps_agree(kernel_size, dilation):
    c4 = batched(surface_keys(4), 2)
    offsets = sp.kernel_offsets(kernel_size) * dilation
    maps = [sp.build_kernel_map(c4, None, 1, offsets, method) for method in ("grid", "sorted")]
    coarse = tb.strided_coordinates(c4, 2)
    maps += [sp.build_kernel_map(c4, coarse, 1, offsets, method) for method in ("grid", "sorted")]
    for a, b in (maps[:2], maps[2:]):
        assert a.offsets == b.offsets and a.identity == b.identity
        pa, pb = a.pairs(), b.pairs()
        assert pa[2] == pb[2] and torch.equal(pa[0], pb[0]) and torch.equal(pa[1], pb[1])
    # Every pair really is coordinate + offset.
    in_index, out_index, spans = maps[0].pairs()
    for k, start, end in spans:
        diff = c4[in_index[start:end], 1:] - c4[out_index[start:end], 1:]
        assert torch.equal(diff, offsets[k].to(torch.int32).expand_as(diff))
        assert torch.equal(c4[in_index[start:end], 0], c4[out_index[start:end], 0])


def test_strided_coordinates_floor_negative_coordinates():
    c = torch.tensor([[0, -1, -3, 2], [0, 1, 0, 3], [0, -2, 5, -5], [1, -1, -3, 2]], dtype=torch.int32)
    out = tb.strided_coordinates(c, 2)
    expected = torch.tensor([[0, -2, -4, 2], [0, -2, 4, -6], [0, 0, 0, 2], [1, -2, -4, 2]], dtype=torch.int32)
    assert torch.equal(out, expected)


def test_kernel_offsets_and_minkowski_order():
    offsets = sp.kernel_offsets(3)
    assert offsets.shape == (27, 3) and offsets[0].tolist() == [-1, -1, -1] and offsets[1].tolist() == [-1, -1, 0]
    assert sp.kernel_offsets(2).tolist()[:2] == [[0, 0, 0], [0, 0, 1]]
    table = [0, 9, 18, 3, 12, 21, 6, 15, 24, 1, 10, 19, 4, 13, 22, 7, 16, 25, 2, 11, 20, 5, 14, 23, 8, 17, 26]
    assert sp.minkowski_kernel_order(3).tolist() == table  # ../shared/docs/MEASUREMENTS.md
    for k in (1, 2, 3):
        perm = sp.minkowski_kernel_order(k)
        assert torch.equal(perm[perm], torch.arange(k**3))


# ---------------------------------------------------------------------------
# API behaviour and errors
# ---------------------------------------------------------------------------


def test_invalid_inputs_raise():
    c4 = batched(surface_keys(5, 2)[:50], 1)
    f = torch.randn((len(c4), 3))
    with pytest.raises(ValueError, match="unknown sparse backend"):
        sp.sparse_tensor(c4, f, backend="spconv")
    with pytest.raises(ValueError, match="distinct"):
        sp.sparse_tensor(torch.cat([c4, c4[:1]]), torch.randn((len(c4) + 1, 3)))
    with pytest.raises(ValueError, match="multiples"):
        sp.sparse_tensor(c4 * 2 + torch.tensor([0, 1, 0, 0], dtype=torch.int32), f, stride=2)
    with pytest.raises(ValueError, match="batch"):
        sp.sparse_tensor(c4 - torch.tensor([1, 0, 0, 0], dtype=torch.int32), f)
    with pytest.raises(ValueError, match="input channels"):
        sp.SparseConv3d(4, 2)(sp.sparse_tensor(c4, f))
    x = sp.sparse_tensor(c4, f)
    y = sp.SparseConv3d(3, 3, 3, backend="torch")(x)
    with pytest.raises(ValueError, match="same coordinates"):
        sp.cat([x, sp.SparseConv3d(3, 3, 2, stride=2)(x)])
    assert sp.cat([x, y]).num_channels == 6 and len(x + y) == len(x)
    with pytest.raises(ValueError, match="does not divide"):
        sp.SparseConvTranspose3d(3, 3)(x)
    with pytest.raises(ValueError, match="no finer coordinate set"):
        sp.SparseConvTranspose3d(3, 3)(sp.sparse_tensor(c4 * 2, f, stride=2))


def test_empty_sparse_tensor_through_every_module():
    f = torch.zeros((0, 3), requires_grad=True)
    x = sp.sparse_tensor(torch.zeros((0, 4), dtype=torch.int32), f)
    y = sp.SparseConv3d(3, 4, 3)(x)
    z = sp.SparseConv3d(4, 5, 2, stride=2)(y)
    u = sp.SparseReLU()(sp.SparseBatchNorm(4)(sp.SparseConvTranspose3d(5, 4)(z, target=y)))
    assert (len(y), len(z), len(u)) == (0, 0, 0) and (z.stride, u.stride) == (2, 1) and u.num_channels == 4
    u.features.sum().backward()
    assert f.grad.shape == (0, 3)


def test_missing_minkowski_raises_clear_error(monkeypatch):
    monkeypatch.setattr(minkowski_backend, "_ME", None)
    monkeypatch.setattr(minkowski_backend, "_IMPORT_ERROR", ImportError("No module named 'MinkowskiEngine'"))
    with pytest.raises(sp.BackendUnavailableError, match="MinkowskiEngine"):
        sp.SparseConv3d(3, 4, backend="minkowski")
    with pytest.raises(ImportError, match="backend='torch'"):
        UNet3D(backend="minkowski")
    assert not sp.minkowski_available() and "No module" in sp.minkowski_unavailable_reason()


@needs_minkowski
def test_module_refuses_tensor_of_other_backend():
    c4 = batched(surface_keys(5, 2)[:50], 1)
    x = sp.sparse_tensor(c4, torch.randn((len(c4), 3)), backend="minkowski")
    with pytest.raises(ValueError, match="backend"):
        sp.SparseConv3d(3, 4, backend="torch")(x)


# ---------------------------------------------------------------------------
# Parity with MinkowskiEngine
# ---------------------------------------------------------------------------


def _run_op(module, backend, coords, feats, grad_seed, transposed=False):
    sp.set_backend(module, backend)
    module.zero_grad()
    f = feats.clone().requires_grad_(True)
    x = sp.sparse_tensor(coords, f, backend=backend)
    if transposed:
        coarse = sp.SparseConv3d(feats.shape[1], module.in_channels, module.kernel_size, module.stride, backend=backend)
        coarse.weight.data.copy_(module._down_weight)
        y = module(coarse(x), target=x)
    else:
        y = module(x)
    order = sort_rows(y) if not transposed else torch.arange(len(y))
    out = y.features[order]
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed))
    (out * g).sum().backward()
    grads = [f.grad] + [p.grad.clone() for p in module.parameters()]
    return y.coordinates[order], out.detach(), grads


@needs_minkowski
@pytest.mark.parametrize("kernel_size,stride,dilation", KERNEL_CASES)
def test_conv_parity_with_minkowski(kernel_size, stride, dilation, propagation):
    torch.manual_seed(0)
    coords = batched(surface_keys(6), 2)
    feats = torch.randn((len(coords), 5))
    conv = sp.SparseConv3d(5, 7, kernel_size, stride, dilation, bias=True)
    c_t, y_t, g_t = _run_op(conv, "torch", coords, feats, 1)
    c_m, y_m, g_m = _run_op(conv, "minkowski", coords, feats, 1)
    assert len(coords) > 2000
    assert torch.equal(c_t, c_m)
    assert rel_err(y_t, y_m) < 1e-4
    for a, b in zip(g_t, g_m):
        assert rel_err(a, b) < 1e-4


@needs_minkowski
@pytest.mark.parametrize("kernel_size,dilation", [(2, 1), (3, 1), (3, 2)])
def test_transposed_conv_parity_with_minkowski(kernel_size, dilation, propagation):
    torch.manual_seed(0)
    coords = batched(surface_keys(7), 2)
    feats = torch.randn((len(coords), 4))
    up = sp.SparseConvTranspose3d(6, 3, kernel_size, 2, dilation, bias=True)
    up._down_weight = torch.randn((kernel_size**3, 4, 6))
    c_t, y_t, g_t = _run_op(up, "torch", coords, feats, 2, transposed=True)
    c_m, y_m, g_m = _run_op(up, "minkowski", coords, feats, 2, transposed=True)
    assert torch.equal(c_t, coords) and torch.equal(c_m, coords)
    assert rel_err(y_t, y_m) < 1e-4
    for a, b in zip(g_t, g_m):
        assert rel_err(a, b) < 1e-4


@needs_minkowski
def test_batchnorm_relu_parity_with_minkowski():
    torch.manual_seed(0)
    coords = batched(surface_keys(8), 2)
    feats = torch.randn((len(coords), 6)) * 3 + 1
    net = torch.nn.Sequential(sp.SparseConv3d(6, 6, 3, stride=2), sp.SparseBatchNorm(6), sp.SparseReLU())
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    results = {}
    for backend in ("torch", "minkowski"):
        net.load_state_dict(initial)
        sp.set_backend(net, backend)
        net.zero_grad()
        f = feats.clone().requires_grad_(True)
        y = net(sp.sparse_tensor(coords, f, backend=backend))
        out = y.features[sort_rows(y)]
        (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(3))).sum().backward()
        results[backend] = [out.detach(), f.grad, net[1].running_mean.clone(), net[1].running_var.clone()]
        results[backend] += [p.grad.clone() for p in net.parameters()]
    for a, b in zip(results["torch"], results["minkowski"]):
        assert rel_err(a, b) < 1e-4


@needs_minkowski
def test_unet_parity_with_minkowski_outputs_and_all_gradients():
    torch.manual_seed(0)
    keys = surface_keys(9)
    feats = torch.randn((len(keys), 40))
    net = UNet3D()
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    results = {}
    for backend in ("torch", "minkowski"):
        net.load_state_dict(initial)  # both runs start from the same BN statistics
        sp.set_backend(net, backend)
        net.zero_grad()
        f = feats.clone().requires_grad_(True)
        out, logits = net(keys, f)
        g = torch.Generator().manual_seed(4)
        loss = (out * torch.randn(out.shape, generator=g)).sum()
        (loss + (logits * torch.randn(logits.shape, generator=g)).sum()).backward()
        results[backend] = (
            [out.detach(), logits.detach(), f.grad]
            + [p.grad.clone() for p in net.parameters()]
            + [b.clone() for b in net.buffers() if b.is_floating_point()]
        )
    assert len(keys) > 2000
    errors = [rel_err(a, b) for a, b in zip(results["torch"], results["minkowski"])]
    assert len(errors) == 3 + len(list(net.parameters())) + sum(1 for b in net.buffers() if b.is_floating_point())
    assert max(errors) < 1e-4, errors


@needs_minkowski
def test_state_dict_round_trip_across_backends(tmp_path):
    torch.manual_seed(0)
    keys = surface_keys(10)
    feats = torch.randn((len(keys), 40))
    for source, target in (("torch", "minkowski"), ("minkowski", "torch")):
        net = UNet3D(backend=source)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        out, logits = net(keys, feats)  # one training step: BN statistics and weights move
        (out.square().mean() + logits.square().mean()).backward()
        opt.step()
        net.eval()
        with torch.no_grad():
            expected = net(keys, feats)
        path = tmp_path / f"unet3d_{source}.safetensors"
        save_file(net.state_dict(), str(path))
        loaded = UNet3D(backend=target)
        loaded.load_state_dict(load_file(str(path)))
        loaded.eval()
        with torch.no_grad():
            got = loaded(keys, feats)
        assert rel_err(got[0], expected[0]) < 1e-4 and rel_err(got[1], expected[1]) < 1e-4


@pytest.mark.parametrize("backend", ["torch", pytest.param("minkowski", marks=needs_minkowski)])
def test_unet_empty_and_single_voxel(backend):
    net = UNet3D(backend=backend)
    for mode in (True, False):
        net.train(mode)
        out, logits = net(torch.zeros((0, 3), dtype=torch.int32), torch.zeros((0, 40)))
        assert out.shape == (0, 40) and logits.shape == (0, 20)
        out, logits = net(torch.tensor([[-5, 7, 123]], dtype=torch.int32), torch.randn((1, 40)))
        assert out.shape == (1, 40) and logits.shape == (1, 20) and bool(torch.isfinite(logits).all())


# ---------------------------------------------------------------------------
# UNet3D properties (torch backend)
# ---------------------------------------------------------------------------


def test_unet_outputs_follow_input_order():
    torch.manual_seed(0)
    keys = surface_keys(11)
    feats = torch.randn((len(keys), 40))
    net = UNet3D().eval()
    perm = torch.randperm(len(keys), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, logits = net(keys, feats)
        out_p, logits_p = net(keys[perm], feats[perm])
    assert out.shape == (len(keys), 40) and logits.shape == (len(keys), 20)
    assert rel_err(out_p, out[perm]) < 1e-5 and rel_err(logits_p, logits[perm]) < 1e-5


def test_unet_invariant_to_shifts_by_the_coarsest_stride():
    torch.manual_seed(0)
    keys = surface_keys(12)
    feats = torch.randn((len(keys), 40))
    net = UNet3D().eval()
    shift = torch.tensor([8 * 3, -8 * 5, 8 * 1000], dtype=torch.int32)
    with torch.no_grad():
        a = net(keys, feats)
        b = net(keys + shift, feats)
    assert net.coarsest_stride == 8
    assert rel_err(b[0], a[0]) < 1e-5 and rel_err(b[1], a[1]) < 1e-5


def test_unet_gradients_reach_every_parameter():
    torch.manual_seed(0)
    keys = surface_keys(13)
    net = UNet3D()
    out, logits = net(keys, torch.randn((len(keys), 40)))
    (out.square().mean() + F.cross_entropy(logits, torch.randint(0, 20, (len(keys),)))).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().max()) > 0, name


def test_unet_deterministic_for_a_fixed_seed():
    keys = surface_keys(14)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        net = UNet3D()
        feats = torch.randn((len(keys), 40))
        outputs.append(net(keys, feats))
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])


def test_unet_configuration_and_parameter_count():
    net = UNet3D(in_channels=8, feature_dim=12, num_classes=5, channels=(8, 16), blocks=(1, 2), input_skip=False)
    assert net.num_parameters == count_parameters(net) == sum(p.numel() for p in net.parameters())
    keys = surface_keys(15, 2)
    out, logits = net(keys, torch.randn((len(keys), 8)))
    assert out.shape == (len(keys), 12) and logits.shape == (len(keys), 5)
    assert 100_000 < UNet3D().num_parameters < 2_000_000
    with pytest.raises(ValueError, match="blocks"):
        UNet3D(channels=(8, 16), blocks=(1,))
    with pytest.raises(ValueError, match="keys"):
        net(torch.zeros((3, 2), dtype=torch.int32), torch.zeros((3, 8)))
    with pytest.raises(ValueError, match="distinct"):
        net(torch.zeros((2, 3), dtype=torch.int32), torch.zeros((2, 8)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_backend_on_cuda_matches_cpu():
    torch.manual_seed(0)
    keys = surface_keys(16)
    feats = torch.randn((len(keys), 40))
    net = UNet3D()
    out_cpu = net(keys, feats)
    (out_cpu[0].sum() + out_cpu[1].sum()).backward()
    grads_cpu = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.cuda()
    out_gpu = net(keys.cuda(), feats.cuda())
    (out_gpu[0].sum() + out_gpu[1].sum()).backward()
    assert rel_err(out_gpu[0].cpu(), out_cpu[0]) < 1e-4 and rel_err(out_gpu[1].cpu(), out_cpu[1]) < 1e-4
    for p, g in zip(net.parameters(), grads_cpu):
        assert rel_err(p.grad.cpu(), g) < 1e-3


def test_bench_quick_mode_runs(tmp_path):
    bench_dir = pathlib.Path(__file__).resolve().parents[2] / "bench"
    sys.path.insert(0, str(bench_dir))
    threads = torch.get_num_threads()
    try:
        bench_sparse = importlib.import_module("bench_sparse")
        assert bench_sparse.main(["--quick", "--out", str(tmp_path)]) == 0
    finally:
        sys.path.remove(str(bench_dir))
        torch.set_num_threads(threads)
    result = json.loads((tmp_path / "bench_sparse.json").read_text())
    assert result["model"]["parameters"] == UNet3D().num_parameters
    entry = result["results"][0]
    for backend in result["backends"]:
        assert entry["ms"][f"{backend}/forward"]["median"] > 0
        assert len(entry["ms"][f"{backend}/forward_backward"]["runs"]) == result["repeats"] == 2
