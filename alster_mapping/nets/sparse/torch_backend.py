"""Pure-PyTorch sparse convolution backend (CPU and CUDA).

Kernel maps come from hashing integer coordinates: [batch, x, y, z] are packed into one
int64 by mixed-radix packing over the bounding box of both coordinate sets (in units of the
input tensor stride), padded by the kernel radius so that ``key(c + o) = key(c) + delta(o)``
never wraps. Neighbours are then found either in a dense lookup grid over the box (when
the box is small compared to the number of voxels, the common case for one camera frustum)
or by ``searchsorted`` in the sorted keys (any extent) (../shared/docs/MEASUREMENTS.md).
Either way the result is an output-side table (offsets, N_out) of input rows; the pairs
and the input-side table derive from it lazily (for a submanifold convolution the
input-side table is the output-side one reversed: the pairs of offset -o are those of +o
swapped).

The convolution over a kernel map is in ``torch_convolution.py``.
"""

from __future__ import annotations

from collections.abc import Hashable

import torch

from .kernels import kernel_offsets
from .tensor import CoordinateManager

# A dense int64 lookup grid is used when it has at most max(GRID_MIN_CELLS,
# GRID_CELLS_PER_VOXEL * N) cells (and never more than GRID_MAX_CELLS); above that, sorted
# keys + searchsorted. A camera frustum at 4 cm (box ~80 x 70 x 80 voxels for 10k surface
# voxels, ~20-50 cells per voxel) takes the grid; a whole building takes the sorted path.
GRID_MIN_CELLS = 1 << 20
GRID_CELLS_PER_VOXEL = 64
GRID_MAX_CELLS = 1 << 24
_PACK_LIMIT = 1 << 62
# A direction whose destination rows are at least this dense in pairs (pairs / (offsets
# with pairs * destination rows)) runs im2col over a dense table. Measured here (2 threads,
# OMP_WAIT_POLICY=PASSIVE, torch 2.13 CPU): index_add_ costs ~2x the mm of 16-32 channel
# rows plus ~60 us of thread wake-up per call, so dense tables win above ~1/3 (surface
# voxels at 4 cm: ~0.57) while the zero rows they multiply dominate below.
DENSE_MIN_DENSITY = 0.35


