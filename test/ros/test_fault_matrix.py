"""The bad-input and fault matrix: every kind of bad input or failure, fed to a live ``MappingNode``.

Each case asserts the same three things: the node is alive (worker thread running,
context up, services answering), the map is intact (identical before and after), and the
problem is counted under a clear reason whose latest message names it. After every
case a good frame must still be mapped.

The node runs in this process (its own rclpy context) and its registered callbacks are
called directly with what DDS would deliver (serialized bytes for the raw image
subscriptions, messages for the others): deterministic and fast, and the same code
paths as over DDS (``test_mapping_node.py`` covers the transport).
"""

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import TransformStamped  # noqa: E402
from map_snapshot import assert_same_snapshot, snapshot  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from safetensors import SafetensorError  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from test_mapping_node import camera_info_msg, color_msg, depth_msg, image_msg, pose_stamped, stamp  # noqa: E402

from alster_mapping.core.config import MapConfig  # noqa: E402
from alster_mapping.core.geometry import quaternion_from_pose  # noqa: E402
from alster_mapping.data.procedural_room import ProceduralRoom  # noqa: E402
from alster_mapping.map.map_file import save_map  # noqa: E402
from alster_mapping.map.voxel_map import SemanticVoxelMap  # noqa: E402
from alster_mapping.ros.mapping_node import MappingNode  # noqa: E402
from alster_mapping.ros.node_runtime import EXIT_WATCHDOG  # noqa: E402

W, H = 64, 48
PERIOD = 100_000_000  # 10 Hz [ns]
WAIT = 10.0  # seconds for the worker to handle a frame


def wall_ns() -> int:
    return time.time_ns()


class Feeder:
    """Calls the node's registered callbacks as the executor would, and waits for the worker."""

    def __init__(self, node: MappingNode):
        self.node = node
        subs = {s.topic_name: s.callback for s in node.subscriptions}
        self.color = subs["/camera/color/image_raw"]
        self.depth = subs["/camera/aligned_depth_to_color/image_raw"]
        self.labels = subs.get("/labels/image_raw")
        self.info = subs["/camera/color/camera_info"]
        self.pose = subs.get("/camera_pose")
        self.services = {s.srv_name.rsplit("/", 1)[-1]: s.callback for s in node.services}
        self.room = ProceduralRoom(W, H)
        self.frame = self.room.frames(1)[0]
        self.intrinsics = self.room.intrinsics
        self.stamps = itertools.count(wall_ns() - 3_600_000_000_000, PERIOD)  # an hour ago, well within the clock

    def next_stamp(self) -> int:
        return next(self.stamps)

    def messages(self, ns: int) -> dict:
        f = self.frame
        return {
            "color": color_msg(f, "rgb8", ns),
            "depth": depth_msg(f.depth, "32FC1", ns),
            "labels": image_msg(f.labels, "mono16", ns),
            "info": camera_info_msg(self.intrinsics, ns),
            "pose": pose_stamped(f.T_world_camera, ns),
        }

    def feed(self, ns: int | None = None, raw: dict | None = None, pose: bool = True, **replace) -> int:
        """Publish one frame: camera info and pose first, then the images; ``replace`` swaps messages, ``raw`` bytes."""
        ns = self.next_stamp() if ns is None else ns
        msgs = {**self.messages(ns), **replace}
        self.info(msgs["info"])
        if pose and self.pose is not None and msgs["pose"] is not None:
            self.pose(msgs["pose"])
        raw = raw or {}
        for name in ("color", "depth", "labels"):
            callback = getattr(self, name)
            if callback is not None:
                callback(raw[name] if name in raw else serialize_message(msgs[name]))
        return ns

    def stats(self) -> dict:
        return self.node.live.pipeline_stats()

    def wait(self, condition, what: str) -> dict:
        deadline = time.monotonic() + WAIT
        while True:
            stats = self.stats()
            if condition(stats):
                return stats
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {stats}"
            time.sleep(0.005)

    def handled(self) -> bool:
        """Whether every frame the synchroniser passed on is mapped, skipped or superseded."""
        s = self.stats()
        done = s["mapped"] + s["skipped_total"] + s["queue"]["superseded"]
        return done == s["received"].get("frames", 0) and s["queue"]["depth"] == 0

    def call(self, service: str) -> Trigger.Response:
        return self.services[service](Trigger.Request(), Trigger.Response())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fault_matrix")


