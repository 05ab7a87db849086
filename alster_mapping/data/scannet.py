"""ScanNet scenes in the layout of ScanNet's SensReader ``export`` (plus the labelled mesh).

A scene directory ``<scene>/`` holds, per frame i (integer file stems, not zero-padded):

* ``color/<i>.jpg`` (or ``.png``): RGB, often 1296x968;
* ``depth/<i>.png``: uint16 millimetres (0 = no return), usually 640x480;
* ``pose/<i>.txt``: 4x4 camera-to-world (rows); lost tracking is written as -inf / nan;
* ``label/<i>.png`` (optional): uint16 NYU40 ids (our writer; ScanNet's own label
  images must first be mapped to NYU40);

and ``intrinsic/intrinsic_color.txt``, ``intrinsic_depth.txt``, ``extrinsic_color.txt``,
``extrinsic_depth.txt`` (4x4 each), and the ground truth ``<scene>_vh_clean_2.labels.ply``
(vertices with x, y, z float, red, green, blue, alpha uchar and ``label`` ushort NYU40)
with, optionally, ScanNet's instance annotation (``data/scannet_instances.py``).

Frames are returned at the depth resolution with the depth intrinsics; the pose file
is taken as the pose of that (registered) camera. Frames carry no time stamps; they
get a nominal 30 Hz clock (the Structure sensor's rate).
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.atomic_file import atomic_path, write_text_atomic
from ..core.camera import CameraIntrinsics
from ..core.frame import RGBDFrame
from ..core.geometry import NotRigidError
from ..core.image_codec import read_image_file, write_image_file
from ..core.labels import NYU40_COLORS
from ..core.samples import PointBlock
from .scannet_instances import ScanNetInstanceError, instance_files, read_instances, write_instances

FRAME_PERIOD_NS = 33_333_333
MAX_DEPTH_MM = 65535
FRAME_ID = "camera"
GT_SUFFIX = "_vh_clean_2.labels.ply"
# Skip reasons of frames whose pose is unusable; ``ScanNetScene.frames`` skips these frames.
POSE_PROBLEMS = ("missing pose", "invalid pose")


class ScanNetError(ValueError):
    """A ScanNet scene is missing files or holds malformed data (the message names the file).

    ``reason``: what a reader that skips the frame counts it under ("missing pose",
    "invalid pose", "missing depth", "invalid depth", "missing colour", "invalid colour",
    "invalid labels", "invalid frame"); "invalid scene" for problems of the scene as a whole.
    """

    def __init__(self, message: str, reason: str = "invalid scene"):
        super().__init__(message)
        self.reason = reason


def _read_matrix(path: Path, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    if not path.is_file():
        raise ScanNetError(f"missing file {path}")
    try:
        matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise ScanNetError(f"cannot read matrix {path}: {exc}") from exc
    if matrix.shape != shape:
        raise ScanNetError(f"{path} holds a {matrix.shape} matrix, expected {shape}")
    return matrix


def _format_matrix(matrix: np.ndarray) -> str:
    # repr-precision floats so poses and intrinsics round-trip exactly.
    return "".join(" ".join(repr(float(v)) for v in row) + "\n" for row in np.asarray(matrix, dtype=np.float64))


class ScanNetScene:
    """Reader of one exported ScanNet scene directory.

    ``frame_ids``: sorted numeric ids of the frames with a depth image. ``skipped``:
    Counter of reasons for frames ``frames`` left out; ``problems``: the first message
    seen for each reason; ``poses_projected`` / ``max_pose_correction``: how many of the
    poses ``frames`` read were projected onto SO(3), and the largest error corrected.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise ScanNetError(f"ScanNet scene {self.path} is not a directory")
        depth_dir = self.path / "depth"
        if not depth_dir.is_dir():
            raise ScanNetError(f"ScanNet scene {self.path} has no depth/ directory")
        self.frame_ids: list[int] = sorted(int(p.stem) for p in depth_dir.glob("*.png") if re.fullmatch(r"\d+", p.stem))
        if not self.frame_ids:
            raise ScanNetError(f"{depth_dir} holds no <i>.png depth images")
        K_depth = _read_matrix(self.path / "intrinsic" / "intrinsic_depth.txt")
        self._K_depth = K_depth[:3, :3]
        self.skipped: collections.Counter[str] = collections.Counter()
        self.problems: dict[str, str] = {}
        self.poses_projected = 0
        self.max_pose_correction = 0.0
        self._intrinsics: CameraIntrinsics | None = None

    @property
    def name(self) -> str:
        """The scene name (its directory name, e.g. scene0000_00)."""
        return self.path.name

    def __len__(self) -> int:
        return len(self.frame_ids)

    def _color_path(self, frame_id: int) -> Path:
        for suffix in (".jpg", ".png"):
            path = self.path / "color" / f"{frame_id}{suffix}"
            if path.is_file():
                return path
        raise ScanNetError(f"missing colour image {self.path / 'color' / f'{frame_id}.jpg'} (or .png)", "missing colour")

    def read_depth(self, frame_id: int) -> np.ndarray:
        """Depth of frame ``frame_id`` as (H, W) float32 metres (0 = no return)."""
        path = self.path / "depth" / f"{frame_id}.png"
        if not path.is_file():
            raise ScanNetError(f"missing depth image {path}", "missing depth")
        array, mode = read_image_file(path)
        if array.dtype != np.uint16 or array.ndim != 2:
            raise ScanNetError(
                f"depth image {path} must be 16-bit greyscale millimetres, got PIL mode {mode} ({array.dtype} {array.shape})",
                "invalid depth",
            )
        return array.astype(np.float32) / np.float32(1000.0)

    def read_pose(self, frame_id: int) -> np.ndarray:
        """T_world_camera (4, 4) float64 of frame ``frame_id`` as written (not yet checked for
        rigidity); ScanNetError (reason "missing pose" / "invalid pose") if missing,
        unreadable or non-finite (lost tracking)."""
        path = self.path / "pose" / f"{frame_id}.txt"
        if not path.is_file():
            raise ScanNetError(f"missing file {path}", "missing pose")
        try:
            pose = _read_matrix(path)
        except ScanNetError as exc:
            raise ScanNetError(str(exc), "invalid pose") from exc
        if not np.isfinite(pose).all():
            raise ScanNetError(f"pose {path} is not finite (tracking lost)", "invalid pose")
        return pose

    def intrinsics(self) -> CameraIntrinsics:
        """Depth-camera intrinsics at the depth resolution (read from the first frame's depth image)."""
        if self._intrinsics is None:
            height, width = self.read_depth(self.frame_ids[0]).shape
            try:
                self._intrinsics = CameraIntrinsics.from_matrix(self._K_depth, width, height)
            except ValueError as exc:
                raise ScanNetError(f"{self.path / 'intrinsic' / 'intrinsic_depth.txt'}: {exc}") from exc
        return self._intrinsics

    def read_frame(self, frame_id: int) -> RGBDFrame:
        """Frame ``frame_id`` (its file stem) as an ``RGBDFrame`` at the depth resolution.

        Colour is resized to the depth size (PIL bilinear); labels, when
        ``label/<i>.png`` exists, are resized nearest-neighbour and returned as uint16.
        A nearly rigid pose is projected onto SO(3) (``RGBDFrame.pose_correction``).
        Raises ScanNetError naming the file (and its ``reason``) for missing or malformed data.
        """
        # The pose first: frames of lost tracking are common and are refused before any image is decoded.
        pose = self.read_pose(frame_id)
        depth = self.read_depth(frame_id)
        height, width = depth.shape
        intrinsics = self.intrinsics()
        if intrinsics.shape != depth.shape:
            raise ScanNetError(
                f"depth image {self.path / 'depth' / f'{frame_id}.png'} is {width}x{height}, "
                f"but the first frame's is {intrinsics.width}x{intrinsics.height}",
                "invalid depth",
            )
        color_path = self._color_path(frame_id)
        color, mode = read_image_file(color_path)
        if color.dtype != np.uint8 or color.ndim != 3 or color.shape[2] not in (3, 4):
            raise ScanNetError(f"colour image {color_path} must be 8-bit RGB, got PIL mode {mode}", "invalid colour")
        color = color[:, :, :3]
        if color.shape[:2] != depth.shape:
            color = np.asarray(Image.fromarray(np.ascontiguousarray(color)).resize((width, height), Image.Resampling.BILINEAR))
        labels = None
        label_path = self.path / "label" / f"{frame_id}.png"
        if label_path.is_file():
            raw, mode = read_image_file(label_path)
            if raw.ndim != 2 or raw.dtype not in (np.uint8, np.uint16):
                raise ScanNetError(
                    f"label image {label_path} must be 8- or 16-bit greyscale ids, got PIL mode {mode}", "invalid labels"
                )
            labels = raw.astype(np.uint16)
            if labels.shape != depth.shape:
                labels = np.asarray(Image.fromarray(labels).resize((width, height), Image.Resampling.NEAREST)).astype(np.uint16)
        try:
            return RGBDFrame(
                color=np.ascontiguousarray(color),
                depth=depth,
                intrinsics=intrinsics,
                T_world_camera=pose,
                stamp_ns=frame_id * FRAME_PERIOD_NS,
                frame_id=FRAME_ID,
                labels=labels,
            )
        except NotRigidError as exc:
            raise ScanNetError(f"frame {frame_id} of {self.path}: {exc}", "invalid pose") from exc
        except ValueError as exc:
            raise ScanNetError(f"frame {frame_id} of {self.path}: {exc}", "invalid frame") from exc

    def frames(self, stride: int = 1) -> Iterator[RGBDFrame]:
        """Every ``stride``-th frame in id order; frames whose pose is missing, not finite
        (lost tracking) or not rigid are skipped.

        Skips are counted in ``skipped`` (reasons "missing pose", "invalid pose") with
        the first message of each in ``problems``; other errors raise ScanNetError.
        Frames whose nearly rigid pose was projected onto SO(3) are counted in
        ``poses_projected``, the largest error corrected in ``max_pose_correction``.
        """
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        self.skipped.clear()
        self.problems.clear()
        self.poses_projected, self.max_pose_correction = 0, 0.0
        for frame_id in self.frame_ids[::stride]:
            try:
                frame = self.read_frame(frame_id)
            except ScanNetError as exc:
                if exc.reason not in POSE_PROBLEMS:
                    raise
                self.skipped[exc.reason] += 1
                self.problems.setdefault(exc.reason, str(exc))
                continue
            if frame.pose_correction > 0.0:
                self.poses_projected += 1
                self.max_pose_correction = max(self.max_pose_correction, frame.pose_correction)
            yield frame

    def ground_truth(self) -> PointBlock:
        """Labelled mesh vertices (NYU40 ids) with ScanNet's instance ids where the scene
        has its segment and aggregation files (``data.scannet_instances``), else 0."""
        block = read_labels_ply(self.path / f"{self.name}{GT_SUFFIX}")
        segs, aggregation = instance_files(self.path, self.name)
        if segs.is_file() and aggregation.is_file():
            try:
                block.instances = read_instances(segs, aggregation, len(block))
            except ScanNetInstanceError as exc:
                raise ScanNetError(str(exc)) from exc
        return block