class _CoordinateSet:
    """One coordinate set with cached integer views (torch backend internals).

    coordinates (N, 4) int32 [batch, x, y, z] (multiples of ``stride``); lazily: batch (N,)
    int64, xyz (N, 3) int64 in units of ``stride``, and bounds (min xyz, max xyz in stride
    units, max batch) as Python ints.
    """

    __slots__ = ("coordinates", "stride", "_batch", "_xyz", "_bounds")

    def __init__(self, coordinates: torch.Tensor, stride: int, bounds: tuple[list[int], list[int], int] | None = None):
        self.coordinates = coordinates
        self.stride = int(stride)
        self._batch: torch.Tensor | None = None
        self._xyz: torch.Tensor | None = None
        self._bounds = bounds

    def __len__(self) -> int:
        return int(self.coordinates.shape[0])

    def integer_views(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch (N,) int64, xyz (N, 3) int64 in units of the stride)."""
        if self._xyz is None:
            c = self.coordinates.to(torch.int64)
            self._batch = c[:, 0].contiguous()
            xyz = c[:, 1:]
            self._xyz = (torch.div(xyz, self.stride, rounding_mode="floor") if self.stride > 1 else xyz).contiguous()
        return self._batch, self._xyz

    def bounds(self) -> tuple[list[int], list[int], int]:
        """(min xyz, max xyz) in stride units and the largest batch index (one host sync, cached)."""
        if self._bounds is None:
            batch, xyz = self.integer_views()
            # Reductions along rows of an (N, 3) tensor are slow; (3, N) rows are fast.
            rows = torch.cat([xyz.t(), batch.unsqueeze(0)])
            values = torch.cat([rows.amin(1), rows.amax(1)]).tolist()
            self._bounds = (values[0:3], values[4:7], values[7])
        return self._bounds


class _MapCore:
    """Shared state of a kernel map and its transpose (see KernelMap)."""

    __slots__ = (
        "num_in",
        "num_out",
        "identity",
        "offsets",
        "counts",
        "out_table",
        "mirror",
        "offset_index",
        "_in_table",
        "_pairs",
        "_rows",
        "_single",
    )

    def __init__(
        self,
        num_in: int,
        num_out: int,
        identity: int,
        offsets: tuple[int, ...],
        counts: tuple[int, ...],
        out_table: torch.Tensor,
        mirror: bool,
    ):
        self.num_in = num_in
        self.num_out = num_out
        self.identity = identity
        self.offsets = offsets
        self.counts = counts
        self.out_table = out_table
        self.mirror = mirror
        self.offset_index = torch.tensor(offsets, dtype=torch.int64, device=out_table.device)
        self._in_table: torch.Tensor | None = None
        self._pairs: tuple[torch.Tensor, torch.Tensor, tuple[tuple[int, int, int], ...]] | None = None
        self._rows: dict[bool, torch.Tensor | None] = {}
        self._single: dict[bool, torch.Tensor | None] = {}

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor, tuple[tuple[int, int, int], ...]]:
        """(in_index (M,), out_index (M,), spans) from the output-side table (cached)."""
        if self._pairs is None:
            flat = (self.out_table != self.num_in).reshape(-1).nonzero().squeeze(1)
            in_index = self.out_table.reshape(-1).index_select(0, flat)
            out_index = flat % max(1, self.num_out)
            spans, start = [], 0
            for k, c in zip(self.offsets, self.counts):
                spans.append((k, start, start + c))
                start += c
            self._pairs = (in_index, out_index, tuple(spans))
        return self._pairs

    def _pair_offsets(self, device: torch.device) -> torch.Tensor:
        """(M,) int64: the position j (in ``offsets``) of each pair."""
        return torch.repeat_interleave(
            torch.arange(len(self.offsets), device=device), torch.tensor(self.counts, device=device)
        )

    def table(self, input_side: bool) -> torch.Tensor | None:
        """(J, N_dest) source rows of one side (N_src = none), or None if sparser than DENSE_MIN_DENSITY."""
        n_dest = self.num_in if input_side else self.num_out
        if not self.offsets or sum(self.counts) < DENSE_MIN_DENSITY * len(self.offsets) * n_dest:
            return None
        if not input_side:
            return self.out_table
        if self._in_table is None:
            if self.mirror:
                # Same set, centred offsets listed symmetrically: the input row i of offset
                # k pairs with output i - o_k = i + o_{K-1-k}, i.e. the reversed out table.
                self._in_table = self.out_table.flip(0)
            else:
                in_index, out_index, _ = self.pairs()
                rows = self._pair_offsets(in_index.device)
                table = torch.full(
                    (len(self.offsets), self.num_in), self.num_out, dtype=torch.int64, device=in_index.device
                )
                table.view(-1).index_copy_(0, rows * self.num_in + in_index, out_index)
                self._in_table = table
        return self._in_table

    def rows(self, input_side: bool) -> torch.Tensor | None:
        """The dense table of one side transposed to (N_dest, J), contiguous (im2col order)."""
        if input_side not in self._rows:
            table = self.table(input_side)
            self._rows[input_side] = None if table is None else table.t().contiguous()
        return self._rows[input_side]

    def single(self, input_side: bool) -> torch.Tensor | None:
        """(N_dest,) int64 flat index s * J + j of each destination row's only pair
        (source s, offset position j), N_src * J if it has none; None if some row has more."""
        if input_side not in self._single:
            plan = None
            if self.offsets:
                in_index, out_index, _ = self.pairs()
                dest, src = (in_index, out_index) if input_side else (out_index, in_index)
                n_dest = self.num_in if input_side else self.num_out
                n_src = self.num_out if input_side else self.num_in
                j = len(self.offsets)
                if int(torch.bincount(dest, minlength=1).max()) <= 1:
                    plan = torch.full((n_dest,), n_src * j, dtype=torch.int64, device=dest.device)
                    plan.index_copy_(0, dest, src * j + self._pair_offsets(dest.device))
            self._single[input_side] = plan
        return self._single[input_side]


class KernelMap:
    """Input/output row pairs of a sparse convolution, grouped by kernel offset.

    A pair (i, o) of offset k means "output row o receives input row i through weight
    matrix k". Within one offset every input and every output row appears at most once.
    offsets: tuple of J canonical offset indices (``kernels.kernel_offsets``) that have
    pairs, identity excluded; offset_index: the same as a (J,) int64 tensor. identity: the
    offset whose pairs are (i, i) for every row (the centre of a submanifold convolution,
    applied as one dense ``mm``), or -1. num_in, num_out: row counts.

    Views of the pairs, built lazily and cached (shared with ``transposed()``):
    ``gather_rows(to_input)`` — dense (N_dest, J) source-row table when dense enough;
    ``single_rows(to_input)`` — when every destination row has at most one pair;
    ``pairs()`` — flat (in_index (M,), out_index (M,), spans ((k, start, end), ...)).
    """

    __slots__ = ("_core", "_swapped", "_transposed")

    def __init__(self, core: _MapCore, swapped: bool = False):
        self._core = core
        self._swapped = swapped
        self._transposed: KernelMap | None = None

    @property
    def num_in(self) -> int:
        """Input rows N_in."""
        return self._core.num_out if self._swapped else self._core.num_in

    @property
    def num_out(self) -> int:
        """Output rows N_out."""
        return self._core.num_in if self._swapped else self._core.num_out

    @property
    def identity(self) -> int:
        """Offset index applied as a dense identity pairing, or -1."""
        return self._core.identity

    @property
    def offsets(self) -> tuple[int, ...]:
        """Canonical indices of the offsets with pairs (identity excluded)."""
        return self._core.offsets

    @property
    def offset_index(self) -> torch.Tensor:
        """``offsets`` as a (J,) int64 tensor on the map's device."""
        return self._core.offset_index

    @property
    def num_pairs(self) -> int:
        """Pairs over all offsets, the identity offset included."""
        return sum(self._core.counts) + (self.num_out if self.identity >= 0 else 0)

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor, tuple[tuple[int, int, int], ...]]:
        """(in_index (M,) int64, out_index (M,) int64, spans): offset k owns pairs start..end-1."""
        in_index, out_index, spans = self._core.pairs()
        return (out_index, in_index, spans) if self._swapped else (in_index, out_index, spans)

    def gather_table(self, to_input: bool) -> tuple[tuple[int, ...], torch.Tensor] | None:
        """(offsets, table (J, N_dest) int64) for destination = inputs if ``to_input`` else outputs.

        table[j, d] is the source row paired with destination row d through offset
        offsets[j], or N_src (index of an appended zero row) if none. None when the
        destination rows are sparser than ``DENSE_MIN_DENSITY``.
        """
        table = self._core.table(to_input != self._swapped)
        return None if table is None else (self._core.offsets, table)

    def gather_rows(self, to_input: bool) -> torch.Tensor | None:
        """``gather_table(to_input)``'s table transposed: (N_dest, J) int64, or None."""
        return self._core.rows(to_input != self._swapped)

    def single_rows(self, to_input: bool) -> torch.Tensor | None:
        """(N_dest,) int64 s * J + j of each destination row's only pair, N_src * J if none;
        None if some destination row has several pairs."""
        return self._core.single(to_input != self._swapped)

    def transposed(self) -> KernelMap:
        """The same pairs with input and output swapped (the transposed convolution's map)."""
        if self._transposed is None:
            self._transposed = KernelMap(self._core, not self._swapped)
            self._transposed._transposed = self
        return self._transposed


