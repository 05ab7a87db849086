"""Integration tests of the live mapping node: real rclpy, the node in a subprocess, real DDS on localhost.

The test process publishes frames (Image, CameraInfo, pose topics) from its own rclpy
context and checks what the node publishes and answers against the offline engine
(``OnlineMapper``) run on the very same decoded messages. Node starts cost seconds, so
each test runs one node session and checks many things in it.
"""

import array
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

import torch  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from test_map_server import CALL_TIMEOUT, START_TIMEOUT, NodeProcess, sorted_by_xyz  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from alster_mapping.core.config import apply_overrides  # noqa: E402
from alster_mapping.core.frame import RGBDFrame  # noqa: E402
from alster_mapping.core.geometry import interpolate_pose, invert_se3, pose_from_quaternion, quaternion_from_pose  # noqa: E402
from alster_mapping.core.image_codec import (  # noqa: E402
    array_to_image_fields,
    camera_info_fields,
    color_to_rgb,
    depth_to_metres,
    image_to_array,
)
from alster_mapping.core.labels import LabelSpace  # noqa: E402
from alster_mapping.data.procedural_room import ProceduralRoom  # noqa: E402
from alster_mapping.nets.checkpoint import save_checkpoint  # noqa: E402
from alster_mapping.pipeline.mapping_config import MappingConfig  # noqa: E402
from alster_mapping.pipeline.online_mapper import OnlineMapper  # noqa: E402
from alster_mapping.ros.cloud import cloud_to_arrays  # noqa: E402
from alster_mapping.ros.inputs import pose_to_matrix  # noqa: E402
from alster_mapping.ros.map_server import CLOUD_QOS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
W, H = 64, 48
T0 = 1_000_000_000_000  # first stamp [ns] (1000 s)
PERIOD = 100_000_000  # 10 Hz


# ---------------------------------------------------------------------------
# message construction
# ---------------------------------------------------------------------------


def stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def image_msg(a: np.ndarray, encoding: str, ns: int, frame_id: str = "camera_optical") -> Image:
    f = array_to_image_fields(a, encoding)
    msg = Image(height=f["height"], width=f["width"], encoding=encoding, is_bigendian=f["is_bigendian"], step=f["step"])
    msg.data = array.array("B", f["data"].tobytes())
    msg.header.stamp, msg.header.frame_id = stamp(ns), frame_id
    return msg


def camera_info_msg(intrinsics, ns: int) -> CameraInfo:
    f = camera_info_fields(intrinsics)
    msg = CameraInfo(height=f["height"], width=f["width"], distortion_model=f["distortion_model"])
    msg.d, msg.k, msg.r, msg.p = f["d"].tolist(), f["k"].tolist(), f["r"].tolist(), f["p"].tolist()
    msg.header.stamp, msg.header.frame_id = stamp(ns), "camera_optical"
    return msg


def set_pose(pose, T: np.ndarray) -> None:
    t, q = quaternion_from_pose(T)
    pose.position.x, pose.position.y, pose.position.z = t.tolist()
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = q.tolist()


def pose_stamped(T: np.ndarray, ns: int, frame: str = "map") -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = stamp(ns), frame
    set_pose(msg.pose, T)
    return msg


def odometry(T: np.ndarray, ns: int) -> Odometry:
    msg = Odometry(child_frame_id="base_link")
    msg.header.stamp, msg.header.frame_id = stamp(ns), "map"
    set_pose(msg.pose.pose, T)
    return msg


def color_msg(frame: RGBDFrame, encoding: str, ns: int) -> Image:
    rgb = frame.color
    return image_msg(np.ascontiguousarray(rgb[:, :, ::-1]) if encoding == "bgr8" else rgb, encoding, ns)


def depth_msg(depth: np.ndarray, encoding: str, ns: int) -> Image:
    if encoding == "16UC1":
        return image_msg(np.round(np.nan_to_num(depth, posinf=0.0) * 1000).astype(np.uint16), encoding, ns)
    return image_msg(depth.astype(np.float32), encoding, ns)


# ---------------------------------------------------------------------------
# the test-side node
# ---------------------------------------------------------------------------