def read_labels_ply(path: str | os.PathLike) -> PointBlock:
    """Labelled points of a PLY in ScanNet's ``*_vh_clean_2.labels.ply`` layout: xyz (N, 3)
    float32 metres and raw ids from the ``label`` vertex property; instance ids from an
    optional ``instance`` property (not in ScanNet's files; 0 where absent)."""
    vertices = read_ply_vertices(path)
    names = vertices.dtype.names or ()
    for needed in ("x", "y", "z", "label"):
        if needed not in names:
            raise ScanNetError(f"{path}: vertex element has no {needed!r} property (has {list(names)})")
    points = np.stack([vertices["x"], vertices["y"], vertices["z"]], 1).astype(np.float32)
    labels = vertices["label"]
    if np.issubdtype(labels.dtype, np.floating) or (labels.size and (labels.min() < 0 or labels.max() > 65535)):
        raise ScanNetError(f"{path}: label property must hold integer ids in 0..65535")
    instances = vertices["instance"] if "instance" in names else None
    if instances is not None and (np.issubdtype(instances.dtype, np.floating) or (instances.size and instances.min() < 0)):
        raise ScanNetError(f"{path}: instance property must hold non-negative integer ids")
    return PointBlock(points, labels.astype(np.uint16), instances, name=Path(path).name)