def _pack(batch: torch.Tensor, xyz: torch.Tensor, lo: list[int], ext: list[int]) -> torch.Tensor:
    """Mixed-radix int64 code of [batch, x, y, z] in the box lo .. lo + ext - 1 (units)."""
    code = batch * ext[0] + (xyz[:, 0] - lo[0])
    code = code * ext[1] + (xyz[:, 1] - lo[1])
    return code * ext[2] + (xyz[:, 2] - lo[2])


def _kernel_map(
    in_set: _CoordinateSet, out_set: _CoordinateSet | None, offsets: torch.Tensor, method: str
) -> KernelMap:
    same = out_set is None
    device = in_set.coordinates.device
    unit = in_set.stride
    n_in = len(in_set)
    n_out = n_in if same else len(out_set)
    num_offsets = int(offsets.shape[0])
    symmetric = same and num_offsets % 2 == 1 and bool((offsets + offsets.flip(0) == 0).all())
    identity = num_offsets // 2 if symmetric and n_in else -1
    searched = [k for k in range(num_offsets) if k != identity]
    if n_in == 0 or n_out == 0 or not searched:
        empty = torch.zeros((0, n_out), dtype=torch.int64, device=device)
        return KernelMap(_MapCore(n_in, n_out, identity, (), (), empty, symmetric))

    a_batch, a_xyz = in_set.integer_views()
    lo, hi, max_batch = in_set.bounds()
    if same:
        b_batch, b_xyz = a_batch, a_xyz
    else:
        if out_set.stride % unit:
            raise ValueError(f"output stride {out_set.stride} is not a multiple of the input stride {unit}")
        factor = out_set.stride // unit
        b_batch, b_xyz = out_set.integer_views()
        b_lo, b_hi, b_max = out_set.bounds()
        if factor > 1:
            b_xyz = b_xyz * factor
        lo = [min(p, q * factor) for p, q in zip(lo, b_lo)]
        hi = [max(p, q * factor) for p, q in zip(hi, b_hi)]
        max_batch = max(max_batch, b_max)
    radius = int(offsets.abs().max())
    lo = [v - radius for v in lo]
    ext = [high + radius - low + 1 for low, high in zip(lo, hi)]
    cells = (max_batch + 1) * ext[0] * ext[1] * ext[2]
    if cells >= _PACK_LIMIT:
        raise ValueError(f"coordinate extent too large to pack into int64 ({cells} cells)")
    key_in = _pack(a_batch, a_xyz, lo, ext)
    key_out = key_in if same else _pack(b_batch, b_xyz, lo, ext)
    o = offsets[searched].to(device)
    delta = (o[:, 0] * ext[1] + o[:, 1]) * ext[2] + o[:, 2]
    wanted = key_out.unsqueeze(0) + delta.unsqueeze(1)  # (K', N_out)

    if method == "auto":
        grid_ok = cells <= max(GRID_MIN_CELLS, GRID_CELLS_PER_VOXEL * n_in) and cells <= GRID_MAX_CELLS
        method = "grid" if grid_ok else "sorted"
    if method == "grid":
        grid = torch.full((cells,), n_in, dtype=torch.int64, device=device)
        grid.index_copy_(0, key_in, torch.arange(n_in, device=device))
        table = grid.index_select(0, wanted.reshape(-1)).view(wanted.shape)
    elif method == "sorted":
        sorted_in, perm_in = torch.sort(key_in)
        pos = torch.searchsorted(sorted_in, wanted).clamp_(max=n_in - 1)
        hit = sorted_in[pos] == wanted
        table = torch.where(hit, perm_in[pos], torch.full_like(pos, n_in))
    else:
        raise ValueError(f"unknown kernel map method {method!r}; use 'auto', 'grid' or 'sorted'")

    counts = (table != n_in).sum(1).tolist()
    keep = [j for j, c in enumerate(counts) if c]
    if len(keep) != len(searched):
        table = table[keep]
    return KernelMap(
        _MapCore(
            n_in,
            n_out,
            identity,
            tuple(searched[j] for j in keep),
            tuple(counts[j] for j in keep),
            table.contiguous(),
            symmetric,
        )
    )


