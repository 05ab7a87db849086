"""Fast unit tests of the mapping node's ROS-free pieces: worker queue, throttle, latency, inputs, outputs."""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("rclpy")  # the message types (geometry_msgs, visualization_msgs) come with the ROS wheels

from geometry_msgs.msg import PoseStamped, TransformStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from alster_mapping.core.config import MapConfig  # noqa: E402
from alster_mapping.core.geometry import interpolate_pose, pose_from_quaternion, quaternion_from_pose  # noqa: E402
from alster_mapping.core.image_codec import array_to_image_fields, color_to_rgb, depth_to_metres  # noqa: E402
from alster_mapping.map.voxel_map import SemanticVoxelMap  # noqa: E402
from alster_mapping.ros.diagnostics import diagnostic_status, flatten_values  # noqa: E402
from alster_mapping.ros.inputs import (  # noqa: E402
    ImageConverter,
    ImageEncodingError,
    PoseSource,
    SkipFrame,
    pose_message_edge,
)
from alster_mapping.ros.outputs import arrays_of_keys, voxel_markers  # noqa: E402
from alster_mapping.ros.worker import Counters, FrameQueue, LatencyStats, Throttle  # noqa: E402


def test_frame_queue_drops_the_oldest_and_counts():
    q = FrameQueue(2)
    assert q.put(1) and q.put(2)
    assert not q.put(3)  # 1 dropped
    assert (len(q), q.dropped, q.put_count, q.max_depth) == (2, 1, 3, 2)
    assert q.get(0) == 2 and q.get(0) == 3 and q.get(0.01) is None
    # get waits for a put from another thread; close wakes a waiting get.
    threading.Timer(0.05, q.put, args=(4,)).start()
    assert q.get(5.0) == 4
    threading.Timer(0.05, q.close).start()
    start = time.monotonic()
    assert q.get(5.0) is None and time.monotonic() - start < 4.0


def test_counters_latency_and_throttle():
    c = Counters()
    c.add("a")
    c.add("a", 2)
    assert c.get("a") == 3 and c.snapshot() == {"a": 3}
    lat = LatencyStats(window=2)
    for s in (0.1, 0.2, 0.4):
        lat.add({"total": s})
    summary = lat.summary()["total"]
    assert summary["n"] == 2 and summary["mean_ms"] == pytest.approx(300) and summary["last_ms"] == pytest.approx(400)
    now = [0.0]
    t = Throttle(5.0, clock=lambda: now[0])
    assert t("x") == 0 and t("x") is None and t("x") is None and t("y") == 0
    now[0] = 6.0
    assert t("x") == 2  # two held back since the last one


def pose_msgs(T, ns):
    t, q = quaternion_from_pose(T)
    ps = PoseStamped()
    ps.header.frame_id = "map"
    ps.header.stamp.sec, ps.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    ps.pose.position.x, ps.pose.position.y, ps.pose.position.z = t.tolist()
    ps.pose.orientation.x, ps.pose.orientation.y, ps.pose.orientation.z, ps.pose.orientation.w = q.tolist()
    od = Odometry(header=ps.header, child_frame_id="base_link")
    od.pose.pose = ps.pose
    ts = TransformStamped(header=ps.header, child_frame_id="base_link")
    ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = t.tolist()
    ts.transform.rotation = ps.pose.orientation
    return {"pose": ps, "odometry": od, "transform": ts}


def test_pose_messages_and_interpolating_pose_source():
    T0 = pose_from_quaternion(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0, 1.0]))
    T1 = pose_from_quaternion(np.array([2.0, 2.0, 3.0]), np.array([0.0, 0.0, np.sin(0.5), np.cos(0.5)]))
    for kind, msg in pose_msgs(T0, 5_000_000_001).items():
        parent, T, ns = pose_message_edge(msg, kind)
        assert parent == "map" and ns == 5_000_000_001
        np.testing.assert_allclose(T, T0, atol=1e-12)
    bad = pose_msgs(T0, 0)["pose"]
    bad.pose.orientation.w = 0.0
    with pytest.raises(ValueError, match="quaternion"):
        pose_message_edge(bad, "pose")

    src = PoseSource(tolerance_ns=10)
    src.set_transform("map", "cam", T0, 100)
    src.set_transform("map", "cam", T1, 200)
    np.testing.assert_allclose(src.lookup("map", "cam", 150, 0.0), interpolate_pose(T0, T1, 0.5), atol=1e-12)
    np.testing.assert_allclose(src.lookup("map", "cam", 205, 0.0), T1)  # within the tolerance
    with pytest.raises(SkipFrame) as err:
        src.lookup("map", "cam", 300, 0.0)
    assert err.value.reason == "pose_extrapolation"
    with pytest.raises(SkipFrame) as err:
        src.lookup("map", "other", 150, 0.0)
    assert err.value.reason == "pose_unavailable"
    # A lookup waits (up to its timeout) for a pose that arrives later.
    threading.Timer(0.05, src.set_transform, args=("map", "cam", T1, 400)).start()
    np.testing.assert_allclose(src.lookup("map", "cam", 400, 5.0), T1)
    # /tf transforms: good ones are kept, bad ones refused.
    tf = SimpleNamespace(transforms=[pose_msgs(T0, 500)["transform"], pose_msgs(T0, 500)["transform"]])
    tf.transforms[1].child_frame_id = "map"  # a self-loop
    bad = 0
    for t in tf.transforms:
        try:
            src.add_transform(t)
        except ValueError:
            bad += 1
    assert bad == 1
    np.testing.assert_allclose(src.lookup("map", "base_link", 500, 0.0), T0, atol=1e-12)