# ---------------------------------------------------------------------------
# PLY (the one vertex layout we need; open3d drops custom vertex properties)
# ---------------------------------------------------------------------------

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_MAX_HEADER_BYTES = 1 << 16


def read_ply_vertices(path: str | os.PathLike) -> np.ndarray:
    """The vertex element of a PLY file as a structured array (one field per scalar property).

    Supports ascii, binary_little_endian and binary_big_endian PLY 1.0 where every
    element before ``vertex`` has only scalar properties and ``vertex`` itself has no
    list properties. Raises ScanNetError naming the file for anything else, a malformed
    header or a truncated body.
    """
    path = Path(path)
    if not path.is_file():
        raise ScanNetError(f"missing PLY file {path}")
    with open(path, "rb") as handle:
        head = handle.read(_MAX_HEADER_BYTES)
        end = head.find(b"end_header\n")
        if not head.startswith(b"ply\n") or end < 0:
            raise ScanNetError(f"{path} is not a PLY file (no 'ply' magic or no end_header within 64 KiB)")
        body_offset = end + len(b"end_header\n")
        try:
            lines = head[:end].decode("ascii").splitlines()[1:]
        except UnicodeDecodeError as exc:
            raise ScanNetError(f"{path}: PLY header is not ASCII") from exc
        fmt = None
        elements: list[tuple[str, int, list[tuple[str, str]], bool]] = []
        for number, line in enumerate(lines, 2):
            words = line.split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "format":
                if len(words) != 3 or words[2] != "1.0" or words[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                    raise ScanNetError(f"{path} line {number}: unsupported PLY format {line!r}")
                fmt = words[1]
            elif words[0] == "element":
                if len(words) != 3 or not words[2].isdigit():
                    raise ScanNetError(f"{path} line {number}: malformed element line {line!r}")
                elements.append((words[1], int(words[2]), [], False))
            elif words[0] == "property":
                if not elements:
                    raise ScanNetError(f"{path} line {number}: property before any element")
                name, count, props, has_list = elements[-1]
                if len(words) == 5 and words[1] == "list":
                    elements[-1] = (name, count, props, True)
                elif len(words) == 3 and words[1] in _PLY_TYPES:
                    props.append((words[2], _PLY_TYPES[words[1]]))
                else:
                    raise ScanNetError(f"{path} line {number}: unsupported property {line!r}")
            else:
                raise ScanNetError(f"{path} line {number}: unexpected PLY header line {line!r}")
        if fmt is None:
            raise ScanNetError(f"{path}: PLY header has no format line")
        skip_rows = skip_bytes = 0
        for name, count, props, has_list in elements:
            if name == "vertex":
                break
            if has_list:
                raise ScanNetError(f"{path}: element {name!r} with list properties precedes the vertices")
            skip_rows += count
            skip_bytes += count * np.dtype([(p, t) for p, t in props]).itemsize
        else:
            raise ScanNetError(f"{path}: PLY has no vertex element")
        if has_list:
            raise ScanNetError(f"{path}: vertex element has list properties")
        if len({p for p, _ in props}) != len(props) or not props:
            raise ScanNetError(f"{path}: vertex properties missing or repeated: {[p for p, _ in props]}")
        if fmt == "ascii":
            handle.seek(body_offset)
            rows = handle.read().decode("ascii", errors="replace").splitlines()[skip_rows : skip_rows + count]
            if len(rows) < count:
                raise ScanNetError(f"{path}: PLY holds {len(rows)} vertex rows, header says {count}")
            out = np.empty(count, dtype=[(p, t) for p, t in props])
            try:
                values = np.array([r.split() for r in rows], dtype=np.float64).reshape(count, len(props))
            except ValueError as exc:
                raise ScanNetError(f"{path}: malformed ascii vertex rows: {exc}") from exc
            for i, (p, _) in enumerate(props):
                out[p] = values[:, i]
            return out
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(p, order + t) for p, t in props])
        handle.seek(body_offset + skip_bytes)
        data = handle.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ScanNetError(f"{path}: PLY body truncated ({len(data)} of {count * dtype.itemsize} vertex bytes)")
    return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))


