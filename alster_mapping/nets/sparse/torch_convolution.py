"""Sparse convolution over a ``KernelMap`` of the pure-PyTorch backend (CPU and CUDA).

The convolution (``SparseConvolutionFunction``, explicit backward) runs each direction
(input -> output for the forward, output -> input for d input) in one of three forms,
chosen per kernel map and direction from the pair structure:

* dense destination (submanifold maps, the coarse side of stride-2 maps): im2col —
  ``index_select`` the J neighbours of a chunk of destination rows through a (N_dest, J)
  table whose missing entries point at an appended zero row, then one ``addmm_`` with the
  J stacked weight matrices; no scatter;
* one pair per destination row at most (the fine side of 2^3 stride-2 maps): one ``mm``
  of every source row with all J matrices, then one ``index_select`` of each destination
  row's product; no scatter;
* otherwise: ``index_select`` the pairs' source rows, one ``mm`` per offset into slices of
  one buffer, one in-place ``index_add_``.

d weight uses the dense tables or the pairs the same way. The backward costs about twice
the forward. There are no Python loops over voxels and no CPU-only ops; Python loops run
over kernel offsets or row chunks only, and building a kernel map syncs with the host once
(to size the grid and drop empty offsets).
"""

from __future__ import annotations

import torch

from .torch_backend import KernelMap

# im2col chunks keep one chunk's (rows, J * C) column buffer near this size: large enough
# for few ops (each op of a 2-thread PASSIVE pool pays ~50 us of wake-up here), small
# enough to stay below glibc's mmap threshold (temporaries of ~35 MB were measured 20x
# slower than 17 MB ones: page faults on every call).
COLUMN_BYTES = 4 << 20


def _with_zero_row(x: torch.Tensor) -> torch.Tensor:
    """x (N, C) with one zero row appended: (N + 1, C), the target of missing neighbours."""
    return torch.cat([x, x.new_zeros((1, x.shape[1]))])