def image(array, encoding):
    return SimpleNamespace(**array_to_image_fields(array, encoding))


def test_image_converter_matches_image_codec_and_rejects_bad_images():
    conv = ImageConverter(0.001)
    assert conv.backend == "numpy"
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(conv.color(image(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8")), rgb)
    np.testing.assert_array_equal(conv.color(image(rgb, "rgb8")), color_to_rgb(image(rgb, "rgb8")))
    mm = rng.integers(0, 5000, (6, 8), dtype=np.uint16)
    np.testing.assert_array_equal(conv.depth(image(mm, "16UC1")), depth_to_metres(image(mm, "16UC1")))
    ids = rng.integers(0, 40, (6, 8), dtype=np.uint16)
    np.testing.assert_array_equal(conv.labels(image(ids, "mono16")), ids)
    with pytest.raises(ImageEncodingError, match="yuv422"):
        conv.color(SimpleNamespace(**{**array_to_image_fields(rgb, "rgb8"), "encoding": "yuv422"}))
    with pytest.raises(ImageEncodingError, match="encoding"):
        conv.depth(image(rgb, "rgb8"))  # a colour image on the depth topic
    short = array_to_image_fields(mm, "16UC1")
    short["data"] = short["data"][:-2]
    with pytest.raises(ImageEncodingError, match="data bytes"):
        conv.depth(SimpleNamespace(**short))


def test_update_arrays_markers_and_diagnostics():
    m = SemanticVoxelMap(MapConfig(voxel_size=0.1, feature_dim=24))
    keys = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 2, 0]], dtype=torch.int32)
    m.write(keys, label=torch.tensor([0, 1, -1]), confidence=torch.tensor([0.5, 0.6, 0.0]),
            color=torch.zeros(3, 3, dtype=torch.uint8), count=torch.ones(3, dtype=torch.int64))
    part = arrays_of_keys(m, torch.tensor([[1, 0, 0], [5, 5, 5]], dtype=torch.int32))
    assert len(part) == 1 and part.label_index.tolist() == [1]  # the absent voxel is left out
    np.testing.assert_allclose(part.xyz, [[0.15, 0.05, 0.05]], atol=1e-6)

    markers = voxel_markers(m.to_arrays(), m, "map", max_voxels=2)
    assert markers.markers[0].action == Marker.DELETEALL
    cubes = markers.markers[1]
    assert cubes.type == Marker.CUBE_LIST and len(cubes.points) == len(cubes.colors) == 2  # thinned
    legend = [k.text for k in markers.markers if k.ns == "legend"]
    assert sorted(legend) == sorted([f"{m.label_space.names[0]} (1)", f"{m.label_space.names[1]} (1)", "unknown (1)"])

    assert flatten_values({"a": {"b": 1.23456, "c": 2}, "d": "x"}) == [("a.b", "1.235"), ("a.c", "2"), ("d", "x")]
    status = diagnostic_status("n", 1, "msg", {"q": {"depth": 0}})
    assert status.level == b"\x01" and status.values[0].key == "q.depth"


# ---------------------------------------------------------------------------
# time, raw images, logging, the worker's heartbeat
# ---------------------------------------------------------------------------


def test_stamp_guard_rejects_the_future_and_detects_jumps_back_per_stream():
    from alster_mapping.ros.stamp_guard import ACCEPT, FUTURE, JUMP_BACK, StampGuard

    S = 1_000_000_000
    guard = StampGuard(max_ahead_ns=5 * S, jump_back_ns=S)
    now = 1000 * S
    assert guard.check("color", 990 * S, now) == ACCEPT
    assert guard.check("color", 1006 * S, now) == FUTURE and guard.future == 1
    assert guard.check("color", 1006 * S, 0) == ACCEPT  # clock 0 (sim time before /clock): no reference
    assert guard.check("color", 1005 * S, now) == ACCEPT  # late by less than the threshold
    assert guard.check("depth", 500 * S, now) == ACCEPT  # another stream's first stamp
    assert guard.check("color", 880 * S, now) == JUMP_BACK and guard.jumps == 1
    # After a jump every stream starts over: the depth stream follows without another jump.
    assert guard.check("depth", 100 * S, now) == ACCEPT
    assert guard.check("color", 881 * S, now) == ACCEPT
    guard.reset()
    assert guard.check("color", 1 * S, now) == ACCEPT
    with pytest.raises(ValueError):
        StampGuard(-1, 0)