def build_kernel_map(
    in_coords: torch.Tensor,
    out_coords: torch.Tensor | None,
    unit: int,
    offsets: torch.Tensor,
    method: str = "auto",
) -> KernelMap:
    """Find, for every output voxel o and kernel offset k, the input voxel at o + offsets[k]*unit.

    in_coords: (N_in, 4) int32 [batch >= 0, x, y, z], distinct, multiples of ``unit`` (the
    input tensor stride). out_coords: (N_out, 4) int32, multiples of ``unit``, or None for
    the submanifold case (output set = input set, same rows). unit: int > 0. offsets: (K, 3)
    int64 kernel offsets already multiplied by the dilation, canonical order. method:
    'auto', 'grid' or 'sorted' (same result; 'auto' picks by bounding-box volume).
    """
    in_set = _CoordinateSet(in_coords, unit)
    out_set = None if out_coords is None else _CoordinateSet(out_coords, unit)
    return _kernel_map(in_set, out_set, offsets.to(torch.int64), method)


def strided_coordinates(
    coordinates: torch.Tensor, stride: int, bounds: tuple[list[int], list[int], int] | None = None
) -> torch.Tensor:
    """Distinct coarse coordinates floor(c / stride) * stride of (N, 4) int32 [batch, x, y, z].

    Returns (M, 4) int32 sorted by [batch, x, y, z] (MinkowskiEngine's stride rule; its row
    order differs). stride: the new tensor stride in finest-level units. bounds: optional
    (min xyz, max xyz, max batch) of floor(c / stride), saving a reduction.
    """
    if coordinates.shape[0] == 0:
        return coordinates.clone()
    coarse_set = _CoordinateSet(coordinates, stride, bounds)
    batch, xyz = coarse_set.integer_views()
    lo, hi, max_batch = coarse_set.bounds()
    ext = [high - low + 1 for low, high in zip(lo, hi)]
    if (max_batch + 1) * ext[0] * ext[1] * ext[2] >= _PACK_LIMIT:
        coarse = torch.unique(torch.cat([batch.unsqueeze(1), xyz], 1), dim=0)
        return torch.cat([coarse[:, :1], coarse[:, 1:] * stride], 1).to(torch.int32)
    codes = torch.unique(_pack(batch, xyz, lo, ext))
    z = codes % ext[2] + lo[2]
    codes = torch.div(codes, ext[2], rounding_mode="floor")
    y = codes % ext[1] + lo[1]
    codes = torch.div(codes, ext[1], rounding_mode="floor")
    x = codes % ext[0] + lo[0]
    batch = torch.div(codes, ext[0], rounding_mode="floor")
    return torch.stack([batch, x * stride, y * stride, z * stride], 1).to(torch.int32)