def make_node(name: str, context, workdir: Path, **params) -> MappingNode:
    """A label-fusion MappingNode at 8 cm with its own save_path; ``params`` override or add parameters."""
    values = {"mode": "label_fusion", "map.voxel_size": 0.08, "pose_source": "pose", "save_path": str(workdir / f"{name}.safetensors")}
    values.update({key.replace("__", "."): value for key, value in params.items()})
    return MappingNode(name, context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


@pytest.fixture(scope="module")
def feeder(ros_context, workdir):
    # A temporary directory an interrupted save of a dead process left beside save_path.
    save_path = workdir / "map.safetensors"
    stale = workdir / ".map.safetensors.tmp-999999-abcd"
    stale.mkdir()
    (stale / ".tmpXYZ123").write_bytes(b"\0" * 1024)
    node = make_node("fault_matrix_node", ros_context, workdir, save_path=str(save_path), max_image_pixels=20_000, log_throttle=0.0, pose_timeout=0.0)
    assert not stale.exists(), "the stale temporary directory was not removed at start-up"
    feeder = Feeder(node)
    try:
        yield feeder
    finally:
        node.shutdown()
        node.destroy_node()


def assert_alive(feeder: Feeder) -> None:
    node = feeder.node
    assert node.live.worker.is_alive() and node.context.ok() and node.runtime.exit_code == 0
    response = feeder.call("get_stats")
    assert response.success, response.message
    stats = json.loads(response.message)
    assert stats["device"] == "cpu" and stats["index"] in ("open3d", "torch")
    assert stats["pipeline"]["pixel_kernels"] in ("numba", "torch")


def map_good_frame(feeder: Feeder) -> None:
    before = feeder.stats()["mapped"]
    feeder.feed()
    feeder.wait(lambda s: s["mapped"] == before + 1, "a good frame to be mapped")


# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------


@dataclass
class Case:
    """action(feeder) makes the fault; ``counter`` must grow and its latest message hold ``words``.

    counter: ``NAME`` (the pipeline's counters: ``skipped.*``, ``rejected.*``, ``bad_poses``,
    ``time_jumps``, ``worker.*``), ``sync.NAME`` (the synchroniser's) or ``service.NAME``
    (the map server's: ``save_map.failed``, ...). maps: the case maps frames on purpose
    (the map then changes, as it should). node: which node the case runs on.
    """

    action: Callable
    counter: str | None
    words: str | None
    maps: bool = False
    node: str = "pose"


def count(feeder: Feeder, counter: str) -> int:
    node = feeder.node
    if counter.startswith("sync."):
        return node.live.pipeline_stats()["sync"][counter[5:]]
    if counter.startswith("service."):
        return node.runtime.counters.get(counter[8:])
    return node.live.counters.get(counter)


def latest_message(feeder: Feeder, counter: str) -> str:
    if counter.startswith("service."):
        return feeder.node.runtime.counters.messages()[counter[8:]]
    return feeder.node.live.counters.messages()[counter]


def raw_of(feeder, name, ns, **fields):
    """Serialized bytes of the frame's ``name`` image with some fields replaced."""
    msg = feeder.messages(ns)[name]
    for key, value in fields.items():
        setattr(msg, key, value)
    return serialize_message(msg)


def image_case(name, **fields):
    def action(f):
        ns = f.next_stamp()
        f.feed(ns, raw={name: raw_of(f, name, ns, **fields)})

    return action


def depth_case(depth_values):
    def action(f):
        ns = f.next_stamp()
        f.feed(ns, depth=depth_msg(depth_values(), "32FC1", ns))

    return action


def info_case(**k_changes):
    """Camera info whose K entries ``k0`` .. ``k8`` are replaced."""

    def action(f):
        ns = f.next_stamp()
        info = camera_info_msg(f.intrinsics, ns)
        k = list(info.k)
        for index, value in k_changes.items():
            k[int(index[1:])] = value
        info.k = k
        f.feed(ns, info=info)

    return action


def pose_case(change):
    """A pose message changed by ``change(msg)``; the frame at its stamp then has no pose either."""

    def action(f):
        ns = f.next_stamp()
        pose = pose_stamped(f.frame.T_world_camera, ns)
        change(pose)
        f.pose(pose)
        f.feed(ns, pose=False)

    return action


def zero_quaternion(msg):
    o = msg.pose.orientation
    o.x = o.y = o.z = o.w = 0.0


def truncated(f):
    ns = f.next_stamp()
    raw = raw_of(f, "color", ns)
    f.feed(ns, raw={"color": raw[: len(raw) // 2]})


def not_cdr(f):
    f.feed(raw={"color": b"BB" + bytes(200)})


def absurd_string(f):
    ns = f.next_stamp()
    raw = bytearray(raw_of(f, "color", ns))
    raw[12:16] = (1 << 30).to_bytes(4, "little")  # the frame_id length (after encapsulation, sec, nanosec)
    f.feed(ns, raw={"color": bytes(raw)})


def size_mismatch(f):
    ns = f.next_stamp()
    f.feed(ns, depth=depth_msg(np.ones((H // 2, W // 2), np.float32), "32FC1", ns))


def info_size_mismatch(f):
    ns = f.next_stamp()
    f.feed(ns, info=camera_info_msg(f.intrinsics.resized(W // 2, H // 2), ns))


def too_large(f):
    ns = f.next_stamp()
    f.feed(ns, color=image_msg(np.zeros((150, 200, 3), np.uint8), "rgb8", ns))


def labels_outside(f):
    ns = f.next_stamp()
    f.feed(ns, labels=image_msg(np.full((H, W), 999, np.uint16), "mono16", ns))


def no_pose_near(f):
    ns = f.next_stamp()
    f.pose(pose_stamped(f.frame.T_world_camera, ns - 10 * PERIOD))
    f.feed(ns, pose=False)


def pose_gap(f):
    ns = f.next_stamp()
    f.pose(pose_stamped(f.frame.T_world_camera, ns - 2_000_000_000))
    f.pose(pose_stamped(f.frame.T_world_camera, ns + 2_000_000_000))
    f.feed(ns, pose=False)
    for _ in range(25):  # later frames must come after the pose 2 s ahead, or they would interpolate to it
        f.next_stamp()


def pose_from_the_future(f):
    f.pose(pose_stamped(f.frame.T_world_camera, wall_ns() + 3_600_000_000_000))  # an hour ahead


def images_from_the_future(f):
    f.feed(wall_ns() + 86_400_000_000_000)  # a day ahead


def stamp_zero(f):
    """Images stamped 0 (a driver that lost its clock) and no pose there: the jump is handled, the frame skipped."""
    f.feed(0, pose=False)


def jump_back(f):
    """A restarted bag: 120 s back in time. The first frame after the jump is mapped."""
    f.stamps = itertools.count(f.next_stamp() - 120_000_000_000, PERIOD)
    before = f.stats()["mapped"]
    f.feed()
    f.wait(lambda s: s["mapped"] == before + 1, "the first frame after the jump")


def duplicate_stamp(f):
    ns = f.next_stamp()
    before = f.stats()["mapped"]
    f.feed(ns)
    f.wait(lambda s: s["mapped"] == before + 1, "the original")
    f.feed(ns)


def older_stamp(f):
    ns = f.next_stamp()
    before = f.stats()["mapped"]
    f.feed(ns + PERIOD // 2)
    f.wait(lambda s: s["mapped"] == before + 1, "the newer frame")
    f.feed(ns)
    f.next_stamp()


def worker_error(f):
    def fail(frame):
        raise RuntimeError("a bug deep in the engine")

    with patched(f.node.live.mapper, "step", fail):
        before = f.node.live.counters.get("skipped.error")
        f.feed()
        f.wait(lambda s: f.node.live.counters.get("skipped.error") > before, "the error to be counted")


class WorkerKiller(BaseException):
    """Not an Exception: escapes the worker's per-frame handler and ends the thread."""


def worker_death(f):
    def die(frame):
        raise WorkerKiller()

    node = f.node
    with patched(node.live.mapper, "step", die):
        f.feed()
        deadline = time.monotonic() + WAIT
        while node.live.worker.is_alive():
            assert time.monotonic() < deadline, "the worker did not die"
            time.sleep(0.01)
    node.live._on_watchdog_timer()  # what its timer does every second: finds the thread dead, starts a new one


@contextlib.contextmanager
def patched(obj, name, value):
    original = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, original)


@contextlib.contextmanager
def server_setting(f, name, value):
    with patched(f.node.parameters.server_config, name, value):
        yield


def severity_sequence(f):
    """Issue 10 item 1: a successful save, a warning, a failing save, a save, a warning: the node logs them all."""
    assert f.call("save_map").success
    f.feed(pose=False)
    f.wait(lambda s: s["skipped"].get("pose_extrapolation", 0) >= 1, "a skipped frame")
    with server_setting(f, "save_path", "/proc/no/such/dir/map.safetensors"):
        assert not f.call("save_map").success
    assert f.call("save_map").success
    f.feed(pose=False)


def service_case(service, **settings):
    def action(f):
        with contextlib.ExitStack() as stack:
            for name, value in settings.items():
                stack.enter_context(server_setting(f, name, value(f) if callable(value) else value))
            response = f.call(service)
        assert not response.success

    return action


def full_disk(f):
    """safetensors reports ENOSPC as its own error type; the old map file and the directory stay clean."""
    import alster_mapping.core.tensor_file as tensor_file

    directory = Path(f.node.parameters.server_config.save_path).parent
    before = sorted(p.name for p in directory.iterdir())

    def no_space(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 4096)
        Path(filename).with_name(".tmpABC123").write_bytes(b"\0" * 4096)  # safetensors' own temporary
        raise SafetensorError("No space left on device (os error 28)")

    with patched(tensor_file, "save_file", no_space):
        assert not f.call("save_map").success
    assert sorted(p.name for p in directory.iterdir()) == before


def unexpected_service_error(f):
    def broken():
        raise RuntimeError("stats exploded")

    with patched(f.node.map_server, "stats", broken):
        assert not f.call("get_stats").success


def corrupt_file(f):
    path = Path(f.node.parameters.server_config.save_path).with_name("corrupt.safetensors")
    path.write_bytes(b"not a map" * 50)
    return str(path)


def learned_map_file(f):
    path = Path(f.node.parameters.server_config.save_path).with_name("learned.safetensors")
    m = SemanticVoxelMap(MapConfig(voxel_size=0.08, feature_dim=f.node.map.feature_dim))
    m.write(np.zeros((1, 3), np.int32), feature=torch.ones(1, m.feature_dim))
    m.feature_kind = "learned"
    save_map(m, path)
    return str(path)


def far_keys_file(f):
    """A map file whose keys lie beyond the packed range (written without the map's checks)."""
    from alster_mapping.map import map_file

    path = Path(f.node.parameters.server_config.save_path).with_name("far.safetensors")
    m = SemanticVoxelMap(MapConfig(voxel_size=0.08, feature_dim=f.node.map.feature_dim))
    m.write(np.zeros((1, 3), np.int32), label=torch.tensor([1]))
    save_map(m, path)
    tensors, meta = map_file.read_tensor_file(path)
    tensors["keys"] = torch.tensor([[1 << 23, 0, 0]], dtype=torch.int32)
    map_file.write_tensor_file(path, tensors, {k: v for k, v in meta.items() if k != "crc32"})
    return str(path)


def api_case(call, words: str):
    """A Python API call on the node's live map that must raise a clear ValueError and change nothing."""

    def action(f):
        with pytest.raises(ValueError, match=words):
            call(f.node.map)

    return action


LONG_NAME = "m" * 300 + ".safetensors"
NO_USER = "~no_such_user_alster/map.safetensors"

CASES = {
    # images (raw bytes, as the subscriptions receive them)
    "colour encoding yuv422": Case(image_case("color", encoding="yuv422"), "skipped.bad_encoding", "yuv422"),
    "colour image on the depth topic": Case(image_case("depth", encoding="rgb8", step=W * 3), "skipped.bad_encoding", "encoding"),
    "16-bit image on the colour topic": Case(image_case("color", encoding="mono16", step=W * 2), "skipped.bad_encoding", "mono16"),
    "data shorter than height x step": Case(image_case("depth", step=W * 4 + 8), "skipped.bad_encoding", "data bytes"),
    "step shorter than a row": Case(image_case("color", step=W), "skipped.bad_encoding", "step"),
    "zero-height image": Case(image_case("color", height=0), "skipped.bad_encoding", "0"),
    "label image in a colour encoding": Case(image_case("labels", encoding="rgb8", step=W * 3), "skipped.bad_encoding", "label image"),
    "truncated serialized image": Case(truncated, "rejected.bad_message", "truncated"),
    "bytes that are not CDR": Case(not_cdr, "rejected.bad_message", "encapsulation"),
    "absurd string length": Case(absurd_string, "rejected.bad_message", "string"),
    "depth smaller than colour": Case(size_mismatch, "skipped.size_mismatch", "sizes differ"),
    "image larger than max_image_pixels": Case(too_large, "rejected.image_too_large", "max_image_pixels"),
    "depth all zero": Case(depth_case(lambda: np.zeros((H, W), np.float32)), "skipped.no_valid_depth", "no finite positive"),
    "depth all NaN and inf": Case(
        depth_case(lambda: np.where(np.eye(H, W, dtype=bool), np.inf, np.nan).astype(np.float32)), "skipped.no_valid_depth", "no finite"
    ),
    "depth all negative": Case(depth_case(lambda: -np.ones((H, W), np.float32)), "skipped.no_valid_depth", "no finite positive"),
    "label ids outside the label space": Case(labels_outside, "skipped.rejected", "label"),
    # camera info
    "camera info of all zeros": Case(info_case(k0=0.0, k2=0.0, k4=0.0, k5=0.0), "skipped.bad_camera_info", "focal"),
    "principal point at cx = 1e6": Case(info_case(k2=1e6), "skipped.bad_camera_info", "principal point"),
    "principal point above the image": Case(info_case(k5=-40.0), "skipped.bad_camera_info", "principal point"),
    "NaN in K": Case(info_case(k0=float("nan")), "skipped.bad_camera_info", "non-finite"),
    "focal length of 0.001 px": Case(info_case(k0=1e-3), "skipped.bad_camera_info", "field of view"),
    "focal length of 1e9 px": Case(info_case(k4=1e9), "skipped.bad_camera_info", "field of view"),
    "skewed K": Case(info_case(k1=3.0), "skipped.bad_camera_info", "skew"),
    "camera info of another size": Case(info_size_mismatch, "skipped.size_mismatch", "camera_info"),
    # poses
    "pose with a zero quaternion": Case(pose_case(zero_quaternion), "bad_poses", "norm"),
    "pose with a NaN position": Case(pose_case(lambda p: setattr(p.pose.position, "x", float("nan"))), "bad_poses", "non-finite"),
    "pose with a quaternion of norm 2.5": Case(pose_case(lambda p: setattr(p.pose.orientation, "w", 2.5)), "bad_poses", "norm"),
    "pose in another frame": Case(pose_case(lambda p: setattr(p.header, "frame_id", "odom")), "bad_poses", "odom"),
    "no pose near the image stamp": Case(no_pose_near, "skipped.pose_extrapolation", "no pose"),
    "poses 4 s apart around the image": Case(pose_gap, "skipped.pose_gap", "gap"),
    "pose stamped an hour ahead": Case(pose_from_the_future, "rejected.future_stamp", "ahead"),
    # stamps
    "images stamped a day ahead": Case(images_from_the_future, "rejected.future_stamp", "ahead"),
    "a bag restarted 120 s back": Case(jump_back, "time_jumps", "jumped back", maps=True),
    "images stamped 0": Case(stamp_zero, "time_jumps", "jumped back"),
    "a frame sent twice": Case(duplicate_stamp, "sync.duplicates", None, maps=True),
    "a frame older than the last mapped": Case(older_stamp, "sync.dropped", None, maps=True),
    # the worker
    "an unexpected error in the engine": Case(worker_error, "skipped.error", "a bug deep in the engine"),
    "the worker thread dies": Case(worker_death, "worker.restarts", "exited unexpectedly"),
    "save, warn, fail to save, save, warn": Case(severity_sequence, "skipped.pose_extrapolation", "no pose", maps=True),
    # services and files
    "save into a directory that cannot exist": Case(
        service_case("save_map", save_path="/proc/no/such/dir/map.safetensors"), "service.save_map.failed", "cannot save"
    ),
    "save to an unknown ~user": Case(service_case("save_map", save_path=NO_USER), "service.save_map.failed", "~no_such_user"),
    "save with a 300-character name": Case(
        service_case("save_map", save_path=lambda f: str(Path(f.node.parameters.server_config.save_path).with_name(LONG_NAME))),
        "service.save_map.failed",
        "too long",
    ),
    "save onto a full disk": Case(full_disk, "service.save_map.failed", "No space left"),
    "save with an empty save_path": Case(service_case("save_map", save_path=""), "service.save_map.failed", "empty"),
    "load a 300-character name": Case(
        service_case("load_map", map_file=lambda f: str(Path(f.node.parameters.server_config.save_path).with_name(LONG_NAME))),
        "service.load_map.failed",
        "too long",
    ),
    "load from an unknown ~user": Case(service_case("load_map", map_file=NO_USER), "service.load_map.failed", "~no_such_user"),
    "load a corrupt file": Case(service_case("load_map", map_file=corrupt_file), "service.load_map.failed", "corrupt"),
    "load a directory": Case(service_case("load_map", map_file=lambda f: "/tmp"), "service.load_map.failed", "does not exist"),
    "load a map of the other mode": Case(service_case("load_map", map_file=learned_map_file), "service.load_map.failed", "learned"),
    "load a map whose keys wrap around": Case(service_case("load_map", map_file=far_keys_file), "service.load_map.failed", "voxel keys"),
    "an unexpected error in a service": Case(unexpected_service_error, "service.get_stats.errors", None),
    # the Python API on the live map
    "write a key beyond 2^20": Case(api_case(lambda m: m.write(np.array([[1 << 23, 0, 0]]), label=torch.tensor([1])), "voxel keys"), None, None),
    "insert a key of -2^20 - 1": Case(api_case(lambda m: m.insert(np.array([[0, -(1 << 20) - 1, 0]])), "voxel keys"), None, None),
    "look up an int64 key beyond int32": Case(api_case(lambda m: m.lookup(torch.tensor([[1 << 40, 0, 0]])), "voxel keys"), None, None),
    "write float keys": Case(api_case(lambda m: m.write(np.zeros((1, 3)), label=torch.tensor([1])), "integers"), None, None),
    "write a label outside the space": Case(
        api_case(lambda m: m.write(np.array([[1, 2, 3]]), label=torch.tensor([999])), "label indices"), None, None
    ),
    "write a NaN feature": Case(
        api_case(lambda m: m.write(np.array([[1, 2, 3]]), feature=torch.full((1, m.feature_dim), float("nan"))), "non-finite"), None, None
    ),
}


# ---------------------------------------------------------------------------
# TF: the node's own buffer (/tf, /tf_static into core.tf_buffer)
# ---------------------------------------------------------------------------


def transform(parent: str, child: str, T: np.ndarray, ns: int) -> TransformStamped:
    t = TransformStamped()
    t.header.stamp, t.header.frame_id, t.child_frame_id = stamp(ns), parent, child
    xyz, q = quaternion_from_pose(T)
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = xyz.tolist()
    r = t.transform.rotation
    r.x, r.y, r.z, r.w = q.tolist()
    return t


class TfFeeder(Feeder):
    """Poses as /tf: map -> camera_optical at each image stamp."""

    def __init__(self, node: MappingNode):
        super().__init__(node)
        subs = {s.topic_name: s.callback for s in node.subscriptions}
        if "/tf" in subs:
            self.tf = subs["/tf"]
        else:
            # tf2_msgs is not installed (pip-only environment): the node has no /tf subscription,
            # so call its handler as the subscription would, with a TFMessage-shaped message.
            self.tf = node.runtime.guarded_callback("tf", lambda msg: node.live.poses._on_tf(False, msg))
            node.live.poses.backend = "TF (test: tf2_msgs is absent, messages handed to the node's handler)"

    def send_tf(self, *transforms: TransformStamped) -> None:
        self.tf(SimpleNamespace(transforms=list(transforms)))

    def feed(self, ns: int | None = None, raw: dict | None = None, pose: bool = True, **replace) -> int:
        ns = self.next_stamp() if ns is None else ns
        if pose:
            self.send_tf(transform("map", "camera_optical", self.frame.T_world_camera, ns))
        return super().feed(ns, raw, pose=False, **replace)


@pytest.fixture(scope="module")
def tf_feeder(ros_context, workdir):
    node = make_node("fault_matrix_tf_node", ros_context, workdir, pose_source="tf", log_throttle=0.0, pose_timeout=0.0)
    feeder = TfFeeder(node)
    try:
        yield feeder
    finally:
        node.shutdown()
        node.destroy_node()


def tf_case(change):
    """One /tf transform map -> camera_optical changed by ``change(t)``; the frame then has no pose either."""

    def action(f):
        ns = f.next_stamp()
        t = transform("map", "camera_optical", f.frame.T_world_camera, ns)
        change(t)
        f.send_tf(t)
        f.feed(ns, pose=False)

    return action


def tf_cycle(f):
    ns = f.next_stamp()
    f.send_tf(transform("map", "camera_optical", f.frame.T_world_camera, ns))
    f.send_tf(transform("camera_optical", "map", np.eye(4), ns))


def tf_unknown_frame(f):
    ns = f.next_stamp()
    color = color_msg(f.frame, "rgb8", ns)
    color.header.frame_id = "nowhere_optical"
    f.feed(ns, color=color)


def tf_future(f):
    f.send_tf(transform("map", "camera_optical", f.frame.T_world_camera, wall_ns() + 3_600_000_000_000))


def set_rotation(**values):
    def change(t):
        for axis, value in values.items():
            setattr(t.transform.rotation, axis, value)

    return change


CASES.update(
    {
        "TF with a NaN rotation": Case(tf_case(set_rotation(x=float("nan"))), "bad_poses", "non-finite", node="tf"),
        "TF with a quaternion of norm 0.5": Case(tf_case(set_rotation(x=0.0, y=0.0, z=0.0, w=0.5)), "bad_poses", "norm", node="tf"),
        "TF with an empty child frame": Case(tf_case(lambda t: setattr(t, "child_frame_id", "")), "bad_poses", "empty", node="tf"),
        "TF closing a cycle": Case(tf_cycle, "bad_poses", "cycle", node="tf"),
        "TF stamped an hour ahead": Case(tf_future, "rejected.future_stamp", "ahead", node="tf"),
        "an image frame TF does not know": Case(tf_unknown_frame, "skipped.pose_unavailable", "nowhere_optical", node="tf"),
        "TF restarted 120 s back": Case(jump_back, "time_jumps", "jumped back", maps=True, node="tf"),  # its feed sends /tf
    }
)


# ---------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------


def test_the_matrix_is_large():
    assert len(CASES) >= 40


def case_params():
    for name in CASES:
        # The dying worker's exception is what the case is about: pytest reports it as a warning.
        marks = [pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")] if name == "the worker thread dies" else []
        yield pytest.param(name, marks=marks)


@pytest.mark.parametrize("name", list(case_params()))
def test_bad_input_is_counted_and_leaves_the_node_and_the_map_intact(request, name):
    case = CASES[name]
    feeder = request.getfixturevalue("tf_feeder" if case.node == "tf" else "feeder")
    map_good_frame(feeder)  # there is a map to protect, and the node maps before the case
    before_map = snapshot(feeder.node.map)
    before = feeder.stats()
    before_count = count(feeder, case.counter) if case.counter else 0
    case.action(feeder)
    if case.counter:
        feeder.wait(lambda s: count(feeder, case.counter) > before_count, f"{case.counter} to grow")
    stats = feeder.wait(lambda s: feeder.handled(), "the worker to finish")
    if not case.maps:
        assert stats["mapped"] == before["mapped"], "a bad frame was mapped"
        assert_same_snapshot(before_map, snapshot(feeder.node.map))
    if case.words is not None:
        assert case.words in latest_message(feeder, case.counter)
    assert_alive(feeder)
    map_good_frame(feeder)  # and it keeps mapping
    assert_alive(feeder)


def test_watchdog_reports_a_stuck_worker_and_ends_the_node_with_code_3(workdir):
    ctx = Context()
    rclpy.init(context=ctx)
    node = make_node("watchdog_node", ctx, workdir, watchdog_timeout=0.3)
    release = threading.Event()
    try:
        feeder = Feeder(node)
        map_good_frame(feeder)
        node.live._on_watchdog_timer()
        assert node.runtime.exit_code == 0 and ctx.ok()  # a worker waiting for frames is not stuck
        with patched(node.live.mapper, "step", lambda frame: release.wait(WAIT)):
            feeder.feed()
            deadline = time.monotonic() + WAIT
            while node.live.heartbeat.silence() < 0.5:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            node.live._on_watchdog_timer()
            assert node.runtime.exit_code == EXIT_WATCHDOG and not ctx.ok()  # main() returns the code once spin ends
            status = node.live.diagnostics_status()
            assert status.level == DiagnosticStatus.ERROR and "stalled" in status.message
            assert node.live.counters.get("worker.stalls") == 1
            release.set()
    finally:
        release.set()
        node.shutdown()
        node.destroy_node()
        ctx.try_shutdown()


def test_image_downscale_maps_what_the_engine_maps_from_the_reduced_frame(ros_context, workdir):
    from alster_mapping.core.config import apply_overrides
    from alster_mapping.core.downscale import downscale_images
    from alster_mapping.core.frame import RGBDFrame
    from alster_mapping.pipeline.mapping_config import MappingConfig
    from alster_mapping.pipeline.online_mapper import OnlineMapper

    # max_image_pixels admits the full-size frame: the limit holds after downscaling.
    node = make_node("downscale_node", ros_context, workdir, image_downscale=2, max_image_pixels=(W // 2) * (H // 2))
    try:
        feeder = Feeder(node)
        map_good_frame(feeder)
        f = feeder.frame
        color, depth, labels = downscale_images(f.color, f.depth.astype(np.float32), f.labels, 2)
        offline = OnlineMapper(apply_overrides(MappingConfig(), {"mode": "label_fusion", "map.voxel_size": 0.08}))
        offline.step(RGBDFrame(color, depth, feeder.intrinsics.downscaled(2), f.T_world_camera, 0, labels=labels))
        assert_same_snapshot(snapshot(offline.map), snapshot(node.map))
    finally:
        node.shutdown()
        node.destroy_node()