def test_raw_image_parse_matches_the_message_in_both_byte_orders():
    import struct

    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from alster_mapping.ros.raw_image import RawImageError, parse_raw_image

    rgb = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    for frame_id in ("", "c", "camera_color_optical_frame"):
        msg = Image(**{k: v for k, v in array_to_image_fields(rgb, "rgb8").items() if k != "data"})
        msg.data = rgb.tobytes()
        msg.header.frame_id = frame_id
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1234, 5678
        raw = serialize_message(msg)
        image = parse_raw_image(raw)
        assert (image.stamp_ns, image.frame_id, image.height, image.width, image.encoding, image.step) == (
            1234 * 10**9 + 5678, frame_id, 5, 7, "rgb8", 21)
        np.testing.assert_array_equal(color_to_rgb(image), rgb)
    # A big-endian CDR stream (another RMW) carries the same fields.
    def string(text):
        data = text.encode() + b"\0"
        return struct.pack(">I", len(data)) + data

    body = struct.pack(">iI", 7, 9) + string("cam")
    body += b"\0" * (-len(body) % 4) + struct.pack(">II", 1, 2) + string("mono8")
    body += bytes([0]) + b"\0" * (-(len(body) + 1) % 4) + struct.pack(">II", 2, 2) + b"\x05\x06"
    image = parse_raw_image(b"\x00\x00\x00\x00" + body)
    assert (image.stamp_ns, image.frame_id, image.width, image.encoding, image.data.tolist()) == (7 * 10**9 + 9, "cam", 2, "mono8", [5, 6])
    for bad, words in ((b"\x00", "too short"), (b"\x00\x07\x00\x00" + body, "encapsulation"), (raw[:40], "truncated")):
        with pytest.raises(RawImageError, match=words):
            parse_raw_image(bad)


class SeverityCheckingLogger:
    """Behaves like rclpy's logger: a call site keeps the severity of its first call."""

    def __init__(self):
        import inspect

        self._inspect = inspect
        self.sites: dict = {}
        self.lines: list = []

    def _log(self, level, message):
        frame = self._inspect.currentframe().f_back.f_back
        site = (frame.f_code.co_filename, frame.f_lineno)
        if self.sites.setdefault(site, level) != level:
            raise ValueError("Logger severity cannot be changed between calls.")
        self.lines.append((level, message))

    def debug(self, m):
        self._log("debug", m)

    def info(self, m):
        self._log("info", m)

    def warning(self, m):
        self._log("warning", m)

    def error(self, m):
        self._log("error", m)


def test_node_log_mixes_severities_throttles_and_never_raises(capsys):
    from alster_mapping.ros.node_log import NodeLog

    logger = SeverityCheckingLogger()
    log = NodeLog(logger, "node", throttle_period=60.0)
    for level in ("info", "warning", "error", "info", "debug", "warning"):
        log.log(level, f"a {level} line")
    assert [lv for lv, _ in logger.lines] == ["info", "warning", "error", "info", "debug", "warning"]
    assert log.throttled("skip", "first") and not log.throttled("skip", "second")
    usable = [True]
    broken = NodeLog(SimpleNamespace(info=lambda m: 1 / 0), "broken", lambda: usable[0])
    broken.info("goes to stderr")  # the logger raises: stderr instead
    usable[0] = False
    broken.error("context gone")
    err = capsys.readouterr().err
    assert "[INFO] [broken]: goes to stderr" in err and "[ERROR] [broken]: context gone" in err


def test_heartbeat_tells_dead_stalled_and_alive():
    from alster_mapping.ros.watchdog import ALIVE, DEAD, STALLED, Heartbeat

    now = [0.0]
    beat = Heartbeat(5.0, clock=lambda: now[0])
    assert beat.check(True) == ALIVE
    now[0] = 4.0
    assert beat.check(True) == ALIVE and beat.check(False) == DEAD
    now[0] = 6.0
    assert beat.check(True) == STALLED and beat.silence() == 6.0
    beat.beat()
    assert beat.check(True) == ALIVE
    assert Heartbeat(0.0, clock=lambda: now[0] + 1e6).check(True) == ALIVE  # 0 = the stall check is off


def test_pose_source_refuses_to_interpolate_across_a_gap():
    S = 1_000_000_000
    source = PoseSource(cache_ns=100 * S, tolerance_ns=0, max_gap_ns=S)
    source.set_transform("map", "body", np.eye(4), 10 * S)
    source.set_transform("map", "body", pose_from_quaternion(np.array([1.0, 0, 0]), np.array([0, 0, 0, 1.0])), 13 * S)
    with pytest.raises(SkipFrame) as info:
        source.lookup("map", "body", 11 * S, timeout_s=0.0)
    assert info.value.reason == "pose_gap"
