"""kill -9 during ``~/save_map``, repeatedly: the previous map always survives, and the temporary
files the killed save left behind are gone once the node has started again."""

import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from test_map_server import START_TIMEOUT, NodeProcess  # noqa: E402

from alster_mapping.core.config import MapConfig  # noqa: E402
from alster_mapping.map.map_file import load_map, save_map  # noqa: E402
from alster_mapping.map.voxel_map import SemanticVoxelMap  # noqa: E402

KILLS = 3
VOXELS = 600_000  # about 54 MB on disk: its write lasts long enough to be interrupted


def temporaries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith(".map.safetensors.tmp-"))


def build_map(path: Path) -> int:
    rng = np.random.default_rng(0)
    side = int(np.ceil(VOXELS ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:VOXELS].astype(np.int32)
    m = SemanticVoxelMap(MapConfig(voxel_size=0.05, feature_dim=40, initial_capacity=VOXELS))
    m.write(grid, feature=torch.from_numpy(rng.standard_normal((VOXELS, 40), dtype=np.float32)), label=torch.full((VOXELS,), 3))
    save_map(m, path)
    return len(m)


def test_kill_9_during_save_keeps_the_old_map_and_restarts_clean(tmp_path, ros_context):
    path = tmp_path / "map.safetensors"
    voxels = build_map(path)
    args = ["-r", "__ns:=/killed", "-p", "mode:=label_fusion", "-p", "pose_source:=pose", "-p", "map.voxel_size:=0.05",
            "-p", "map.feature_dim:=40", "-p", f"map_file:={path}", "-p", f"save_path:={path}"]
    client_node = Node("kill_test_client", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(client_node)
    client = client_node.create_client(Trigger, "/killed/mapping_node/save_map")
    left_behind = 0
    try:
        for attempt in range(KILLS + 1):
            proc = NodeProcess(tmp_path, args, name=f"node{attempt}")
            try:
                # Ready when it says so (the killed node's service may linger in DDS discovery for a while).
                deadline = time.monotonic() + START_TIMEOUT
                while "mode 'label_fusion': mapping" not in proc.output():
                    assert proc.proc.poll() is None, proc.output()
                    assert time.monotonic() < deadline, proc.output()
                    time.sleep(0.1)
                # Start-up removed what the previous kill left; the map it loaded is the old one.
                assert temporaries(tmp_path) == [], proc.output()
                assert f"loaded {voxels} voxels" in proc.output()
                assert client.wait_for_service(timeout_sec=START_TIMEOUT)
                if attempt == KILLS:
                    break
                # Kill as soon as the save has started writing (its temporary directory exists). A
                # request sent while DDS is still matching the new server is lost: ask again.
                deadline = time.monotonic() + START_TIMEOUT
                next_request = time.monotonic()
                while not temporaries(tmp_path):
                    if time.monotonic() >= next_request:
                        client.call_async(Trigger.Request())
                        next_request = time.monotonic() + 3.0
                    executor.spin_once(timeout_sec=0.001)
                    assert time.monotonic() < deadline, f"the save never started:\n{proc.output()}"
                proc.proc.send_signal(signal.SIGKILL)
                proc.proc.wait(timeout=10)
                left_behind += bool(temporaries(tmp_path))
            finally:
                proc.stop()
            # Whatever the kill interrupted, the map file is a complete map.
            assert len(load_map(path)) == voxels
    finally:
        client_node.destroy_client(client)
        executor.shutdown()
        client_node.destroy_node()
    assert left_behind >= 1, "no kill landed during a write: the test proved nothing"
