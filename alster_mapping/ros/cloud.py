"""``MapArrays`` <-> ``sensor_msgs/PointCloud2``, vectorised (no Python loop over points).

The semantic cloud has one point per voxel, 24 bytes each, little-endian:

    offset  field       PointField type  meaning
     0      x           FLOAT32          voxel centre [m] in the map frame
     4      y           FLOAT32
     8      z           FLOAT32
    12      rgb         FLOAT32          packed 0x00RRGGBB (uint32 bits in a float32, as RViz reads it)
    16      label       UINT16           raw label id (the label space's unknown id when unlabelled)
    18      (2 bytes padding, zero)
    20      confidence  FLOAT32          label confidence in [0, 1]

Every field is naturally aligned and the point step is a multiple of 4, so consumers
can view the buffer as a numpy structured array without copying (``cloud_to_arrays``).
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from ..map.voxel_map import MapArrays
from .node_config import COLOR_BY

POINT_STEP = 24
"""Bytes per point of the semantic cloud."""

CLOUD_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "rgb", "label", "confidence"],
        # rgb is filled as uint32 bits; the message declares it FLOAT32 (the RViz convention).
        "formats": ["<f4", "<f4", "<f4", "<u4", "<u2", "<f4"],
        "offsets": [0, 4, 8, 12, 16, 20],
        "itemsize": POINT_STEP,
    }
)
"""The numpy layout of one point of the semantic cloud (see the module docstring)."""

CLOUD_FIELDS = (
    ("x", 0, PointField.FLOAT32),
    ("y", 4, PointField.FLOAT32),
    ("z", 8, PointField.FLOAT32),
    ("rgb", 12, PointField.FLOAT32),
    ("label", 16, PointField.UINT16),
    ("confidence", 20, PointField.FLOAT32),
)

# PointField datatype -> numpy scalar type (without byte order).
_POINTFIELD_TYPES = {
    PointField.INT8: "i1",
    PointField.UINT8: "u1",
    PointField.INT16: "i2",
    PointField.UINT16: "u2",
    PointField.INT32: "i4",
    PointField.UINT32: "u4",
    PointField.FLOAT32: "f4",
    PointField.FLOAT64: "f8",
}


def pack_rgb(color: np.ndarray) -> np.ndarray:
    """RGB (N, 3) uint8 -> (N,) uint32 ``0x00RRGGBB`` (view it as float32 for a PointCloud2 ``rgb`` field)."""
    c = np.asarray(color, dtype=np.uint8).astype(np.uint32)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"colors must be (N, 3), got shape {c.shape}")
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(N,) uint32 ``0x00RRGGBB`` (or float32 holding those bits) -> (N, 3) uint8 RGB."""
    p = np.asarray(packed)
    if p.dtype.kind == "f":
        p = p.astype(np.float32, copy=False).view(np.uint32)
    p = p.astype(np.uint32, copy=False)
    return np.stack([(p >> 16) & 0xFF, (p >> 8) & 0xFF, p & 0xFF], axis=-1).astype(np.uint8)


