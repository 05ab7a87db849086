"""``~/segment_instances`` (alster_mapping.ros.instance_service): a node serving a map, a peer
calling the service and listening to its status, instance cloud and object markers over DDS."""

import json
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from alster_mapping.map.map_file import load_map  # noqa: E402
from alster_mapping.ros.cloud import cloud_to_arrays  # noqa: E402
from alster_mapping.ros.map_server import CLOUD_QOS  # noqa: E402
from alster_mapping.ros.map_server_node import MapServerNode  # noqa: E402
from alster_mapping.ros.vision_outputs import LabelInfo  # noqa: E402

if LabelInfo is not None:  # vision_msgs built by make setup (interfaces/)
    from vision_msgs.msg import Detection3DArray

TIMEOUT = 60.0


class Peer:
    """The node under test and a peer node, spun by one executor in the test's thread."""

    def __init__(self, ctx, voxel_map, checkpoint, name: str, **parameters):
        values = {"instances.checkpoint": str(checkpoint), "instances.segmentation.points": 256, "instances.min_voxels": 50, **parameters}
        overrides = [Parameter(k, value=v) for k, v in values.items()]
        self.node = MapServerNode(name, voxel_map=voxel_map, context=ctx, parameter_overrides=overrides)
        self.peer = Node(f"{name}_peer", context=ctx)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self.received = {"status": [], "cloud": [], "objects": [], "detections": []}
        topics = [("status", String, "instance_status"), ("cloud", PointCloud2, "instances"), ("objects", MarkerArray, "objects")]
        if LabelInfo is not None:
            topics.append(("detections", Detection3DArray, "detections"))
        for key, kind, topic in topics:
            self.peer.create_subscription(kind, f"/{name}/{topic}", self.received[key].append, CLOUD_QOS)
        self.client = self.peer.create_client(Trigger, f"/{name}/segment_instances")

    def close(self):
        self.node.shutdown()
        self.executor.shutdown()
        self.peer.destroy_node()
        self.node.destroy_node()

    def call(self) -> Trigger.Response:
        assert self.client.wait_for_service(timeout_sec=10.0)
        future = self.client.call_async(Trigger.Request())
        self.executor.spin_until_future_complete(future, timeout_sec=10.0)
        assert future.done()
        return future.result()

    def status(self) -> dict:
        return json.loads(self.received["status"][-1].data) if self.received["status"] else {}

    def spin_until(self, condition, what: str):
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; status {self.status()}"
            self.executor.spin_once(timeout_sec=0.05)


@pytest.fixture
def served(ros_context, tiny_instance_model, request):
    checkpoint, map_file, _ = tiny_instance_model
    peers = []

    def make(**parameters):
        peer = Peer(ros_context, load_map(map_file), checkpoint, f"instances_{request.node.name[5:25]}_{len(peers)}", **parameters)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


def test_the_service_replies_at_once_and_publishes_status_cloud_and_objects(served):
    p = served()
    p.spin_until(lambda: p.status().get("state") == "idle", "the idle status (latched)")
    response = p.call()
    assert response.success, response.message
    reply = json.loads(response.message)
    assert reply["job"] == 1 and reply["state"] == "running" and reply["voxels"] == len(p.node.map)
    p.spin_until(lambda: p.status().get("state") == "done" and p.received["cloud"] and p.received["objects"], "the job's results")
    status = p.status()
    assert status["progress"] == 1.0 and status["objects"] and status["job"] == 1
    cloud = p.received["cloud"][-1]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "label", "instance", "confidence"]
    arrays = cloud_to_arrays(cloud)
    instance = arrays.points["instance"]
    assert len(instance) == len(p.node.map)
    assert sorted(set(instance[instance >= 0].tolist())) == sorted(o["id"] for o in status["objects"])
    markers = p.received["objects"][-1].markers
    assert markers[0].action == Marker.DELETEALL
    boxes = [m for m in markers if m.ns == "boxes"]
    texts = [m for m in markers if m.ns == "labels"]
    assert len(boxes) == len(texts) == len(status["objects"])
    assert texts[0].text.startswith(status["objects"][0]["class"])
    if LabelInfo is not None:  # the same objects as vision_msgs/Detection3DArray
        p.spin_until(lambda: p.received["detections"], "~/detections")
        detections = p.received["detections"][-1].detections
        space = p.node.map.label_space
        assert [d.id for d in detections] == [str(o["id"]) for o in status["objects"]]
        for d, o in zip(detections, status["objects"]):
            assert d.results[0].hypothesis.class_id == str(space.ids[o["class_index"]])
            assert d.results[0].hypothesis.score == pytest.approx(o["score"])
            assert [d.bbox.size.x, d.bbox.size.y, d.bbox.size.z] == pytest.approx(o["extent"])
    # The map's instance layer holds the result; get_stats reports the job.
    layer = p.node.map.to_arrays().instance
    assert sorted(set(layer[layer >= 0].tolist())) == sorted(o["id"] for o in status["objects"])
    assert p.node.stats()["instances"]["state"] == "done"


def test_busy_and_a_map_cleared_during_the_job(served, held_instance_jobs):
    release = held_instance_jobs
    p = served()
    assert p.call().success
    busy = p.call()
    assert not busy.success and busy.message.startswith("busy: job 1 is running")
    p.node.map_server._on_clear_map(Trigger.Request(), Trigger.Response())
    release.set()
    p.spin_until(lambda: p.status().get("state") == "dropped", "the dropped status")
    assert "cleared or replaced" in p.status()["message"]
    assert not p.received["cloud"] and len(p.node.map) == 0
    refused = p.call()  # the cleared map is empty now
    assert not refused.success and "has 0 voxels" in refused.message
    assert p.node.stats()["failures"]["segment_instances.failed"] == 2


def test_a_checkpoint_of_another_model_fails_the_job_not_the_node(served):
    p = served(**{"instances.model": "ban"})
    before = p.node.map.to_arrays()
    assert p.call().success
    p.spin_until(lambda: p.status().get("state") == "failed", "the failed status")
    assert "holds a 'asis' model" in p.status()["message"]
    after = p.node.map.to_arrays()
    assert np.array_equal(before.label_index, after.label_index) and (after.instance == -1).all()


def test_the_region_needs_a_camera_pose(served):
    p = served(**{"instances.region_radius": 1.5})
    response = p.call()
    assert not response.success and "no camera pose" in response.message
