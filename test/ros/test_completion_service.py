"""``~/complete_scene`` on a live mapping node (its own process, real DDS): refused without a
keyframe, the completion of the newest keyframe published as a cloud and a label image, a
checkpoint of another model failing the job while the node maps on."""

import json
import time

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from test_map_server import NodeProcess  # noqa: E402
from test_mapping_node import PERIOD, T0, Harness, camera_info_msg, color_msg, counter, depth_msg, image_msg, params_file, pose_stamped  # noqa: E402

from alster_mapping.data.completion_volumes import ssc_label_space  # noqa: E402
from alster_mapping.data.sequences import SyntheticSequence  # noqa: E402
from alster_mapping.nets.checkpoint import save_checkpoint  # noqa: E402
from alster_mapping.nets.imenet import ImenetConfig, ImenetModel  # noqa: E402
from alster_mapping.nets.shipped import shipped_alster_checkpoint  # noqa: E402
from alster_mapping.ros.cloud import cloud_to_arrays  # noqa: E402
from alster_mapping.ros.map_server import CLOUD_QOS  # noqa: E402

W, H = 96, 72


def test_complete_scene_on_a_live_node(tmp_path, ros_context):
    torch.manual_seed(0)
    checkpoint = tmp_path / "imenet_tiny.safetensors"
    model = ImenetModel(ImenetConfig.variant("E", pretrained=False, width_3d=8, image_width=80, iterations=1))
    save_checkpoint(model, checkpoint, ssc_label_space(), {"test": "untrained"}, {})
    params = params_file(tmp_path, mode="label_fusion", voxel_size="0.08", pose_source="pose", publish_period="0.2")
    world = SyntheticSequence(2, 3, W, H)
    proc = NodeProcess(tmp_path, ["--params-file", str(params), "-p", f"completion.checkpoint:={checkpoint}"])
    peer = None
    try:
        peer = Harness(ros_context, proc)
        received = {"status": [], "cloud": [], "image": []}
        topics = (("status", String, "completion_status"), ("cloud", PointCloud2, "completion"), ("image", Image, "completion_label_image"))
        for key, kind, topic in topics:
            peer.node.create_subscription(kind, f"{peer.prefix}/{topic}", received[key].append, CLOUD_QOS)

        def status() -> dict:
            return json.loads(received["status"][-1].data) if received["status"] else {}

        def wait(condition, what: str, timeout: float = 60.0) -> None:
            deadline = time.monotonic() + timeout
            while not condition():
                peer.alive()
                assert time.monotonic() < deadline, f"timed out waiting for {what}; status {status()}\n{proc.output()}"
                peer.spin(0.05)

        response = peer.call("complete_scene")
        assert not response.success and "no keyframe yet" in response.message

        peer.wait_connected()
        info = camera_info_msg(world.frame(0).intrinsics, T0)
        for i in range(3):
            f, ns = world.frame(i), T0 + i * PERIOD
            msgs = (color_msg(f, "rgb8", ns), depth_msg(f.depth, "32FC1", ns), image_msg(f.labels, "mono16", ns))
            pose = pose_stamped(f.T_world_camera, ns)

            def send(m=msgs, p=pose):
                peer.publish_frame(*m, info=info, pose=p)

            peer.wait_stats(lambda s, i=i: counter(s, "mapped") == i + 1, f"frame {i}", resend=send)
        assert peer.stats()["keyframes"]["keyframes"] >= 1

        response = peer.call("complete_scene")
        assert response.success, response.message
        wait(lambda: status().get("state") == "done" and received["cloud"] and received["image"], "the completion")
        done = status()
        assert done["observed"] > 0 and done["observed"] + done["predicted"] == received["cloud"][-1].width
        cloud = received["cloud"][-1]
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "label", "observed", "confidence"] and cloud.header.frame_id == "map"
        points = cloud_to_arrays(cloud).points
        assert points["label"].min() >= 1 and points["label"].max() <= 11 and int(points["observed"].sum()) == done["observed"]
        image = received["image"][-1]
        assert (image.encoding, image.width, image.height) == ("mono8", 80, 60)
        labels = np.frombuffer(bytes(image.data), np.uint8)
        assert labels.min() >= 1 and labels.max() <= 11

        # A checkpoint of another kind of model fails the job; the node maps on and the map is untouched.
        client = peer.node.create_client(SetParameters, f"{peer.prefix}/set_parameters")
        assert client.wait_for_service(timeout_sec=10)
        other = Parameter("completion.checkpoint", value=str(shipped_alster_checkpoint())).to_parameter_msg()
        future = client.call_async(SetParameters.Request(parameters=[other]))
        peer.executor.spin_until_future_complete(future, timeout_sec=10)
        assert future.result().results[0].successful
        voxels = peer.stats()["voxels"]
        assert peer.call("complete_scene").success
        wait(lambda: status().get("state") == "failed", "the failed job")
        assert "scene_completion" in status()["message"]
        assert peer.stats()["voxels"] == voxels
        assert proc.stop() == 0, proc.output()
    finally:
        if peer is not None:
            peer.close()
        proc.stop()