def arrays_to_points(arrays: MapArrays, color_by: str = "label", out: np.ndarray | None = None) -> np.ndarray:
    """The semantic cloud's points as an (N,) ``CLOUD_DTYPE`` structured array.

    color_by: ``'label'`` colours each point by its label (``arrays.label_color``),
    ``'rgb'`` by the mean observed colour (``arrays.color``). out: an (N,) zeroed
    ``CLOUD_DTYPE`` array to fill (e.g. a view of a message's buffer) instead of a new one.
    """
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {list(COLOR_BY)}, got {color_by!r}")
    n = len(arrays)
    xyz = np.asarray(arrays.xyz, dtype=np.float32)
    if xyz.shape != (n, 3):
        raise ValueError(f"xyz must be (N, 3), got shape {xyz.shape}")
    # zeros: the padding bytes are deterministic
    points = np.zeros(n, dtype=CLOUD_DTYPE) if out is None else out
    if points.shape != (n,) or points.dtype != CLOUD_DTYPE:
        raise ValueError(f"out must be ({n},) of CLOUD_DTYPE, got {points.shape} {points.dtype}")
    points["x"], points["y"], points["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    points["rgb"] = pack_rgb(arrays.label_color if color_by == "label" else arrays.color)
    points["label"] = arrays.label
    points["confidence"] = arrays.confidence
    return points


def arrays_to_cloud(arrays: MapArrays, frame_id: str = "map", stamp=None, color_by: str = "label") -> PointCloud2:
    """The map's voxels as an unorganised PointCloud2 (height 1, width N, is_dense True).

    arrays: ``SemanticVoxelMap.to_arrays()`` (N voxels). frame_id: the map frame.
    stamp: ``builtin_interfaces/Time`` (default zero). color_by: ``'label'`` or ``'rgb'``.
    Fields and layout: see the module docstring (24 bytes per point, little-endian).
    """
    n = len(arrays)
    # The points are written straight into the message's byte buffer (a numpy view of
    # it): no copy of 24 bytes x N after packing.
    msg, points = new_cloud(n, CLOUD_DTYPE, CLOUD_FIELDS, frame_id, stamp)
    arrays_to_points(arrays, color_by, out=points)
    return msg


def new_cloud(n: int, dtype: np.dtype, fields, frame_id: str = "map", stamp=None) -> tuple[PointCloud2, np.ndarray]:
    """An unorganised PointCloud2 (height 1, is_dense) of n zeroed points laid out as
    ``dtype`` and declared as ``fields`` ((name, offset, PointField type) triples), and an
    (n,) structured view of its buffer to fill: the points are written straight into the
    message, with no copy of the whole cloud after packing."""
    data = array.array("B", [0]) * (n * dtype.itemsize)  # zeroed (padding too), without a temporary bytes object
    header = Header(frame_id=frame_id)
    if stamp is not None:
        header.stamp = stamp
    msg = PointCloud2(
        header=header,
        height=1,
        width=n,
        fields=[PointField(name=name, offset=offset, datatype=kind, count=1) for name, offset, kind in fields],
        is_bigendian=False,
        point_step=dtype.itemsize,
        row_step=dtype.itemsize * n,
        is_dense=True,
        check_fields=True,
    )
    # With field checks on, the setter keeps an array.array('B') as it is; the
    # constructor's data argument and the unchecked setter would copy it once more.
    msg.data = data
    return msg, np.frombuffer(data, dtype=dtype)


@dataclass
class CloudArrays:
    """A PointCloud2's points as numpy arrays (views of the message buffer where possible).

    xyz: (N, 3) float32 [m] (a view when x, y, z are consecutive float32 fields).
    rgb: (N, 3) uint8 or None (unpacked, a copy). rgb_packed: (N,) uint32 ``0x00RRGGBB``
    view or None. label: (N,) view (uint16 for the semantic cloud) or None.
    confidence: (N,) float32 view or None. points: (N,) structured view of every field.
    """

    xyz: np.ndarray
    rgb: np.ndarray | None
    rgb_packed: np.ndarray | None
    label: np.ndarray | None
    confidence: np.ndarray | None
    points: np.ndarray

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


def cloud_to_arrays(msg: PointCloud2) -> CloudArrays:
    """Read a PointCloud2 (any field layout with float32 x, y, z) into numpy arrays.

    N = width * height points; rows must not be padded (row_step == width * point_step).
    Raises ValueError when the message is inconsistent or lacks x, y, z.
    """
    n = int(msg.width) * int(msg.height)
    step = int(msg.point_step)
    if n and int(msg.row_step) != int(msg.width) * step:
        raise ValueError(
            f"padded rows are not supported (row_step {msg.row_step}, width {msg.width}, point_step {step})"
        )
    if len(msg.data) != n * step:
        raise ValueError(f"cloud data holds {len(msg.data)} bytes, expected {n} points x {step} bytes")
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    by_name = {}
    for f in msg.fields:
        if f.datatype not in _POINTFIELD_TYPES:
            raise ValueError(f"field {f.name!r} has unknown datatype {f.datatype}")
        fmt = order + _POINTFIELD_TYPES[f.datatype]
        if f.name == "rgb" and f.datatype in (PointField.FLOAT32, PointField.UINT32):
            fmt = order + "u4"  # the bits are what matter
        names.append(f.name)
        formats.append(fmt if f.count <= 1 else (fmt, (int(f.count),)))
        offsets.append(int(f.offset))
        by_name[f.name] = f
    if not {"x", "y", "z"} <= set(by_name):
        raise ValueError(f"cloud has no x, y, z fields (fields: {names})")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    layout = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": step})
    points = buf.view(layout) if n else np.zeros(0, dtype=layout)

    x, y, z = by_name["x"], by_name["y"], by_name["z"]
    consecutive = (
        all(f.datatype == PointField.FLOAT32 and f.count <= 1 for f in (x, y, z))
        and y.offset == x.offset + 4
        and z.offset == x.offset + 8
    )
    if consecutive:
        xyz_dtype = np.dtype(
            {"names": ["xyz"], "formats": [(order + "f4", (3,))], "offsets": [x.offset], "itemsize": step}
        )
        xyz = (buf.view(xyz_dtype) if n else np.zeros(0, dtype=xyz_dtype))["xyz"]
    else:
        xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1).astype(np.float32)
    if (order == ">") != (sys.byteorder == "big"):
        xyz = xyz.astype(np.float32)  # native byte order for the caller (a copy)

    rgb_packed = points["rgb"] if "rgb" in by_name and points.dtype["rgb"].itemsize == 4 else None
    return CloudArrays(
        xyz=xyz,
        rgb=unpack_rgb(rgb_packed) if rgb_packed is not None else None,
        rgb_packed=rgb_packed,
        label=points["label"] if "label" in by_name else None,
        confidence=points["confidence"] if "confidence" in by_name else None,
        points=points,
    )
