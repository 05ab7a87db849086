"""Messages of an instance segmentation result: the instance cloud and the object markers.

The instance cloud has one point per segmented voxel, 28 bytes each, little-endian:

    offset  field       PointField type  meaning
     0      x           FLOAT32          voxel centre [m] in the map frame
     4      y           FLOAT32
     8      z           FLOAT32
    12      rgb         FLOAT32          packed 0x00RRGGBB: the instance's colour (grey: no instance)
    16      label       UINT16           raw label id of the voxel's class
    18      (2 bytes padding, zero)
    20      instance    INT32            instance id (-1: none); the object list's ``id``
    24      confidence  FLOAT32          probability of the voxel's class

The markers: DELETEALL, then per object a translucent box in its class colour (ns
``boxes``) and a text "class #id (score)" above it (ns ``labels``), ids = object ids.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, Vector3
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from ..core.labels import LabelSpace
from ..pipeline.instance_job import JobResult
from ..pipeline.instance_segmentation import instance_colors
from .cloud import new_cloud, pack_rgb

INSTANCE_POINT_STEP = 28
INSTANCE_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "rgb", "label", "instance", "confidence"],
        "formats": ["<f4", "<f4", "<f4", "<u4", "<u2", "<i4", "<f4"],
        "offsets": [0, 4, 8, 12, 16, 20, 24],
        "itemsize": INSTANCE_POINT_STEP,
    }
)
INSTANCE_FIELDS = (
    ("x", 0, PointField.FLOAT32),
    ("y", 4, PointField.FLOAT32),
    ("z", 8, PointField.FLOAT32),
    ("rgb", 12, PointField.FLOAT32),
    ("label", 16, PointField.UINT16),
    ("instance", 20, PointField.INT32),
    ("confidence", 24, PointField.FLOAT32),
)
LABEL_TEXT_HEIGHT = 0.15
"""Height of the object labels' text [m]."""


def instances_to_cloud(result: JobResult, label_space: LabelSpace, frame_id: str = "map", stamp=None) -> PointCloud2:
    """The segmented voxels as an unorganised PointCloud2 (layout: the module docstring)."""
    msg, points = new_cloud(len(result.xyz), INSTANCE_DTYPE, INSTANCE_FIELDS, frame_id, stamp)
    xyz = np.asarray(result.xyz, np.float32)
    points["x"], points["y"], points["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    points["rgb"] = pack_rgb(instance_colors(result.instances.instance))
    points["label"] = label_space.decode(result.instances.semantic)
    points["instance"] = result.instances.instance
    points["confidence"] = result.instances.confidence
    return msg


def object_markers(objects: list[dict], label_space: LabelSpace, frame_id: str = "map", stamp=None) -> MarkerArray:
    """One box and one text label per object of an object list (``instance_objects``)."""
    header = Header(frame_id=frame_id)
    if stamp is not None:
        header.stamp = stamp
    out = MarkerArray()
    out.markers.append(Marker(header=header, action=Marker.DELETEALL))
    for obj in objects:
        r, g, b = label_space.colorize(np.array([obj["class_index"]]))[0] / 255.0
        box = Marker(header=header, ns="boxes", id=obj["id"], type=Marker.CUBE, action=Marker.ADD)
        box.pose.position = Point(x=obj["center"][0], y=obj["center"][1], z=obj["center"][2])
        box.pose.orientation.w = 1.0
        # A voxel-thin object (a picture) still gets a visible box.
        box.scale = Vector3(x=max(obj["extent"][0], 0.02), y=max(obj["extent"][1], 0.02), z=max(obj["extent"][2], 0.02))
        box.color = ColorRGBA(r=float(r), g=float(g), b=float(b), a=0.35)
        text = Marker(header=header, ns="labels", id=obj["id"], type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        top = obj["center"][2] + obj["extent"][2] / 2 + LABEL_TEXT_HEIGHT
        text.pose.position = Point(x=obj["center"][0], y=obj["center"][1], z=top)
        text.pose.orientation.w = 1.0
        text.scale.z = LABEL_TEXT_HEIGHT
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        text.text = f"{obj['class']} #{obj['id']} ({obj['score']:.2f})"
        out.markers.extend([box, text])
    return out
