"""The node where robots break it (issue 14): TF, the self-check, LabelInfo, the Nav2 grid,
pause and clear, runtime parameters — with the node in its own process and real DDS.

tf2_msgs and vision_msgs come from ``make setup`` (interfaces/); without them these tests skip.
"""

import json
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
tf2_msgs = pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is built by make setup (interfaces/)")
vision_msgs = pytest.importorskip("vision_msgs.msg", reason="vision_msgs is built by make setup (interfaces/)")

from geometry_msgs.msg import TransformStamped  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402
from test_map_server import CALL_TIMEOUT, NodeProcess  # noqa: E402
from test_mapping_node import (  # noqa: E402
    PERIOD,
    T0,
    H,
    Harness,
    W,
    assert_cloud_equals_map,
    camera_info_msg,
    color_msg,
    counter,
    depth_msg,
    image_msg,
    params_file,
    stamp,
)
from tf2_msgs.msg import TFMessage  # noqa: E402
from vision_msgs.msg import LabelInfo  # noqa: E402

from alster_mapping.core.config import apply_overrides  # noqa: E402
from alster_mapping.core.frame import RGBDFrame  # noqa: E402
from alster_mapping.core.geometry import invert_se3, pose_from_quaternion, quaternion_from_pose  # noqa: E402
from alster_mapping.core.image_codec import color_to_rgb, depth_to_metres, image_to_array  # noqa: E402
from alster_mapping.core.tf_buffer import MAX_DEPTH  # noqa: E402
from alster_mapping.data.procedural_room import ProceduralRoom  # noqa: E402
from alster_mapping.map.semantic_grid import class_mask, semantic_grid  # noqa: E402
from alster_mapping.pipeline.mapping_config import MappingConfig  # noqa: E402
from alster_mapping.pipeline.online_mapper import OnlineMapper  # noqa: E402
from alster_mapping.ros.inputs import PoseSource  # noqa: E402

LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
T_MAP_ODOM = pose_from_quaternion(np.array([0.5, -0.2, 0.0]), np.array([0.0, 0.0, np.sin(0.1), np.cos(0.1)]))
# base_link -> camera_optical: 10 cm ahead, 30 cm up, optical axes (z forward, x right, y down).
T_BASE_CAMERA = pose_from_quaternion(np.array([0.1, 0.0, 0.3]), np.array([-0.5, 0.5, -0.5, 0.5]))


def transform(parent: str, child: str, T: np.ndarray, ns: int) -> TransformStamped:
    t = TransformStamped()
    t.header.frame_id, t.header.stamp, t.child_frame_id = parent, stamp(ns), child
    translation, q = quaternion_from_pose(T)
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = translation.tolist()
    r = t.transform.rotation
    r.x, r.y, r.z, r.w = q.tolist()
    return t


class TFPeer:
    """/tf and /tf_static publishers and the node's own services, on the harness's node."""

    def __init__(self, peer: Harness):
        self.peer = peer
        self.tf = peer.node.create_publisher(TFMessage, "/tf", 100)
        self.tf_static = peer.node.create_publisher(TFMessage, "/tf_static", LATCHED)
        self.grids: list[OccupancyGrid] = []
        self.label_info: list[LabelInfo] = []
        peer.node.create_subscription(OccupancyGrid, f"{peer.prefix}/semantic_grid", self.grids.append, LATCHED)
        peer.node.create_subscription(LabelInfo, f"{peer.prefix}/label_info", self.label_info.append, LATCHED)

    def call(self, kind, service: str, request):
        client = self.peer.node.create_client(kind, f"{self.peer.prefix}/{service}")
        try:
            assert client.wait_for_service(timeout_sec=CALL_TIMEOUT), service
            future = client.call_async(request)
            self.peer.executor.spin_until_future_complete(future, timeout_sec=CALL_TIMEOUT)
            assert future.done(), f"{service} did not answer:\n{self.peer.proc.output()}"
            return future.result()
        finally:
            self.peer.node.destroy_client(client)

    def set_parameters(self, **values):
        request = SetParameters.Request(parameters=[Parameter(k.replace("__", "."), value=v).to_parameter_msg() for k, v in values.items()])
        return self.call(SetParameters, "set_parameters", request).results

    def wait_grid(self, condition, timeout: float = 10.0) -> OccupancyGrid:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.grids and condition(self.grids[-1]):
                return self.grids[-1]
            self.peer.alive()
            self.peer.spin(0.05)
        raise AssertionError(f"no matching ~/semantic_grid within {timeout} s:\n{self.peer.proc.output()}")


