"""Integration tests of the map server: the real node in a subprocess, real DDS on localhost.

conftest.py confines discovery to this machine and picks a random ROS_DOMAIN_ID per
session; the node subprocesses inherit that environment. Each test starts its own node
(in its own namespace, except the first) and stops it again, also when the test fails.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

import torch  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from alster_mapping.core.config import MapConfig  # noqa: E402
from alster_mapping.map.map_file import load_map, save_map  # noqa: E402
from alster_mapping.map.voxel_map import SemanticVoxelMap  # noqa: E402
from alster_mapping.ros.cloud import cloud_to_arrays  # noqa: E402
from alster_mapping.ros.map_server import CLOUD_QOS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0  # seconds for the node to come up (imports torch and open3d)
CALL_TIMEOUT = 10.0


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def build_map(path: Path, n: int = 300, seed: int = 0) -> SemanticVoxelMap:
    """A small labelled map with n voxels, saved to ``path``; returns it."""
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(-20, 20, (2 * n, 3)), axis=0)[:n].astype(np.int32)
    m = SemanticVoxelMap(MapConfig(voxel_size=0.04, feature_dim=24))
    m.write(
        keys,
        label=torch.as_tensor(rng.integers(-1, m.label_space.num_classes, len(keys))),
        confidence=torch.as_tensor(rng.random(len(keys)), dtype=torch.float32),
        color=torch.as_tensor(rng.integers(0, 256, (len(keys), 3)), dtype=torch.uint8),
        count=torch.as_tensor(rng.integers(1, 50, len(keys))),
    )
    save_map(m, path)
    return m


class NodeProcess:
    """``python -m alster_mapping.ros.mapping_node --ros-args ...`` in a subprocess (output to files)."""

    def __init__(self, tmp_path: Path, ros_args: list[str], name: str = "node"):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
        env["PYTHONUNBUFFERED"] = "1"
        self.stdout_path = tmp_path / f"{name}.stdout"
        self.stderr_path = tmp_path / f"{name}.stderr"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alster_mapping.ros.mapping_node", "--ros-args", *ros_args],
            cwd=tmp_path,
            env=env,
            stdout=self._out,
            stderr=self._err,
        )

    def output(self) -> str:
        for handle in (self._out, self._err):
            if not handle.closed:
                handle.flush()
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (a clean rclpy shutdown), then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._out.close()
        self._err.close()
        return self.proc.returncode


@contextlib.contextmanager
def node_process(tmp_path: Path, ros_args: list[str], name: str = "node"):
    proc = NodeProcess(tmp_path, ros_args, name)
    try:
        yield proc
    finally:
        proc.stop()


class Client:
    """A client node in this process (its own rclpy context) talking to one map server."""

    def __init__(self, ctx: Context, prefix: str):
        self.node = Node("map_server_test_client", context=ctx)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        self.prefix = prefix  # e.g. "/mapping_node"
        self.clouds: list[PointCloud2] = []
        self.sub = self.node.create_subscription(
            PointCloud2, f"{prefix}/semantic_cloud", self.clouds.append, CLOUD_QOS
        )

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    def call(self, service: str, proc: NodeProcess) -> Trigger.Response:
        client = self.node.create_client(Trigger, f"{self.prefix}/{service}")
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not client.wait_for_service(timeout_sec=0.2):
                assert proc.proc.poll() is None, f"node exited ({proc.proc.returncode}):\n{proc.output()}"
                assert time.monotonic() < deadline, f"service {service} did not appear:\n{proc.output()}"
            future = client.call_async(Trigger.Request())
            self.executor.spin_until_future_complete(future, timeout_sec=CALL_TIMEOUT)
            assert future.done(), f"{service} did not answer within {CALL_TIMEOUT} s:\n{proc.output()}"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def stats(self, proc: NodeProcess) -> dict:
        response = self.call("get_stats", proc)
        assert response.success, response.message
        return json.loads(response.message)

    def wait_cloud(self, proc: NodeProcess, width: int, timeout: float = START_TIMEOUT) -> PointCloud2:
        """The first received cloud with ``width`` points (older ones are dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.clouds:
                msg = self.clouds.pop(0)
                if msg.width == width:
                    return msg
            assert proc.proc.poll() is None, f"node exited ({proc.proc.returncode}):\n{proc.output()}"
            self.executor.spin_once(timeout_sec=0.1)
        raise AssertionError(f"no cloud with {width} points within {timeout} s:\n{proc.output()}")


@pytest.fixture
def make_client(ros_context):
    clients = []

    def make(prefix: str) -> Client:
        client = Client(ros_context, prefix)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()


def sorted_by_xyz(xyz: np.ndarray, *columns: np.ndarray) -> list[np.ndarray]:
    order = np.lexsort((xyz[:, 2], xyz[:, 1], xyz[:, 0]))
    return [np.asarray(xyz)[order]] + [np.asarray(c)[order] for c in columns]


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------


def test_serves_publishes_saves_clears_and_loads(tmp_path, make_client):
    map_path = tmp_path / "small.safetensors"
    expected = build_map(map_path).to_arrays()
    save_path = tmp_path / "out" / "saved.safetensors"
    # The parameters disagree with the file's geometry: the file wins, with a warning.
    args = ["-p", f"map_file:={map_path}", "-p", f"save_path:={save_path}", "-p", "publish_period:=0.1"]
    args += ["-p", "map.voxel_size:=0.05", "-p", "label_space:=nyu40"]
    with node_process(tmp_path, args) as proc:
        client = make_client("/mapping_node")

        # The cloud equals the map (transient local: received although we subscribed late).
        cloud = cloud_to_arrays(client.wait_cloud(proc, len(expected)))
        got = sorted_by_xyz(cloud.xyz, cloud.label, cloud.confidence, cloud.rgb)
        want = sorted_by_xyz(expected.xyz, expected.label, expected.confidence, expected.label_color)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)

        stats = client.stats(proc)
        assert stats["voxels"] == len(expected)
        assert stats["voxel_size"] == pytest.approx(0.04)  # the file's, not the parameter's 0.05
        assert stats["label_space"] == "scannet20" and stats["feature_dim"] == 24
        assert stats["blocks"] > 0 and stats["bytes"] > 0
        assert sum(stats["labels"].values()) == len(expected)
        assert "the file's values are used" in proc.output()

        # save_map writes a loadable copy.
        response = client.call("save_map", proc)
        assert response.success, response.message
        assert str(save_path) in response.message and f"{len(expected)} voxels" in response.message
        saved = load_map(save_path).to_arrays()
        got = sorted_by_xyz(saved.xyz, saved.label, saved.count)
        for g, w in zip(got, sorted_by_xyz(expected.xyz, expected.label, expected.count)):
            np.testing.assert_array_equal(g, w)

        # clear_map empties the map, and the empty map is published.
        response = client.call("clear_map", proc)
        assert response.success and f"{len(expected)}" in response.message
        assert client.stats(proc)["voxels"] == 0
        client.wait_cloud(proc, 0)

        # load_map (map_file) brings it back.
        response = client.call("load_map", proc)
        assert response.success, response.message
        assert client.stats(proc)["voxels"] == len(expected)
        client.wait_cloud(proc, len(expected))
        assert proc.proc.poll() is None


