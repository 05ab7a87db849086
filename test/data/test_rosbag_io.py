import dataclasses

import numpy as np
import pytest
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader, Writer

from alster_mapping.core.geometry import interpolate_pose, invert_se3
from alster_mapping.data.procedural_room import ProceduralRoom
from alster_mapping.data.rosbag_io import (
    COLOR_TOPIC,
    DEFAULT_T_BASE_CAMERA,
    DEPTH_TOPIC,
    IMAGE_TYPE,
    INFO_TOPIC,
    INFO_TYPE,
    TF_STATIC_TOPIC,
    TF_TYPE,
    BagError,
    BagSequence,
    _MessageFactory,
    _typestore,
    write_bag,
)

MS = 1_000_000


@pytest.fixture(scope="module")
def room():
    return ProceduralRoom(64, 48)


@pytest.fixture(scope="module")
def frames(room):
    return room.frames(3)


def assert_frames_match(written, read, depth_tol):
    assert len(read) == len(written)
    for a, b in zip(written, read):
        assert b.stamp_ns == a.stamp_ns and b.frame_id == "camera_color_optical_frame"
        assert b.intrinsics == a.intrinsics
        np.testing.assert_allclose(b.T_world_camera, a.T_world_camera, atol=1e-6)
        np.testing.assert_array_equal(b.color, a.color)
        assert b.depth.dtype == np.float32 and np.abs(b.depth - a.depth).max() <= depth_tol


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_round_trip(tmp_path, frames, storage):
    path = tmp_path / "bag"
    assert write_bag(path, frames, storage=storage, labels_topic="/camera/labels") == 3
    seq = BagSequence(path, labels_topic="/camera/labels")
    read = list(seq)
    assert not seq.skipped, seq.problems
    assert_frames_match(frames, read, depth_tol=0.0005 + 1e-6)
    for a, b in zip(frames, read):
        assert b.labels.dtype == np.uint16 and np.array_equal(b.labels, a.labels)
    assert len(list(seq)) == 3  # iterating again reads the bag again
    with Reader(path) as reader:
        static = [c for c in reader.connections if c.topic == TF_STATIC_TOPIC]
        assert static[0].ext.offered_qos_profiles[0].durability == QosDurability.TRANSIENT_LOCAL
    # Looking up the base frame instead of the optical frame undoes the static extrinsic.
    base = list(BagSequence(path, camera_frame="base_link"))
    np.testing.assert_allclose(base[1].T_world_camera, frames[1].T_world_camera @ invert_se3(DEFAULT_T_BASE_CAMERA), atol=1e-6)


def test_float_depth(tmp_path, frames):
    f = frames[0]
    depth = f.depth.copy()
    depth[0, :3] = [np.nan, np.inf, 0.0]
    special = dataclasses.replace(f, depth=depth)
    write_bag(tmp_path / "bag", [special] + frames[1:], depth_encoding="32FC1")
    read = list(BagSequence(tmp_path / "bag"))
    assert np.isnan(read[0].depth[0, 0]) and np.isinf(read[0].depth[0, 1]) and read[0].depth[0, 2] == 0
    np.testing.assert_array_equal(read[0].depth[1:], depth[1:])
    assert_frames_match(frames[1:], read[1:], depth_tol=0.0)


def test_interpolates_between_tf_samples(tmp_path, room, frames):
    # Frames at 100 and 200 ms; the pose is only known at 50, 150 and 250 ms.
    shifted = [dataclasses.replace(f, stamp_ns=(i + 1) * 100 * MS) for i, f in enumerate(frames[:2])]
    poses = [room.pose(i, 5) for i in range(3)]
    write_bag(tmp_path / "bag", shifted, tf_samples=[(50 * MS, poses[0]), (150 * MS, poses[1]), (250 * MS, poses[2])])
    seq = BagSequence(tmp_path / "bag")
    read = list(seq)
    assert len(read) == 2 and not seq.skipped
    E = DEFAULT_T_BASE_CAMERA
    for k, frame in enumerate(read):
        bases = [poses[k] @ invert_se3(E), poses[k + 1] @ invert_se3(E)]
        np.testing.assert_allclose(frame.T_world_camera, interpolate_pose(*bases, 0.5) @ E, atol=1e-6)


def test_frame_before_first_tf_is_a_counted_skip(tmp_path, room, frames):
    shifted = [dataclasses.replace(f, stamp_ns=(i + 1) * 100 * MS) for i, f in enumerate(frames[:2])]
    write_bag(tmp_path / "bag", shifted, tf_samples=[(150 * MS, room.pose(0, 2)), (250 * MS, room.pose(1, 2))])
    seq = BagSequence(tmp_path / "bag")
    read = list(seq)
    assert [f.stamp_ns for f in read] == [200 * MS]
    assert seq.skipped == {"no pose": 1}
    assert "50.000 ms before the first" in seq.problems["no pose"]
    tolerant = BagSequence(tmp_path / "bag", tf_tolerance_ns=60 * MS)
    assert len(list(tolerant)) == 2