def test_tf_self_check_grid_pause_clear_and_label_info(tmp_path, ros_context):
    params = params_file(
        tmp_path,
        mode="label_fusion",
        voxel_size="0.08",
        pose_source="tf",
        self_check_timeout="1.0",
        diagnostics_period="0.3",
        publish_period="0.2",
        period="0.2",  # grid.period
        log_throttle="0.0",
    )
    room = ProceduralRoom(W, H)
    frames = room.frames(4)
    info = camera_info_msg(room.intrinsics, T0)
    offline = OnlineMapper(apply_overrides(MappingConfig(), {"mode": "label_fusion", "map.voxel_size": 0.08}))
    reference_poses = PoseSource()  # the node's own TF buffer code, fed the very same messages

    proc = NodeProcess(tmp_path, ["--params-file", str(params)])
    peer = None
    try:
        peer = Harness(ros_context, proc)
        tf = TFPeer(peer)

        # LabelInfo: the label space, latched.
        peer.stats()
        space = offline.map.label_space
        deadline = time.monotonic() + 10
        while not tf.label_info and time.monotonic() < deadline:
            peer.spin(0.05)
        (label_info,) = tf.label_info[:1]
        assert [(c.class_id, c.class_name) for c in label_info.class_map] == list(zip(space.ids, space.names))
        assert label_info.header.frame_id == "map"

        # Self-check with no input at all: names the silent topics.
        stats = peer.wait_stats(lambda s: "no messages" in s["pipeline"]["self_check"], "the self-check's first finding")
        assert "/camera/color/image_raw" in stats["pipeline"]["self_check"] and "no camera_info either" in stats["pipeline"]["self_check"]

        # Frames with odom -> base_link on /tf and map -> odom on /tf_static, but no
        # base_link -> camera_optical link yet: skipped, and the self-check names the link.
        static_map = transform("map", "odom", T_MAP_ODOM, 0)
        tf.tf_static.publish(TFMessage(transforms=[static_map]))
        reference_poses.add_transform(static_map, static=True)
        peer.wait_connected(pose=False, more=(peer.labels, tf.tf))  # pose_source tf: no pose topic

        def messages(i: int, ns: int):
            f = frames[i]
            T_odom_base = invert_se3(T_MAP_ODOM) @ f.T_world_camera @ invert_se3(T_BASE_CAMERA)
            images = (color_msg(f, "rgb8", ns), depth_msg(f.depth, "32FC1", ns), image_msg(f.labels, "mono16", ns))
            return images, transform("odom", "base_link", T_odom_base, ns)

        first, odom = messages(0, T0)
        reference_poses.add_transform(odom)

        def send_first():
            tf.tf.publish(TFMessage(transforms=[odom]))
            peer.publish_frame(*first, info=info)

        stats = peer.wait_stats(lambda s: "camera_optical" in s["pipeline"]["self_check"], "the missing TF link named", resend=send_first)
        problem = stats["pipeline"]["self_check"]
        assert "TF map <- camera_optical" in problem and counter(stats, "mapped") == 0, problem

        # The static camera link arrives: frames are mapped exactly like the offline engine with the same TF.
        static_camera = transform("base_link", "camera_optical", T_BASE_CAMERA, 0)
        tf.tf_static.publish(TFMessage(transforms=[static_camera]))
        reference_poses.add_transform(static_camera, static=True)
        for i in range(len(frames)):
            ns = T0 + (i + 1) * PERIOD
            msgs, odom = messages(i, ns)
            reference_poses.add_transform(odom)

            def send(msgs=msgs, odom=odom):
                tf.tf.publish(TFMessage(transforms=[odom]))
                peer.spin(0.05)
                peer.publish_frame(*msgs, info=info)

            stats = peer.wait_stats(lambda s, i=i: counter(s, "mapped") == i + 1, f"TF frame {i}", resend=send)
            T = reference_poses.lookup("map", "camera_optical", ns, 0.0)
            np.testing.assert_allclose(T, frames[i].T_world_camera, atol=1e-9)
            offline.step(RGBDFrame(color_to_rgb(msgs[0]), depth_to_metres(msgs[1]), room.intrinsics, T, ns, labels=image_to_array(msgs[2])))
        assert stats["voxels"] == len(offline.map) > 100 and stats["pipeline"]["self_check"] == "ok"
        assert_cloud_equals_map(peer.wait_for("cloud", lambda m: m.width == len(offline.map)), offline.map)

        # The Nav2 grid equals the grid of the offline map (every class but the floor blocks).
        arrays = offline.map.to_arrays()
        keys = np.floor(arrays.xyz / offline.map.voxel_size).astype(np.int64)
        want = semantic_grid(keys, arrays.label_index, offline.map.voxel_size, class_mask(space, ["floor"], invert=True))
        def same_cells(g: OccupancyGrid) -> bool:
            return (g.info.height, g.info.width) == want.shape and np.array_equal(np.frombuffer(bytes(g.data), np.int8), want.cells.ravel())

        grid = tf.wait_grid(same_cells)
        assert grid.header.frame_id == "map" and grid.info.resolution == pytest.approx(0.08)
        assert (grid.info.origin.position.x, grid.info.origin.position.y) == pytest.approx(want.origin)
        assert {0, 100} <= set(np.unique(want.cells).tolist())

        # Extrapolation: an image after the last TF sample (beyond pose_tolerance) is skipped with the reason.
        late = T0 + 20 * PERIOD
        late_msgs, _ = messages(3, late)
        stats = peer.wait_stats(
            lambda s: counter(s, "skipped", "pose_extrapolation") >= 1, "TF extrapolation", resend=lambda: peer.publish_frame(*late_msgs, info=info)
        )
        assert "extrapolate" in stats["pipeline"]["latest"]["skipped.pose_extrapolation"]

        # Bad TF: a NaN rotation, a quaternion of norm 2 and a cycle are counted; the node and
        # the map stay as they are.
        nan = transform("odom", "base_link", np.eye(4), late)
        nan.transform.rotation.x = float("nan")
        scaled = transform("odom", "base_link", np.eye(4), late + 1)
        scaled.transform.rotation.w = 2.0
        cycle = transform("camera_optical", "odom", np.eye(4), late)
        stats = peer.wait_stats(
            lambda s: s["pipeline"]["bad_poses"] >= 3 and "norm 2.000" in s["pipeline"]["latest"].get("bad_poses", ""),
            "bad transforms counted",
            resend=lambda: tf.tf.publish(TFMessage(transforms=[nan, cycle, scaled])),
        )
        assert stats["voxels"] == len(offline.map)
        # A second parent for base_link is reported; a 10,000-link static chain is refused beyond
        # the depth limit (each refused link counted) without holding the node up; a transform
        # stamped a day ahead is rejected.
        reparent = transform("other_odom", "base_link", np.eye(4), late)
        chain = TFMessage(transforms=[transform(f"link{i}", f"link{i + 1}", np.eye(4), 0) for i in range(10_000)])
        ahead = transform("odom", "base_link", np.eye(4), time.time_ns() + 86_400 * 10**9)
        bad_before = stats["pipeline"]["bad_poses"]
        tf.tf_static.publish(chain)
        stats = peer.wait_stats(
            lambda s: s["pipeline"]["tf_reparented"] >= 1 and s["pipeline"]["bad_poses"] >= bad_before + 10_000 // MAX_DEPTH
            and counter(s, "rejected", "future_stamp") >= 1,
            "two parents, a deep tree and a future stamp",
            resend=lambda: tf.tf.publish(TFMessage(transforms=[reparent, ahead])),
        )
        assert "changed parent" in stats["pipeline"]["latest"]["tf_reparented"] and stats["voxels"] == len(offline.map)

        # Pause: frames are received but not mapped; resume.
        assert tf.call(SetBool, "set_paused", SetBool.Request(data=True)).success
        paused_msgs, paused_odom = messages(2, late + PERIOD)

        def send_paused():
            tf.tf.publish(TFMessage(transforms=[paused_odom]))
            peer.publish_frame(*paused_msgs, info=info)

        stats = peer.wait_stats(lambda s: s["pipeline"]["paused_frames"] >= 1, "a frame while paused", resend=send_paused)
        assert stats["pipeline"]["paused"] and counter(stats, "mapped") == len(frames) and stats["voxels"] == len(offline.map)
        response = tf.call(SetBool, "set_paused", SetBool.Request(data=False))
        assert response.success and response.message == "mapping"

        # Runtime parameters: a rate applies, a topic is fixed (with the reason), an unknown class is refused.
        ok, fixed, unknown = tf.set_parameters(diagnostics_period=0.5, color_topic="other", grid__free_classes="floor,lava")
        assert ok.successful
        assert not fixed.successful and "subscriptions" in fixed.reason
        assert not unknown.successful and "lava" in unknown.reason

        # Clear a region: an inverted box is refused (map intact), a box removes exactly its voxels.
        results = tf.set_parameters(clear_region__min=[0.0, 0.0, 0.0], clear_region__max=[-1.0, 5.0, 5.0])
        assert all(r.successful for r in results), results
        response = peer.call("clear_region")
        assert not response.success and "above box max" in response.message
        assert peer.stats()["voxels"] == len(offline.map)
        lo, hi = [-10.0, -10.0, -10.0], [10.0, 10.0, 0.5]
        assert all(r.successful for r in tf.set_parameters(clear_region__min=lo, clear_region__max=hi))
        response = peer.call("clear_region")
        removed = offline.map.remove_box(np.array(lo), np.array(hi))
        assert response.success and json.loads(response.message)["removed"] == removed > 0
        assert_cloud_equals_map(peer.wait_for("cloud", lambda m: m.width == len(offline.map)), offline.map)

        out = proc.output()
        assert "self-check: no frame mapped" in out and "Traceback" not in out
        assert proc.stop() == 0, proc.output()
    finally:
        if peer is not None:
            peer.close()
        proc.stop()