def test_corrupt_map_file_starts_empty_and_fails_safely(tmp_path, make_client):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"this is not a map file" * 10)
    (tmp_path / "a_file").write_text("not a directory")
    unwritable = tmp_path / "a_file" / "map.safetensors"
    args = ["-r", "__ns:=/corrupt", "-p", f"map_file:={corrupt}", "-p", f"save_path:={unwritable}"]
    with node_process(tmp_path, args) as proc:
        client = make_client("/corrupt/mapping_node")
        assert client.stats(proc)["voxels"] == 0  # up, with an empty map
        client.wait_cloud(proc, 0)
        assert "starting with an empty map" in proc.output()

        response = client.call("load_map", proc)
        assert not response.success
        assert str(corrupt) in response.message and "corrupt" in response.message

        response = client.call("save_map", proc)
        assert not response.success and str(unwritable) in response.message
        assert not unwritable.exists()
        assert client.stats(proc)["voxels"] == 0
        assert proc.proc.poll() is None


def test_params_file_is_honoured_and_saved_on_shutdown(tmp_path, make_client):
    params = (REPO / "config" / "mapping.yaml").read_text()
    assert "      voxel_size: 0.04 " in params
    params = params.replace("      voxel_size: 0.04 ", "      voxel_size: 0.05 ")
    params = params.replace("label_space: scannet20 ", "label_space: nyu40 ")
    params = params.replace("save_on_shutdown: false", "save_on_shutdown: true")
    params = params.replace("save_path: alster_map.safetensors", "save_path: shutdown.safetensors")
    params_file = tmp_path / "mapping.yaml"
    params_file.write_text(params)
    with node_process(tmp_path, ["-r", "__ns:=/params", "--params-file", str(params_file)]) as proc:
        client = make_client("/params/mapping_node")
        stats = client.stats(proc)
        assert stats["voxel_size"] == pytest.approx(0.05)
        assert stats["label_space"] == "nyu40"
        assert stats["voxels"] == 0
        assert proc.stop() == 0, proc.output()
    saved = load_map(tmp_path / "shutdown.safetensors")  # relative to the node's cwd
    assert saved.voxel_size == pytest.approx(0.05) and saved.label_space.name == "nyu40"