def test_bad_messages_are_counted_skips(tmp_path, frames):
    """Hand-built bag: a camera_info of the wrong size, an unknown encoding, a lone depth image."""
    ts = _typestore()
    make = _MessageFactory(ts)
    f = frames[0]
    small = dataclasses.replace(f.intrinsics, width=32, height=24)
    path = tmp_path / "bag"
    with Writer(path, version=9) as writer:
        conns = {
            topic: writer.add_connection(topic, msgtype, typestore=ts)
            for topic, msgtype in [(COLOR_TOPIC, IMAGE_TYPE), (DEPTH_TOPIC, IMAGE_TYPE), (INFO_TOPIC, INFO_TYPE), ("/tf", TF_TYPE)]
        }

        def put(topic, stamp, msg):
            writer.write(conns[topic], stamp, ts.serialize_cdr(msg, msg.__msgtype__))

        depth16 = np.rint(f.depth * 1000).astype(np.uint16)
        put("/tf", 0, make.tf("map", "cam", f.T_world_camera, 0))
        put("/tf", 900 * MS, make.tf("map", "cam", f.T_world_camera, 900 * MS))
        # 100 ms: no camera_info yet.
        put(COLOR_TOPIC, 100 * MS, make.image(f.color, "rgb8", 100 * MS, "cam"))
        put(DEPTH_TOPIC, 100 * MS, make.image(depth16, "16UC1", 100 * MS, "cam"))
        # 200 ms: camera_info says 32x24.
        put(INFO_TOPIC, 200 * MS, make.camera_info(small, 200 * MS, "cam"))
        put(COLOR_TOPIC, 200 * MS, make.image(f.color, "rgb8", 200 * MS, "cam"))
        put(DEPTH_TOPIC, 200 * MS, make.image(depth16, "16UC1", 200 * MS, "cam"))
        # 300 ms: the right camera_info, but a colour image labelled as depth.
        put(INFO_TOPIC, 300 * MS, make.camera_info(f.intrinsics, 300 * MS, "cam"))
        put(COLOR_TOPIC, 300 * MS, make.image(depth16, "16UC1", 300 * MS, "cam"))
        put(DEPTH_TOPIC, 300 * MS, make.image(depth16, "16UC1", 300 * MS, "cam"))
        # 400 ms: fine; 500 ms: depth without colour; 600 ms: a repeated colour stamp.
        for stamp in (400 * MS, 600 * MS):
            put(COLOR_TOPIC, stamp, make.image(f.color, "rgb8", stamp, "cam"))
            put(DEPTH_TOPIC, stamp, make.image(depth16, "16UC1", stamp, "cam"))
        put(DEPTH_TOPIC, 500 * MS, make.image(depth16, "16UC1", 500 * MS, "cam"))
        put(COLOR_TOPIC, 601 * MS, make.image(f.color, "rgb8", 600 * MS, "cam"))
    seq = BagSequence(path)
    read = list(seq)
    assert [r.stamp_ns for r in read] == [400 * MS, 600 * MS]
    assert seq.skipped == {
        "no camera_info": 1,
        "size mismatch": 1,
        "bad encoding": 1,
        "unsynchronised message": 1,
        "duplicate message": 1,
    }
    assert "32x24" in seq.problems["size mismatch"] and "16UC1" in seq.problems["bad encoding"]


def test_unreadable_bags_raise_bag_error(tmp_path, frames):
    with pytest.raises(BagError, match="nowhere"):
        BagSequence(tmp_path / "nowhere")
    path = tmp_path / "bag"
    write_bag(path, frames[:1])
    with pytest.raises(BagError, match="no topic '/other'"):
        BagSequence(path, color_topic="/other")
    with pytest.raises(BagError, match="exists already"):
        write_bag(path, frames[:1])
    (path / "bag.db3").write_bytes(b"garbage" * 100)
    with pytest.raises(BagError, match=str(path)):
        BagSequence(path)
    mcap = tmp_path / "mcap"
    write_bag(mcap, frames[:1], storage="mcap")
    data = (mcap / "mcap.mcap").read_bytes()
    (mcap / "mcap.mcap").write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match="mcap"):
        list(BagSequence(mcap))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="empty"):
        BagSequence(tmp_path / "empty")


@pytest.mark.ros
def test_rclpy_deserialises_written_image(tmp_path, frames):
    pytest.importorskip("rclpy")
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    path = tmp_path / "bag"
    write_bag(path, frames[:1])
    with Reader(path) as reader:
        conn = next(c for c in reader.connections if c.topic == COLOR_TOPIC)
        _, stamp, raw = next(reader.messages(connections=[conn]))
    msg = deserialize_message(bytes(raw), Image)
    assert (msg.height, msg.width, msg.encoding, msg.step) == (48, 64, "rgb8", 64 * 3)
    assert msg.header.frame_id == "camera_color_optical_frame" and msg.header.stamp.sec == 0
    assert np.array_equal(np.frombuffer(bytes(msg.data), np.uint8).reshape(48, 64, 3), frames[0].color)