class TorchCoordinateManager(CoordinateManager):
    """Coordinate sets and cached kernel maps of one network pass (torch backend).

    Keys are ints. Caches: the strided set of (key, factor) — so every layer that
    down-samples a level gets the same coarse set — the finer set each strided set came
    from (the default target of a transposed convolution), kernel maps per (input key,
    output key, kernel size, dilation), and per-set integer views and bounds. Everything
    lives on the coordinates' device.
    """

    backend = "torch"

    def __init__(self) -> None:
        self._sets: list[_CoordinateSet] = []
        self._strided: dict[tuple[int, int], int] = {}
        self._parent: dict[int, int] = {}
        self._maps: dict[tuple[int, int, int, int], KernelMap] = {}

    def insert(
        self, coordinates: torch.Tensor, stride: int, bounds: tuple[list[int], list[int], int] | None = None
    ) -> int:
        """Register coordinates (N, 4) int32 (assumed valid and distinct) at a tensor stride; return the key.

        bounds: optional (min xyz, max xyz) in stride units and max batch, if known.
        """
        self._sets.append(_CoordinateSet(coordinates, stride, bounds))
        return len(self._sets) - 1

    def coordinates(self, key: Hashable) -> torch.Tensor:
        """Coordinates (N, 4) int32 of the set ``key`` (rows in the set's order)."""
        return self._sets[key].coordinates

    def size(self, key: Hashable) -> int:
        """N, the number of voxels of the set ``key``."""
        return len(self._sets[key])

    def stride(self, key: int) -> int:
        """Tensor stride of the set ``key``."""
        return self._sets[key].stride

    def same_set(self, key_a: Hashable, key_b: Hashable) -> bool:
        """Whether two keys are the same set."""
        return key_a == key_b

    def strided(self, key: int, factor: int) -> int:
        """Key of the set down-sampled by ``factor`` (created once, then cached)."""
        if factor == 1:
            return key
        cache_key = (key, factor)
        if cache_key not in self._strided:
            fine = self._sets[key]
            new_stride = fine.stride * factor
            bounds = None
            if len(fine):
                lo, hi, max_batch = fine.bounds()
                # floor is monotonic: the coarse bounds are the floored fine bounds.
                bounds = ([v // factor for v in lo], [v // factor for v in hi], max_batch)
            coarse = strided_coordinates(fine.coordinates, new_stride, bounds)
            new_key = self.insert(coarse, new_stride, bounds)
            self._strided[cache_key] = new_key
            self._parent[new_key] = key
        return self._strided[cache_key]

    def kernel_map(self, in_key: int, out_key: int, kernel_size: int, dilation: int) -> KernelMap:
        """Cached map of a convolution from set ``in_key`` to set ``out_key``.

        Offsets are ``kernel_offsets(kernel_size) * dilation`` in units of the input stride,
        anchored at each output voxel (MinkowskiEngine's convention).
        """
        cache_key = (in_key, out_key, kernel_size, dilation)
        kmap = self._maps.get(cache_key)
        if kmap is None:
            offsets = kernel_offsets(kernel_size) * dilation
            out_set = None if out_key == in_key else self._sets[out_key]
            kmap = _kernel_map(self._sets[in_key], out_set, offsets, "auto")
            self._maps[cache_key] = kmap
        return kmap

    def convolution_map(self, in_key: int, kernel_size: int, stride: int, dilation: int) -> tuple[int, KernelMap]:
        """(output key, kernel map) of a convolution with the given stride from set ``in_key``."""
        out_key = self.strided(in_key, stride)
        return out_key, self.kernel_map(in_key, out_key, kernel_size, dilation)

    def transposed_map(
        self, in_key: int, kernel_size: int, stride: int, dilation: int, target_key: int | None = None
    ) -> tuple[int, KernelMap]:
        """(output key, kernel map) of a transposed convolution from ``in_key`` back to a finer set.

        The output set is ``target_key`` or, if None, the set ``in_key`` was down-sampled
        from. The map is that of the strided convolution target -> in_key, transposed, so
        the transposed convolution is exactly the adjoint of the strided one.
        """
        in_stride = self._sets[in_key].stride
        if target_key is None:
            target_key = self._parent.get(in_key)
            if target_key is None or self._sets[target_key].stride * stride != in_stride:
                raise ValueError(
                    "transposed convolution: no finer coordinate set to return to; pass target= "
                    "(the encoder tensor at the output stride)"
                )
        if self._sets[target_key].stride * stride != in_stride:
            raise ValueError(
                f"transposed convolution with stride {stride} from tensor stride {in_stride} "
                f"cannot land on tensor stride {self._sets[target_key].stride}"
            )
        return target_key, self.kernel_map(target_key, in_key, kernel_size, dilation).transposed()
