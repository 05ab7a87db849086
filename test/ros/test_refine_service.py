"""``~/refine_semantics`` on a live mapping node (a subprocess, real DDS on localhost): the
node keeps keyframes of the frames it maps, SAFNet relabels the map from them in the
background and the map is republished; keyframes are saved with the map and go with it."""

import json
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from test_map_server import NodeProcess  # noqa: E402
from test_mapping_node import PERIOD, T0, H, Harness, W, camera_info_msg, color_msg, counter, depth_msg, image_msg, pose_stamped  # noqa: E402

from alster_mapping.data.procedural_room import ProceduralRoom  # noqa: E402
from alster_mapping.map.map_file import load_map  # noqa: E402
from alster_mapping.pipeline.keyframes import KeyframeStore, keyframe_file  # noqa: E402


def test_refine_semantics_on_a_live_node(tmp_path, ros_context, tiny_safnet_model):
    checkpoint, _, _ = tiny_safnet_model
    saved = tmp_path / "room.safetensors"
    args = ["-p", "mode:=label_fusion", "-p", "map.voxel_size:=0.08", "-p", "pose_source:=pose", "-p", "publish_period:=0.2",
            "-p", f"save_path:={saved}", "-p", f"refine.checkpoint:={checkpoint}", "-p", "refine.min_voxels:=20",
            "-p", "refine.chunks.points:=256", "-p", "refine.chunks.min_points:=10", "-p", "keyframes.min_new_fraction:=0.0"]
    room = ProceduralRoom(W, H)
    frames = room.frames(4)
    info = camera_info_msg(room.intrinsics, T0)
    proc = NodeProcess(tmp_path, args)
    peer = None
    try:
        peer = Harness(ros_context, proc)
        peer.wait_connected()
        refused = peer.call("refine_semantics")  # nothing mapped: no keyframes
        assert not refused.success and "no keyframes" in refused.message
        for i, f in enumerate(frames):
            ns = T0 + (i + 1) * PERIOD
            msgs = (color_msg(f, "rgb8", ns), depth_msg(f.depth, "32FC1", ns), image_msg(f.labels, "mono16", ns))
            pose = pose_stamped(f.T_world_camera, ns)
            stats = peer.wait_stats(
                lambda s, i=i: counter(s, "mapped") == i + 1, f"frame {i}",
                resend=lambda msgs=msgs, pose=pose: peer.publish_frame(*msgs, info=info, pose=pose),
            )
        assert stats["keyframes"]["keyframes"] == 4 and stats["keyframes"]["megabytes"] > 0
        assert stats["refine"]["state"] == "idle"
        clouds = len(peer.received["cloud"])

        response = peer.call("refine_semantics")
        assert response.success, response.message
        reply = json.loads(response.message)
        assert reply["job"] == 1 and reply["state"] == "running" and reply["voxels"] == stats["voxels"]
        done = peer.wait_stats(lambda s: s["refine"]["state"] in ("done", "failed"), "the refine job", timeout=120.0)["refine"]
        assert done["state"] == "done", done["message"]
        assert done["relabelled"] > 0 and done["keyframes"] >= 1 and done["chunks"] >= 1
        deadline = time.monotonic() + 10.0
        while len(peer.received["cloud"]) <= clouds:  # republished with the new labels
            assert time.monotonic() < deadline, "the map was not republished after the refinement"
            peer.spin(0.05)

        # ~/save_map writes the keyframes beside the map; ~/clear_map drops them with it.
        saving = peer.call("save_map")
        assert saving.success and "4 keyframes" in saving.message, saving.message
        assert len(load_map(saved)) == stats["voxels"]
        kept = KeyframeStore()
        assert kept.load(keyframe_file(saved)) == {} and len(kept) == 4
        assert np.array_equal(kept.keyframes()[0].color, frames[0].color)
        assert peer.call("clear_map").success
        assert peer.stats()["keyframes"]["keyframes"] == 0
        assert "no keyframes" in peer.call("refine_semantics").message
        # ~/load_map brings the map and its keyframes back.
        loading = peer.call("load_map")
        assert loading.success and "with 4 keyframes" in loading.message, loading.message
        assert "Traceback" not in proc.output()
        assert proc.stop() == 0, proc.output()
    finally:
        if peer is not None:
            peer.close()
        proc.stop()
