"""``alster play`` / ``BagPlayer``: a bag published live with its timing drives the real mapping node.

The bag is written with ``write_bag`` (colour, 16UC1 depth, camera info, labels, /tf,
/tf_static). The player publishes /tf and /tf_static (tf2_msgs is built by ``make setup``)
and, with ``pose_topic``, each image's pose resolved offline through the bag's TF: a node
posed by TF and a node posed by the topic must build the same map.
"""

import dataclasses
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from sensor_msgs.msg import Image  # noqa: E402
from test_map_server import NodeProcess, sorted_by_xyz  # noqa: E402
from test_mapping_node import Harness, counter, params_file  # noqa: E402

from alster_mapping.data.procedural_room import ProceduralRoom  # noqa: E402
from alster_mapping.data.rosbag_io import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, write_bag  # noqa: E402
from alster_mapping.ros.bag_player import BagPlayer, message_class  # noqa: E402
from alster_mapping.ros.cloud import cloud_to_arrays  # noqa: E402

try:
    from rosgraph_msgs.msg import Clock
except ImportError:  # no /clock then; the rest is still tested
    Clock = None

W, H = 64, 48
T0 = 1_000_000_000_000  # first stamp [ns]
PERIOD = 400_000_000  # 2.5 Hz: slow enough that timing errors of the machine stay small against it
FRAMES = 6
RATE = 2.0
LABELS_TOPIC = "/labels/image_raw"
TF_PUBLISHED = message_class("tf2_msgs/msg/TFMessage") is not None
"""Whether the player can publish /tf (tf2_msgs importable: built by make setup)."""
NODE_DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"  # the node's default depth input


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    frames = [dataclasses.replace(f, stamp_ns=T0 + i * PERIOD) for i, f in enumerate(ProceduralRoom(W, H).frames(FRAMES))]
    path = tmp_path_factory.mktemp("play") / "room_bag"
    assert write_bag(path, frames, labels_topic=LABELS_TOPIC) == FRAMES
    return path


def test_message_classes_resolve_or_report_none():
    assert message_class("sensor_msgs/msg/Image") is Image
    assert message_class("sensor_msgs/Image") is Image
    assert message_class("no_such_pkg/msg/Thing") is None
    assert message_class("sensor_msgs/msg/NoSuchMessage") is None


def test_start_offset_topic_filter_and_loop(bag):
    """Without subscribers: what gets published (counts), start offset, loop until stop()."""
    result = BagPlayer(bag, rate=20.0, start_offset=1.0, topics=[INFO_TOPIC], clock=False).play()
    assert result.published == {INFO_TOPIC: 3}  # stamps 1.2, 1.6, 2.0 s into the bag
    assert result.bag_duration == pytest.approx(1.0)  # from the offset to the last message
    with pytest.raises(ValueError, match="beyond"):
        BagPlayer(bag, start_offset=5.0).play()

    player = BagPlayer(bag, rate=20.0, loop=True, topics=[INFO_TOPIC], clock=False)
    timer = threading.Timer(0.5, player.stop)  # a pass takes 0.1 s
    timer.start()
    result = player.play()
    timer.join()
    assert result.loops >= 2 and result.interrupted
    assert result.published[INFO_TOPIC] >= FRAMES


def test_cli_play_runs(bag, capsys):
    from alster_mapping.cli import main

    assert main(["play", str(bag), "--rate", "20", "--no-clock", "--topics", INFO_TOPIC, COLOR_TOPIC]) == 0
    out = capsys.readouterr().out
    assert f"{INFO_TOPIC}: {FRAMES}" in out and f"{COLOR_TOPIC}: {FRAMES}" in out