def test_invalid_parameter_exits_with_code_1(tmp_path):
    proc = NodeProcess(tmp_path, ["-p", "map.voxel_size:=-1.0", "-p", "color_by:=sepia"])
    try:
        returncode = proc.proc.wait(timeout=START_TIMEOUT)
    finally:
        proc.stop()
    output = proc.stderr_path.read_text()
    assert returncode == 1, proc.output()
    assert "map.voxel_size = -1.0: below the minimum 0.002" in output
    assert "color_by = 'sepia': not one of ['label', 'rgb']" in output
    assert "Traceback" not in output


def test_runtime_parameter_changes(ros_context, tmp_path):
    """In-process: geometry is fixed while running; other parameters apply (validated)."""
    from rclpy.parameter import Parameter

    from alster_mapping.ros.map_server_node import MapServerNode

    node = MapServerNode(
        context=ros_context,
        namespace="/inprocess",
        parameter_overrides=[Parameter("map_file", value=str(tmp_path / "absent.safetensors"))],
    )
    try:
        assert len(node.map) == 0  # an absent map file: logged, empty map
        (result,) = node.set_parameters([Parameter("map.voxel_size", value=0.08)])
        assert not result.successful and "restart" in result.reason
        (result,) = node.set_parameters([Parameter("color_by", value="sepia")])
        assert not result.successful and "color_by" in result.reason
        assert node.parameters.server_config.color_by == "label"

        version = node.map_server.version
        (result,) = node.set_parameters([Parameter("color_by", value="rgb")])
        assert result.successful and node.parameters.server_config.color_by == "rgb"
        assert node.map_server.version > version  # republished with the new colours
        (result,) = node.set_parameters([Parameter("publish_period", value=0.5)])
        assert result.successful and node.map_server.publish_timer.timer_period_ns == 500_000_000
        (result,) = node.set_parameters([Parameter("map.max_bytes", value=10**6)])
        assert result.successful and node.map.config.max_bytes == 10**6
        (result,) = node.set_parameters([Parameter("label_fusion.max_range", value=5.0)])
        assert result.successful and node.parameters.config.label_fusion.max_range == 5.0
        assert node.stats()["voxels"] == 0
    finally:
        node.destroy_node()