def write_labels_ply(path: str | os.PathLike, points: np.ndarray, labels: np.ndarray) -> None:
    """Write ScanNet's labelled-mesh vertex layout atomically (binary little endian, no faces).

    points: (N, 3) metres (stored float32); labels: (N,) integer NYU40 ids in 0..65535
    (stored ushort, vertices coloured with the ScanNet palette, grey beyond id 40).
    """
    points = np.asarray(points)
    labels = np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 3 or not np.issubdtype(points.dtype, np.number):
        raise ScanNetError(f"ground-truth points for {path} must be (N, 3) numbers, got {points.dtype} {points.shape}")
    if not np.isfinite(points).all():
        raise ScanNetError(f"ground-truth points for {path} must be finite")
    if labels.shape != (len(points),) or not np.issubdtype(labels.dtype, np.integer):
        raise ScanNetError(f"ground-truth labels for {path} must be (N,) integers, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise ScanNetError(f"ground-truth labels for {path} must lie in 0..65535 (uint16), got {labels.min()}..{labels.max()}")
    palette = np.full((65536, 3), 128, dtype=np.uint8)
    palette[: len(NYU40_COLORS)] = NYU40_COLORS
    dtype = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1"), ("label", "<u2")]
    )
    vertices = np.empty(len(points), dtype=dtype)
    for i, axis in enumerate("xyz"):
        vertices[axis] = points[:, i]
    rgb = palette[labels.astype(np.int64)]
    vertices["red"], vertices["green"], vertices["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    vertices["alpha"] = 255
    vertices["label"] = labels
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment written by alster_mapping\n"
        f"element vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
        "property ushort label\n"
        "element face 0\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(header.encode("ascii"))
            handle.write(vertices.tobytes())


# ---------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------


def _matrix4(K: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = K
    return out


def write_scannet_scene(
    path: str | os.PathLike,
    frames: Iterable[RGBDFrame],
    gt_points: np.ndarray | None = None,
    gt_labels: np.ndarray | None = None,
    color_format: str = "jpg",
    gt_instances: np.ndarray | None = None,
) -> int:
    """Write frames (ids 0, 1, ...) and optional ground truth in the exported ScanNet layout.

    Colour is written at the frame's size (``color_format`` "jpg" quality 95 or lossless
    "png"); depth as uint16 millimetres (rounded, clipped at 65.535 m, 0 for invalid
    pixels); poses as 4x4 text; labels as uint16 PNG for frames that carry them; the
    intrinsics (all frames must share them) as both colour and depth 4x4 matrices with
    identity extrinsics; ``gt_points`` (N, 3) metres with ``gt_labels`` (N,) NYU40 ids as
    ``<scene>_vh_clean_2.labels.ply`` (scene = the directory name) and optional
    ``gt_instances`` (N,) ids (0 = none) as ScanNet's segment and aggregation files. Every file is
    written atomically. Refuses a directory that already holds frames. Returns the
    number of frames written.
    """
    if color_format not in ("jpg", "png"):
        raise ValueError(f"color_format must be 'jpg' or 'png', got {color_format!r}")
    if (gt_points is None) != (gt_labels is None):
        raise ValueError("gt_points and gt_labels must be given together")
    root = Path(path)
    for sub in ("color", "depth", "pose"):
        if (root / sub).is_dir() and any((root / sub).iterdir()):
            raise ScanNetError(f"{root / sub} already holds files; refusing to mix two scenes")
    intrinsics: CameraIntrinsics | None = None
    count = 0
    for i, frame in enumerate(frames):
        if not isinstance(frame, RGBDFrame):
            raise TypeError(f"frame {i} is a {type(frame).__name__}, expected RGBDFrame")
        if intrinsics is None:
            intrinsics = frame.intrinsics
        elif frame.intrinsics != intrinsics:
            raise ScanNetError(f"frame {i} has intrinsics {frame.intrinsics}, but frame 0 has {intrinsics}; a scene has one camera")
        depth = frame.depth.astype(np.float64)
        valid = np.isfinite(depth) & (depth > 0)
        depth_mm = np.where(valid, np.clip(np.rint(np.where(valid, depth, 0.0) * 1000.0), 0, MAX_DEPTH_MM), 0).astype(np.uint16)
        if frame.labels is not None:
            labels = frame.labels
            if labels.size and (labels.min() < 0 or labels.max() > 65535):
                raise ScanNetError(f"frame {i}: label ids {labels.min()}..{labels.max()} do not fit uint16")
            write_image_file(root / "label" / f"{i}.png", labels.astype(np.uint16))
        write_image_file(root / "color" / f"{i}.{color_format}", frame.color)
        write_image_file(root / "depth" / f"{i}.png", depth_mm)
        write_text_atomic(root / "pose" / f"{i}.txt", _format_matrix(frame.T_world_camera))
        count += 1
    if intrinsics is None:
        raise ScanNetError(f"no frames to write to {root}")
    K4 = _format_matrix(_matrix4(intrinsics.K))
    identity = _format_matrix(np.eye(4))
    write_text_atomic(root / "intrinsic" / "intrinsic_color.txt", K4)
    write_text_atomic(root / "intrinsic" / "intrinsic_depth.txt", K4)
    write_text_atomic(root / "intrinsic" / "extrinsic_color.txt", identity)
    write_text_atomic(root / "intrinsic" / "extrinsic_depth.txt", identity)
    if gt_points is not None:
        write_labels_ply(root / f"{root.name}{GT_SUFFIX}", gt_points, gt_labels)
        if gt_instances is not None:
            write_instances(root, root.name, gt_instances, gt_labels)
    return count