def test_play_into_the_live_node(tmp_path, bag, ros_context):
    params = params_file(
        tmp_path,
        mode="label_fusion",
        voxel_size="0.08",
        pose_source="tf" if TF_PUBLISHED else "pose",
        publish_period="0.2",
        diagnostics_period="0.5",
        queue_size="10",
    )
    proc = NodeProcess(tmp_path, ["--params-file", str(params)])
    peer = None
    try:
        peer = Harness(ros_context, proc)
        assert peer.stats()["voxels"] == 0
        peer.wait_connected(pose=not TF_PUBLISHED)
        arrivals: list[tuple[float, int]] = []
        clocks: list[int] = []
        peer.node.create_subscription(
            Image, COLOR_TOPIC, lambda m: arrivals.append((time.monotonic(), m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)), 10
        )
        if Clock is not None:
            peer.node.create_subscription(Clock, "/clock", lambda m: clocks.append(m.clock.sec * 10**9 + m.clock.nanosec), 100)

        player = BagPlayer(
            bag,
            rate=RATE,
            pose_topic=None if TF_PUBLISHED else "/camera_pose",
            remap={DEPTH_TOPIC: NODE_DEPTH_TOPIC},
            wait_for_subscribers=20.0,
            expect_subscribers={COLOR_TOPIC: 2},  # the node and this test
            delay=1.0,
            log=lambda line: None,
        )
        results = []
        thread = threading.Thread(target=lambda: results.append(player.play()))
        thread.start()
        while thread.is_alive():
            peer.spin(0.05)
        thread.join()
        (result,) = results
        peer.spin(0.5)

        # Every frame with its pose: on /tf (the node's default pose_source), or on a pose
        # topic where tf2_msgs is missing (then /tf and /tf_static are reported as skipped).
        assert result.published[COLOR_TOPIC] == result.published[NODE_DEPTH_TOPIC] == FRAMES
        if TF_PUBLISHED:
            assert result.published["/tf"] == FRAMES and result.published["/tf_static"] == 1
        else:
            assert result.published["/camera_pose"] == FRAMES and result.poses_missing == 0
            assert set(result.skipped_topics) == {"/tf", "/tf_static"}

        # The node maps the frames.
        # The node subscribes to images best-effort (the sensor-data convention), so DDS may
        # lose one (seen: the first frame, right after discovery): every frame that arrives is
        # mapped, and at most one goes missing.
        stats = peer.wait_stats(
            lambda s: counter(s, "received", "frames") >= FRAMES - 1 and counter(s, "mapped") == counter(s, "received", "frames"),
            "every received frame mapped",
            timeout=30.0,
        )
        assert stats["voxels"] > 100 and stats["pipeline"]["skipped_total"] == 0
        assert peer.wait_for("update").width > 0
        assert peer.wait_for("cloud", lambda m: m.width == stats["voxels"]).header.frame_id == "map"

        # Timing follows the bag: first to last message in (bag span) / rate; images spaced by PERIOD / RATE.
        span = (FRAMES - 1) * PERIOD / 1e9
        assert result.bag_duration == pytest.approx(span)
        # Upper bounds are loose: a loaded 2-core CI machine delays the publishing thread.
        assert span / RATE - 0.05 <= result.wall_duration <= span / RATE + 1.0
        assert [s for _, s in arrivals] == [T0 + i * PERIOD for i in range(FRAMES)]
        gaps = np.diff([t for t, _ in arrivals])
        assert np.median(gaps) == pytest.approx(PERIOD / 1e9 / RATE, abs=0.1)

        # /clock runs through the bag time, never backwards.
        if Clock is not None:
            assert len(clocks) > FRAMES
            assert clocks[0] == T0 and clocks[-1] == T0 + (FRAMES - 1) * PERIOD
            assert all(b >= a for a, b in zip(clocks, clocks[1:]))
        assert proc.stop() == 0, proc.output()
    finally:
        if peer is not None:
            peer.close()
        proc.stop()


@pytest.mark.skipif(not TF_PUBLISHED, reason="tf2_msgs is built by make setup (interfaces/)")
def test_tf_posed_and_pose_topic_nodes_map_the_bag_identically(tmp_path, bag, ros_context):
    """One bag into two nodes: one takes poses from /tf + /tf_static, the other from the player's pose topic."""
    common = dict(mode="label_fusion", voxel_size="0.08", publish_period="0.2", queue_size="10", image_reliability="reliable")
    procs, peers = {}, {}
    try:
        for source in ("tf", "pose"):
            (tmp_path / source).mkdir()
            params = params_file(tmp_path / source, pose_source=source, **common)
            name = f"mapping_node_{source}"
            procs[source] = NodeProcess(tmp_path, ["--params-file", str(params), "-r", f"__node:={name}"], name=source)
            peers[source] = Harness(ros_context, procs[source], name=name)
        for peer in peers.values():
            assert peer.stats()["voxels"] == 0
        player = BagPlayer(
            bag,
            rate=4.0,
            pose_topic="/camera_pose",
            remap={DEPTH_TOPIC: NODE_DEPTH_TOPIC},
            wait_for_subscribers=30.0,
            expect_subscribers={COLOR_TOPIC: 2, "/tf": 1, "/camera_pose": 1},
            delay=1.0,
            log=lambda line: None,
        )
        result = player.play()
        assert result.published["/tf"] == FRAMES and result.published["/tf_static"] == 1 and not result.skipped_topics
        clouds = {}
        for source, peer in peers.items():
            # Reliable image subscriptions: every frame arrives and is mapped.
            stats = peer.wait_stats(lambda s: counter(s, "mapped") == FRAMES, f"every frame mapped ({source})", timeout=30.0)
            assert stats["pipeline"]["skipped_total"] == 0 and stats["voxels"] > 100, stats
            clouds[source] = cloud_to_arrays(peer.wait_for("cloud", lambda m, n=stats["voxels"]: m.width == n))
        assert peers["tf"].stats()["pipeline"]["received"]["tf"] == FRAMES
        tf_map, pose_map = (sorted_by_xyz(c.xyz, c.label, c.confidence) for c in (clouds["tf"], clouds["pose"]))
        for a, b in zip(tf_map, pose_map):
            np.testing.assert_array_equal(a, b)
        for proc in procs.values():
            assert proc.stop() == 0, proc.output()
    finally:
        for peer in peers.values():
            peer.close()
        for proc in procs.values():
            proc.stop()