def _chunk_rows(row_bytes: int) -> int:
    """Rows per im2col chunk so that one chunk's column buffer stays near COLUMN_BYTES."""
    return max(64, COLUMN_BYTES // max(1, row_bytes))


def _dense_propagate(src: torch.Tensor, stacked: torch.Tensor, rows: torch.Tensor, dest: torch.Tensor) -> None:
    """dest[d] += concat_j(src_padded[rows[d, j]]) @ stacked, chunked over destination rows.

    src (N_src, C_src); stacked (J * C_src, C_dest): the J offsets' matrices stacked;
    rows (N_dest, J) int64 with N_src meaning "none" (a zero row); dest (N_dest, C_dest).
    """
    padded = _with_zero_row(src)
    n_dest, j = rows.shape
    width = j * src.shape[1]
    step = _chunk_rows(width * src.element_size())
    for start in range(0, n_dest, step):
        end = min(n_dest, start + step)
        columns = padded.index_select(0, rows[start:end].reshape(-1)).view(end - start, width)
        dest[start:end].addmm_(columns, stacked)


def _propagate(src: torch.Tensor, weight: torch.Tensor, kmap: KernelMap, to_input: bool, dest: torch.Tensor) -> None:
    """dest[d] += sum over pairs of offset k: src[s] @ W_k (forward, s input, d output) or
    src[s] @ W_k^T (to_input: s output, d input), in place. Identity pairs excluded.

    weight: (K^3, C_in, C_out).
    """
    rows = kmap.gather_rows(to_input)
    if rows is not None:
        selected = weight.index_select(0, kmap.offset_index)  # (J, C_in, C_out)
        stacked = (
            selected.transpose(1, 2).reshape(-1, weight.shape[1])
            if to_input
            else selected.reshape(-1, weight.shape[2])
        )
        _dense_propagate(src, stacked, rows, dest)
        return
    single = kmap.single_rows(to_input)
    if single is not None:
        # Every destination row has at most one pair: multiply each source row by all J
        # matrices at once, then pick each destination row's product.
        selected = weight.index_select(0, kmap.offset_index)  # (J, C_in, C_out)
        c_dest = dest.shape[1]
        stacked = selected.permute(2, 0, 1) if to_input else selected.permute(1, 0, 2)
        products = torch.mm(src, stacked.reshape(src.shape[1], -1)).view(-1, c_dest)
        dest.add_(_with_zero_row(products).index_select(0, single))
        return
    in_index, out_index, spans = kmap.pairs()
    src_index, dest_index = (out_index, in_index) if to_input else (in_index, out_index)
    gathered = src.index_select(0, src_index)
    products = src.new_empty((gathered.shape[0], dest.shape[1]))
    for k, start, end in spans:
        matrix = weight[k].t() if to_input else weight[k]
        torch.mm(gathered[start:end], matrix, out=products[start:end])
    dest.index_add_(0, dest_index, products)


def _weight_gradient(features: torch.Tensor, grad_out: torch.Tensor, kmap: KernelMap, grad_w: torch.Tensor) -> None:
    """grad_w[k] = sum over pairs (i -> o) of offset k: features[i]^T grad_out[o], for k in kmap.offsets."""
    c_in, c_out = features.shape[1], grad_out.shape[1]
    out_rows = kmap.gather_rows(False)
    in_rows = kmap.gather_rows(True)
    j = len(kmap.offsets)
    if out_rows is not None and (in_rows is None or kmap.num_out <= kmap.num_in):
        padded = _with_zero_row(features)
        acc = features.new_zeros((j * c_in, c_out))
        step = _chunk_rows(j * c_in * features.element_size())
        for start in range(0, kmap.num_out, step):
            end = min(kmap.num_out, start + step)
            columns = padded.index_select(0, out_rows[start:end].reshape(-1)).view(end - start, j * c_in)
            acc.addmm_(columns.t(), grad_out[start:end])
        grad_w.index_copy_(0, kmap.offset_index, acc.view(j, c_in, c_out))
    elif in_rows is not None:
        padded = _with_zero_row(grad_out)
        acc = features.new_zeros((c_in, j * c_out))
        step = _chunk_rows(j * c_out * grad_out.element_size())
        for start in range(0, kmap.num_in, step):
            end = min(kmap.num_in, start + step)
            columns = padded.index_select(0, in_rows[start:end].reshape(-1)).view(end - start, j * c_out)
            acc.addmm_(features[start:end].t(), columns)
        grad_w.index_copy_(0, kmap.offset_index, acc.view(c_in, j, c_out).transpose(0, 1))
    else:
        in_index, out_index, spans = kmap.pairs()
        gathered = features.index_select(0, in_index)
        grad_pairs = grad_out.index_select(0, out_index)
        for k, start, end in spans:
            torch.mm(gathered[start:end].t(), grad_pairs[start:end], out=grad_w[k])


class SparseConvolutionFunction(torch.autograd.Function):
    """Autograd op: out[o] = sum over pairs (i -> o) of offset k: x[i] @ W_k.

    forward(features (N_in, C_in) float, weight (K^3, C_in, C_out) same dtype, kmap KernelMap)
    -> (N_out, C_out). The backward computes d features (N_in, C_in) (the same propagation
    on the reversed map with W_k^T) and d weight (K^3, C_in, C_out); nothing per pair is
    saved. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        """features (N_in, C_in), weight (K^3, C_in, C_out) -> (N_out, C_out)."""
        ctx.kmap = kmap
        ctx.save_for_backward(features, weight)
        if kmap.identity >= 0:
            out = torch.mm(features, weight[kmap.identity])
        else:
            out = features.new_zeros((kmap.num_out, weight.shape[2]))
        if kmap.offsets:
            _propagate(features, weight, kmap, False, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        """grad_out (N_out, C_out) -> (d features (N_in, C_in), d weight (K^3, C_in, C_out), None)."""
        features, weight = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        grad_out = grad_out.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            if kmap.identity >= 0:
                grad_x = torch.mm(grad_out, weight[kmap.identity].t())
            else:
                grad_x = features.new_zeros(features.shape)
            if kmap.offsets:
                _propagate(grad_out, weight, kmap, True, grad_x)
        if ctx.needs_input_grad[1]:
            grad_w = torch.zeros_like(weight)
            if kmap.identity >= 0:
                torch.mm(features.t(), grad_out, out=grad_w[kmap.identity])
            if kmap.offsets:
                _weight_gradient(features, grad_out, kmap, grad_w)
        return grad_x, grad_w, None


def sparse_convolution(features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """Differentiable sparse convolution: features (N_in, C_in), weight (K^3, C_in, C_out) -> (N_out, C_out)."""
    if weight.dim() != 3 or weight.shape[1] != features.shape[1]:
        raise ValueError(f"weight {tuple(weight.shape)} does not fit features with {features.shape[1]} channels")
    device_type = features.device.type
    if torch.is_autocast_enabled(device_type):
        # A custom autograd op is not cast by autocast: do what it does for a matmul.
        dtype = torch.get_autocast_dtype(device_type)
        features, weight = features.to(dtype), weight.to(dtype)
    return SparseConvolutionFunction.apply(features.contiguous(), weight.contiguous(), kmap)