class Harness:
    """Publishers of the node's inputs and subscribers of its outputs, in the test's own rclpy context."""

    def __init__(self, ctx: Context, proc: NodeProcess, ns: str = "", pose_type=PoseStamped, name: str = "mapping_node"):
        self.proc = proc
        self.prefix = prefix = f"{ns}/{name}"
        self.node = Node(f"{name}_test_peer", context=ctx)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        n = self.node
        self.color = n.create_publisher(Image, f"{ns}/camera/color/image_raw", 10)
        self.depth = n.create_publisher(Image, f"{ns}/camera/aligned_depth_to_color/image_raw", 10)
        self.labels = n.create_publisher(Image, f"{ns}/labels/image_raw", 10)
        self.info = n.create_publisher(CameraInfo, f"{ns}/camera/color/camera_info", 10)
        self.pose = n.create_publisher(pose_type, f"{ns}/camera_pose", 100)
        self.received: dict[str, list] = {k: [] for k in ("cloud", "update", "markers", "diagnostics", "label_image")}
        for key, kind, topic, qos in (
            ("cloud", PointCloud2, f"{prefix}/semantic_cloud", CLOUD_QOS),
            ("update", PointCloud2, f"{prefix}/semantic_cloud_update", 10),
            ("markers", MarkerArray, f"{prefix}/markers", CLOUD_QOS),
            ("diagnostics", DiagnosticArray, "/diagnostics", 10),
            ("label_image", Image, f"{prefix}/label_image", 10),
        ):
            n.create_subscription(kind, topic, self.received[key].append, qos)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def call(self, service: str) -> Trigger.Response:
        client = self.node.create_client(Trigger, f"{self.prefix}/{service}")
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not client.wait_for_service(timeout_sec=0.2):
                self.alive()
                assert time.monotonic() < deadline, f"service {service} did not appear:\n{self.proc.output()}"
            # A request sent while the server is still matching the client's topics is lost
            # (DDS discovery is not symmetric): ask again. The Trigger services are idempotent.
            for _ in range(3):
                future = client.call_async(Trigger.Request())
                self.executor.spin_until_future_complete(future, timeout_sec=CALL_TIMEOUT)
                if future.done():
                    return future.result()
                client.remove_pending_request(future)
                self.alive()
            raise AssertionError(f"{service} did not answer 3 times {CALL_TIMEOUT} s:\n{self.proc.output()}")
        finally:
            self.node.destroy_client(client)

    def stats(self) -> dict:
        response = self.call("get_stats")
        assert response.success, response.message
        return json.loads(response.message)

    def alive(self) -> None:
        assert self.proc.proc.poll() is None, f"node exited ({self.proc.proc.returncode}):\n{self.proc.output()}"

    def wait_stats(self, condition, what: str, timeout: float = 20.0, resend=None, every: float = 1.0) -> dict:
        """Poll ~/get_stats until ``condition(stats)``; ``resend()`` first and again every ``every`` s.

        Resending covers DDS discovery: a publisher may see the node's subscription before
        the node has matched it, and the first messages are then lost. Resent messages
        carry the same stamps, so the node drops the copies as duplicates.
        """
        deadline = time.monotonic() + timeout
        next_send = time.monotonic()
        while True:
            if resend is not None and time.monotonic() >= next_send:
                resend()
                next_send = time.monotonic() + every
            stats = self.stats()
            if condition(stats):
                return stats
            assert time.monotonic() < deadline, f"timed out waiting for {what}; stats {stats}\n{self.proc.output()}"
            self.spin(0.1)

    def wait_connected(self, pose: bool = True, more=()) -> None:
        """Publishers matched to the node's subscriptions (else the first messages are lost);
        pose: the node subscribes the pose topic (not with pose_source tf); more: other publishers to wait for."""
        deadline = time.monotonic() + START_TIMEOUT
        pubs = [self.color, self.depth, self.info] + ([self.pose] if pose else []) + list(more)
        while not all(p.get_subscription_count() > 0 for p in pubs):
            self.alive()
            assert time.monotonic() < deadline, f"the node did not subscribe:\n{self.proc.output()}"
            self.spin(0.1)

    def publish_frame(self, color: Image, depth: Image, labels: Image | None = None, info: CameraInfo | None = None, pose=None):
        """Camera info and pose first (as a camera driver and odometry would), then the images."""
        if info is not None:
            self.info.publish(info)
        if pose is not None:
            self.pose.publish(pose)
        if info is not None or pose is not None:
            self.spin(0.05)
        self.color.publish(color)
        self.depth.publish(depth)
        if labels is not None:
            self.labels.publish(labels)

    def wait_for(self, key: str, condition=lambda msg: True, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in reversed(self.received[key]):
                if condition(msg):
                    return msg
            self.alive()
            self.spin(0.05)
        raise AssertionError(f"nothing matching on {key} within {timeout} s:\n{self.proc.output()}")


def counter(stats: dict, *path: str) -> int:
    value = stats["pipeline"]
    for p in path:
        value = value.get(p, 0) if isinstance(value, dict) else 0
    return value


def assert_cloud_equals_map(cloud: PointCloud2, voxel_map) -> None:
    """Same voxels, labels (and confidences to float16 precision) as the offline map."""
    got = cloud_to_arrays(cloud)
    want = voxel_map.to_arrays()
    assert len(got) == len(want)
    g = sorted_by_xyz(got.xyz, got.label, got.confidence)
    w = sorted_by_xyz(want.xyz, want.label, want.confidence)
    np.testing.assert_array_equal(g[0], w[0])
    np.testing.assert_array_equal(g[1], w[1])
    np.testing.assert_allclose(g[2], w[2], atol=1e-6)


def params_file(tmp_path: Path, **values) -> Path:
    """config/mapping.yaml with some top-level-unique keys replaced (proves the shipped file is read)."""
    text = (REPO / "config" / "mapping.yaml").read_text()
    for key, value in values.items():
        pattern = rf"^(\s+){re.escape(key)}: [^#\n]*"
        text, n = re.subn(pattern, lambda m, key=key, value=value: f"{m.group(1)}{key}: {value} ", text, count=1, flags=re.M)
        assert n == 1, f"{key} not in config/mapping.yaml"
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------


def test_label_fusion_session_maps_like_the_offline_engine_and_survives_bad_input(tmp_path, ros_context):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a map" * 20)
    params = params_file(
        tmp_path,
        mode="label_fusion",
        voxel_size="0.08",
        pose_source="pose",
        max_image_pixels="20000",
        publish_label_image="true",
        markers_period="0.3",
        diagnostics_period="0.3",
        publish_period="0.2",
        map_file=str(corrupt),
        log_throttle="0.0",
    )
    room = ProceduralRoom(W, H)
    frames = room.frames(4)
    info = camera_info_msg(room.intrinsics, T0)
    cfg = apply_overrides(MappingConfig(), {"mode": "label_fusion", "map.voxel_size": 0.08})
    offline = OnlineMapper(cfg)

    proc = NodeProcess(tmp_path, ["--params-file", str(params)])
    peer = None
    try:
        peer = Harness(ros_context, proc)
        stats = peer.stats()
        assert stats["voxels"] == 0 and stats["pipeline"]["mode"] == "label_fusion"
        assert stats["pipeline"]["queue"]["capacity"] == 1  # the default: map the newest frame
        peer.wait_connected()

        # No camera info yet: skipped and counted.
        f = frames[0]
        first = (color_msg(f, "rgb8", T0), depth_msg(f.depth, "32FC1", T0), image_msg(f.labels, "mono16", T0))
        peer.wait_stats(
            lambda s: counter(s, "skipped", "missing_camera_info") == 1,
            "missing camera info",
            resend=lambda: peer.publish_frame(*first, pose=pose_stamped(f.T_world_camera, T0)),
        )
        peer.wait_stats(lambda s: counter(s, "received", "camera_info") >= 1, "camera info", resend=lambda: peer.info.publish(info))

        # Four good frames in several encodings (NaN / inf pixels in one depth image are just invalid).
        encodings = [("rgb8", "16UC1", "mono16"), ("bgr8", "32FC1", "mono8"), ("rgb8", "32FC1", "16UC1"), ("bgr8", "16UC1", "mono16")]
        for i, (f, (ce, de, le)) in enumerate(zip(frames, encodings)):
            ns = T0 + (i + 1) * PERIOD
            depth = f.depth.copy()
            if i == 2:
                depth[:4, :] = np.nan
                depth[-4:, :] = np.inf
            msgs = (color_msg(f, ce, ns), depth_msg(depth, de, ns), image_msg(f.labels.astype(np.uint8 if le == "mono8" else np.uint16), le, ns))
            pose = pose_stamped(f.T_world_camera, ns)
            stats = peer.wait_stats(
                lambda s, i=i: counter(s, "mapped") == i + 1, f"frame {i}",
                resend=lambda msgs=msgs, pose=pose: peer.publish_frame(*msgs, info=info, pose=pose),
            )
            # The offline engine on exactly what was sent.
            offline.step(RGBDFrame(color_to_rgb(msgs[0]), depth_to_metres(msgs[1]), room.intrinsics, pose_to_matrix(pose.pose), ns,
                                   labels=image_to_array(msgs[2])))
        assert stats["voxels"] == len(offline.map) > 100

        cloud = peer.wait_for("cloud", lambda m: m.width == len(offline.map))
        assert cloud.header.frame_id == "map"
        assert_cloud_equals_map(cloud, offline.map)
        update = peer.wait_for("update")
        assert 0 < update.width <= len(offline.map)
        markers = peer.wait_for("markers", lambda m: any(k.type == Marker.CUBE_LIST and len(k.points) == len(offline.map) for k in m.markers))
        assert any(k.ns == "legend" and "(" in k.text for k in markers.markers)
        label_image = peer.wait_for("label_image")
        assert (label_image.width, label_image.height, label_image.encoding) == (W, H, "rgb8")
        assert np.frombuffer(bytes(label_image.data), np.uint8).any()
        mapped_labels = stats["labels"]

        # Bad input: each is counted and skipped; the node keeps running and the map stays as it is.
        last = T0 + 4 * PERIOD
        good = frames[3]

        def frame_at(ns, color=None, depth=None, labels=None, pose=True, info_msg=info):
            peer.publish_frame(
                color or color_msg(good, "rgb8", ns),
                depth or depth_msg(good.depth, "32FC1", ns),
                labels or image_msg(good.labels, "mono16", ns),
                info=info_msg,
                pose=pose_stamped(good.T_world_camera, ns) if pose else None,
            )

        before = peer.stats()["pipeline"]
        sync_before = before["sync"]["dropped"] + before["sync"]["duplicates"]
        # A duplicate and an older stamp: dropped by the synchroniser (or the worker's stamp check).
        peer.wait_stats(
            lambda s: s["pipeline"]["sync"]["dropped"] + s["pipeline"]["sync"]["duplicates"]
            + counter(s, "skipped", "out_of_order") + counter(s, "skipped", "duplicate_stamp") >= sync_before + 2,
            "out-of-order and duplicate stamps",
            resend=lambda: (frame_at(last), frame_at(last - PERIOD // 2)),
        )
        bad_cases = [
            ("bad_encoding", dict()),
            ("size_mismatch", dict(info_msg=camera_info_msg(room.intrinsics.resized(32, 24), 0))),
            ("no_valid_depth", dict(depth="zeros")),
            ("no_valid_depth", dict(depth="nan_inf")),
            ("image_too_large", dict(color="huge")),
            ("rejected", dict(labels="outside")),
            ("pose_extrapolation", dict(pose=False)),
        ]
        expected: dict[str, int] = {}
        for k, (reason, case) in enumerate(bad_cases):
            ns = last + (k + 1) * PERIOD
            kwargs = dict(case)
            if reason == "bad_encoding":
                msg = color_msg(good, "rgb8", ns)
                msg.encoding = "yuv422"
                kwargs["color"] = msg
            if kwargs.get("depth") == "zeros":
                kwargs["depth"] = depth_msg(np.zeros((H, W), np.float32), "32FC1", ns)
            if kwargs.get("depth") == "nan_inf":
                d = np.full((H, W), np.nan, np.float32)
                d[::2] = np.inf
                kwargs["depth"] = depth_msg(d, "32FC1", ns)
            if kwargs.get("color") == "huge":
                kwargs["color"] = image_msg(np.zeros((150, 200, 3), np.uint8), "rgb8", ns)
                kwargs["depth"] = depth_msg(np.ones((150, 200), np.float32), "32FC1", ns)
            if kwargs.get("labels") == "outside":
                kwargs["labels"] = image_msg(np.full((H, W), 999, np.uint16), "mono16", ns)
            if "info_msg" in kwargs:
                kwargs["info_msg"].header.stamp = stamp(ns)
            expected[reason] = expected.get(reason, 0) + 1
            peer.wait_stats(
                # Too large images are rejected on arrival, before synchronisation; the rest by the worker.
                lambda s, r=reason: counter(s, "skipped", r) + counter(s, "rejected", r) >= expected[r], reason,
                resend=lambda ns=ns, kwargs=kwargs: frame_at(ns, **kwargs),
            )
        # A pose older than the tolerance: poses stop, images go on.
        ns = last + 20 * PERIOD
        old_pose = pose_stamped(good.T_world_camera, ns - 5 * PERIOD)
        peer.wait_stats(
            lambda s: counter(s, "skipped", "pose_extrapolation") >= 2, "pose older than the tolerance",
            resend=lambda: (peer.pose.publish(old_pose), frame_at(ns, pose=False)),
        )
        # A bad pose message (zero quaternion) is ignored and counted.
        bad_pose = pose_stamped(good.T_world_camera, ns)
        bad_pose.pose.orientation.w = 0.0
        bad_pose.pose.orientation.x = bad_pose.pose.orientation.y = bad_pose.pose.orientation.z = 0.0
        peer.wait_stats(lambda s: counter(s, "bad_poses") >= 1, "bad pose", resend=lambda: peer.pose.publish(bad_pose))

        # A map file that fails to load leaves the map intact.
        response = peer.call("load_map")
        assert not response.success and "corrupt" in response.message

        stats = peer.stats()
        assert counter(stats, "mapped") == 4
        assert stats["voxels"] == len(offline.map) and stats["labels"] == mapped_labels
        assert_cloud_equals_map(peer.wait_for("cloud", lambda m: m.width == len(offline.map)), offline.map)

        # Diagnostics carry the counters.
        def has_counters(msg):
            values = {kv.key: kv.value for st in msg.status for kv in st.values}
            return values.get("skipped.bad_encoding") == "1" and values.get("mapped") == "4"

        diag = peer.wait_for("diagnostics", has_counters)
        keys = {kv.key for kv in diag.status[0].values}
        assert {"queue.depth", "queue.superseded", "map.voxels", "process.memory_bytes", "latency.total.mean_ms"} <= keys

        # Time over DDS: a frame stamped a day ahead is rejected; a restarted bag (time 120 s
        # back) is mapped again without any help.
        ahead = time.time_ns() + 86_400 * 1_000_000_000
        peer.wait_stats(lambda s: counter(s, "rejected", "future_stamp") >= 1, "a future stamp", resend=lambda: frame_at(ahead))
        back = T0 - 120 * 1_000_000_000
        stats = peer.wait_stats(lambda s: counter(s, "mapped") == 5, "mapping after the jump back", resend=lambda: frame_at(back))
        assert counter(stats, "time_jumps") >= 1
        out = proc.output()
        assert "skipped the frame" in out and "Traceback" not in out
        assert proc.stop() == 0, proc.output()
    finally:
        if peer is not None:
            peer.close()
        proc.stop()


def test_alster_session_with_checkpoint_odometry_and_30hz_input(tmp_path, ros_context):
    """ALSTER mode: a checkpoint, odometry + extrinsic with interpolation, equality, then a 30 Hz burst."""
    cfg = apply_overrides(MappingConfig(), {"map.voxel_size": 0.08, "model.encoder2d.pretrained": False})
    torch.manual_seed(0)
    model = OnlineMapper(cfg).model
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(model, checkpoint, LabelSpace.load(cfg.label_space))
    offline = OnlineMapper(apply_overrides(cfg, {"alster.checkpoint": str(checkpoint)}))
    extrinsic = np.array([0.1, -0.05, 0.2, 0.5, -0.5, 0.5, 0.5])  # x y z qx qy qz qw: optical frame in base_link
    E = pose_from_quaternion(extrinsic[:3], extrinsic[3:])
    args = ["-r", "__ns:=/alster", "-p", f"alster.checkpoint:={checkpoint}", "-p", "map.voxel_size:=0.08",
            "-p", "pose_source:=odometry", "-p", "publish_period:=0.2", "-p", "queue_size:=2",
            "-p", "use_sim_time:=true"]  # no /clock: everything is driven by message stamps and steady timers
    for name, value in zip(("x", "y", "z", "qx", "qy", "qz", "qw"), extrinsic):
        args += ["-p", f"camera_extrinsic.{name}:={value}"]
    room = ProceduralRoom(W, H)
    frames = room.frames(3)
    info = camera_info_msg(room.intrinsics, T0)

    proc = NodeProcess(tmp_path, args)
    peer = None
    try:
        peer = Harness(ros_context, proc, "/alster", Odometry)
        peer.wait_connected()

        # Body poses for frames 0 and 2 only: frame 1's pose is interpolated.
        stamps = [T0 + i * PERIOD for i in range(3)]
        body = {i: frames[i].T_world_camera @ invert_se3(E) for i in (0, 2)}
        odom = {i: odometry(body[i], stamps[i]) for i in (0, 2)}
        peer.wait_stats(
            lambda s: counter(s, "received", "poses") >= 2 and counter(s, "received", "camera_info") >= 1,
            "odometry and camera info",
            resend=lambda: (peer.info.publish(info), peer.pose.publish(odom[0]), peer.pose.publish(odom[2])),
        )
        received_T = {i: pose_to_matrix(odom[i].pose.pose) for i in (0, 2)}
        received_T[1] = interpolate_pose(received_T[0], received_T[2], 0.5)
        for i, f in enumerate(frames):
            c, d = color_msg(f, "rgb8", stamps[i]), depth_msg(f.depth, "16UC1", stamps[i])
            peer.wait_stats(
                lambda s, i=i: counter(s, "mapped") == i + 1, f"frame {i}", timeout=30.0,
                resend=lambda c=c, d=d: peer.publish_frame(c, d, info=info),
            )
            offline.step(RGBDFrame(color_to_rgb(c), depth_to_metres(d), room.intrinsics, received_T[i] @ E, stamps[i]))
        cloud = peer.wait_for("cloud", lambda m: m.width == len(offline.map))
        assert_cloud_equals_map(cloud, offline.map)

        # 30 Hz for 2 s: the worker is slower, so the queue stays bounded and drops are counted;
        # services keep answering meanwhile.
        before = peer.stats()["pipeline"]
        n, slowest_call = 60, 0.0
        start = time.monotonic()
        for k in range(n):
            ns = stamps[-1] + (k + 1) * 33_333_333
            f = frames[k % 3]
            peer.pose.publish(odometry(f.T_world_camera @ invert_se3(E), ns))
            peer.color.publish(color_msg(f, "rgb8", ns))
            peer.depth.publish(depth_msg(f.depth, "16UC1", ns))
            if k % 15 == 0:
                t = time.monotonic()
                peer.stats()
                slowest_call = max(slowest_call, time.monotonic() - t)
            peer.spin(max(0.0, start + (k + 1) / 30.0 - time.monotonic()))
        # The images are subscribed best-effort (the sensor-data convention): DDS drops some
        # when the node's callbacks fall behind the burst, so only most of them must arrive.
        received = before["received"]["frames"] + n // 2
        stats = peer.wait_stats(
            lambda s: s["pipeline"]["received"].get("frames", 0) >= received and s["pipeline"]["queue"]["depth"] == 0,
            "the burst to drain", timeout=60.0,
        )
        p = stats["pipeline"]
        assert p["queue"]["max_depth"] <= p["queue"]["capacity"] == 2
        assert p["queue"]["superseded"] > 0
        # Every frame is accounted for: mapped, dropped from the queue, or skipped.
        peer.wait_stats(
            lambda s: s["pipeline"]["mapped"] + s["pipeline"]["queue"]["superseded"] + s["pipeline"]["skipped_total"]
            == s["pipeline"]["received"]["frames"],
            "the last frame to finish",
        )
        assert slowest_call < CALL_TIMEOUT
        assert "Traceback" not in proc.output()
        assert proc.stop() == 0, proc.output()
    finally:
        if peer is not None:
            peer.close()
        proc.stop()


def test_missing_or_corrupt_checkpoint_stops_with_a_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    for path, words in ((tmp_path / "absent.safetensors", "does not exist"), (corrupt, str(corrupt))):
        proc = NodeProcess(tmp_path, ["-r", "__ns:=/ckpt", "-p", f"alster.checkpoint:={path}"], name=path.stem)
        try:
            returncode = proc.proc.wait(timeout=START_TIMEOUT)
        finally:
            proc.stop()
        err = proc.stderr_path.read_text()
        assert returncode == 1, proc.output()
        assert str(path) in err and words in err and "Traceback" not in err
