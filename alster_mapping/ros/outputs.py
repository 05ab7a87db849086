"""Outputs of the mapping node beyond the full cloud: the per-frame update, markers, label image.

- ``arrays_of_keys``: the current values of some voxels (a frame's update) as ``MapArrays``,
  ready for ``cloud.arrays_to_cloud``.
- ``voxel_markers``: a ``visualization_msgs/MarkerArray`` with one CUBE_LIST of the voxels
  coloured by class and a text legend (class name and voxel count) beside the map.
- ``frame_label_image``: the map's labels seen from a frame's pixels (a debug image).
"""

from __future__ import annotations

import numpy as np
import torch
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from ..core.camera import CameraIntrinsics
from ..core.geometry import backproject, transform_points, voxel_centers, voxel_keys
from ..map.voxel_map import MapArrays, SemanticVoxelMap

LEGEND_TEXT_HEIGHT = 0.12
"""Height [m] of a legend line in RViz."""


def arrays_of_keys(voxel_map: SemanticVoxelMap, keys: torch.Tensor) -> MapArrays:
    """Current values of the voxels ``keys`` ((V, 3) int32) as ``MapArrays``.

    Voxels evicted or cleared since they were written are left out, so the result may
    hold fewer than V voxels.
    """
    keys = torch.as_tensor(keys).to(device=voxel_map.device, dtype=torch.int32)
    with voxel_map.lock:
        rows = voxel_map.lookup(keys)
        found = rows >= 0
        keys, rows = keys[found], rows[found]
        data = voxel_map.read(rows)
    label_index = data.label.cpu().numpy()
    space = voxel_map.label_space
    return MapArrays(
        xyz=voxel_centers(keys, voxel_map.voxel_size).cpu().numpy(),
        color=data.color.cpu().numpy(),
        label_color=space.colorize(label_index),
        label=space.decode(label_index),
        label_index=label_index,
        confidence=data.confidence.float().cpu().numpy(),
        count=data.count.to(torch.int32).cpu().numpy(),
        instance=data.instance.cpu().numpy(),
    )


def voxel_markers(
    arrays: MapArrays,
    voxel_map: SemanticVoxelMap,
    frame_id: str,
    stamp: Time | None = None,
    max_voxels: int = 100_000,
) -> MarkerArray:
    """The map as RViz markers: DELETEALL, one CUBE_LIST (ns ``voxels``), one text per class (ns ``legend``).

    arrays: ``voxel_map.to_arrays()``. Voxels are coloured by class (unknown: grey
    translucent). More than ``max_voxels`` voxels are thinned by a regular stride
    (marker lists are built element by element, which costs about a microsecond each).
    The legend lists each class present with its voxel count, beside the map's bounding box.
    """
    header = Header(frame_id=frame_id)
    if stamp is not None:
        header.stamp = stamp
    out = MarkerArray()
    # Remove the previous legend lines: the set of classes present changes.
    out.markers.append(Marker(header=header, action=Marker.DELETEALL))
    n = len(arrays)
    if n == 0:
        return out
    stride = max(1, -(-n // max(1, max_voxels)))
    xyz = np.asarray(arrays.xyz[::stride], dtype=np.float64)
    rgba = np.empty((xyz.shape[0], 4), dtype=np.float64)
    rgba[:, :3] = arrays.label_color[::stride] / 255.0
    rgba[:, 3] = np.where(arrays.label_index[::stride] < 0, 0.3, 1.0)
    size = float(voxel_map.voxel_size)
    cubes = Marker(header=header, ns="voxels", id=0, type=Marker.CUBE_LIST, action=Marker.ADD)
    cubes.pose.orientation.w = 1.0
    cubes.scale.x = cubes.scale.y = cubes.scale.z = size
    cubes.points = [Point(x=x, y=y, z=z) for x, y, z in xyz.tolist()]
    cubes.colors = [ColorRGBA(r=r, g=g, b=b, a=a) for r, g, b, a in rgba.tolist()]
    out.markers.append(cubes)

    space = voxel_map.label_space
    present, counts = np.unique(arrays.label_index, return_counts=True)
    top = float(arrays.xyz[:, 2].max()) + 0.3
    left = float(arrays.xyz[:, 0].max()) + 0.5
    y0 = float(arrays.xyz[:, 1].max())
    for line, (index, count) in enumerate(zip(present.tolist(), counts.tolist())):
        name = space.names[index] if index >= 0 else "unknown"
        r, g, b = space.colorize(np.array([index]))[0] / 255.0
        text = Marker(header=header, ns="legend", id=line, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        text.pose.position.x, text.pose.position.y = left, y0 - line * 1.5 * LEGEND_TEXT_HEIGHT
        text.pose.position.z = top
        text.pose.orientation.w = 1.0
        text.scale.z = LEGEND_TEXT_HEIGHT
        # Unknown is black in the palette, invisible on RViz's dark background: draw it grey.
        text.color = ColorRGBA(r=float(r), g=float(g), b=float(b), a=1.0) if index >= 0 else ColorRGBA(r=0.6, g=0.6, b=0.6, a=1.0)
        text.text = f"{name} ({count})"
        out.markers.append(text)
    return out


def frame_label_image(
    voxel_map: SemanticVoxelMap,
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    T_world_camera: np.ndarray,
    max_range: float,
    min_range: float,
) -> np.ndarray:
    """The map's class colour at each pixel of a frame: (H, W, 3) uint8 RGB, black without a voxel.

    depth: (H, W) float32 metres. Each valid pixel is back-projected with the pose
    ((4, 4) T_world_camera) and coloured by the label of the voxel it falls in.
    """
    h, w = depth.shape
    image = np.zeros((h, w, 3), dtype=np.uint8)
    points, mask = backproject(torch.from_numpy(np.ascontiguousarray(depth)), intrinsics, max_range, min_range)
    if points.shape[0] == 0:
        return image
    keys = voxel_keys(transform_points(T_world_camera, points), voxel_map.voxel_size)
    with voxel_map.lock:
        rows = voxel_map.lookup(keys)
        labels = voxel_map.read(rows).label.to(torch.int64)
    labels = torch.where(rows >= 0, labels, torch.full_like(labels, -1))
    image[mask.cpu().numpy()] = voxel_map.label_space.colorize(labels)
    return image
