"""What the ROS benchmarks share: the mapping node in a subprocess and a camera that feeds it.

Not a benchmark itself (``make bench`` runs ``bench_*.py``); imported by ``bench_ros.py``
and ``bench_load.py``, which set up the DDS environment before importing rclpy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def walk(i: int, n: int) -> int:
    """Index of frame i when n frames are walked back and forth (0, 1, ..., n-1, n-2, ..., 1, 0, 1, ...)."""
    period = 2 * n - 2 if n > 1 else 1
    j = i % period
    return j if j < n else period - j


def depth_mm(depth: np.ndarray) -> np.ndarray:
    """(H, W) float32 metres -> uint16 millimetres as a 16UC1 depth image carries them (0 = no return)."""
    return np.round(np.nan_to_num(depth, posinf=0.0) * 1000).clip(0, 65535).astype(np.uint16)


class NodeProcess:
    """``python -m alster_mapping.ros.mapping_node`` with ``root``'s params file and ``-p`` overrides (output to a file).

    root: the checkout the node runs from (another commit for a before/after comparison).
    """

    def __init__(self, workdir: Path, params: list[str], root: Path = ROOT, name: str = "mapping_node"):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [env.get("PYTHONPATH")] if p])
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        args = ["--ros-args", "--params-file", str(root / "config" / "mapping.yaml")]
        for p in params:
            args += ["-p", p]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alster_mapping.ros.mapping_node", *args], cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def rss(self) -> int:
        """Resident memory of the node [bytes]."""
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the node exited ({self.proc.returncode}):\n{self.output()}")

    def stop(self) -> int:
        """SIGTERM (a clean shutdown), SIGKILL after 20 s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._log.close()
        return self.proc.returncode


def restamped(raw: bytes, ns: int) -> bytes:
    """Serialized message ``raw`` (little-endian CDR starting with a std_msgs/Header) stamped ``ns`` [ns]."""
    out = bytearray(raw)
    out[4:12] = int(ns // 1_000_000_000).to_bytes(4, "little", signed=True) + int(ns % 1_000_000_000).to_bytes(4, "little")
    return bytes(out)


class Camera:
    """A camera driver and a localisation in one: publishes frames, times the node's ``~/semantic_cloud_update``.

    Messages are serialized once; ``publish`` only rewrites their stamps, so this process
    costs the node as little CPU as a C++ driver would. Colour (rgb8), depth (16UC1) and
    CameraInfo go out with the sensor-data profile (best effort), the PoseStamped reliably.
    poses: ``pose`` (a PoseStamped on /camera_pose) or ``tf`` (odom -> base_link on /tf at
    each stamp; map -> odom and base_link -> camera_optical once on /tf_static, latched), as
    a robot's localisation and robot_state_publisher would. Its own rclpy context, spun in a thread.
    """

    T_BASE_CAMERA = np.array([[0.0, 0.0, 1.0, 0.1], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.3], [0.0, 0.0, 0.0, 1.0]])
    """base_link -> camera_optical of ``poses='tf'``: 10 cm ahead, 30 cm up, optical axes."""

    def __init__(self, frames, intrinsics, name: str = "bench_camera", poses: str = "pose"):
        import array

        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data
        from rclpy.serialization import serialize_message
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from alster_mapping.core.geometry import quaternion_from_pose
        from alster_mapping.core.image_codec import array_to_image_fields, camera_info_fields

        self.rclpy = rclpy
        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.node = Node(name, context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        n = self.node
        self.poses = poses
        self.pubs = {
            "info": n.create_publisher(CameraInfo, "/camera/color/camera_info", qos_profile_sensor_data),
            "color": n.create_publisher(Image, "/camera/color/image_raw", qos_profile_sensor_data),
            "depth": n.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", qos_profile_sensor_data),
        }
        if poses == "tf":
            from rclpy.qos import DurabilityPolicy, QoSProfile
            from tf2_msgs.msg import TFMessage

            self.TFMessage = TFMessage
            self.pubs["tf"] = n.create_publisher(TFMessage, "/tf", 100)
            latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.tf_static = n.create_publisher(TFMessage, "/tf_static", latched)
            static = [self._transform("map", "odom", np.eye(4), 0), self._transform("base_link", "camera_optical", self.T_BASE_CAMERA, 0)]
            self.tf_static.publish(TFMessage(transforms=static))
        else:
            self.pubs["pose"] = n.create_publisher(PoseStamped, "/camera_pose", 10)
        self.lock = threading.Lock()
        self.latency: dict[int, float] = {}  # stamp [ns] -> seconds from stamp to the update's receipt
        n.create_subscription(PointCloud2, "/mapping_node/semantic_cloud_update", self._on_update, 10)

        def image(a, encoding):
            f = array_to_image_fields(a, encoding)
            msg = Image(height=f["height"], width=f["width"], encoding=encoding, is_bigendian=f["is_bigendian"], step=f["step"])
            msg.data = array.array("B", f["data"].tobytes())
            msg.header.frame_id = "camera_optical"
            return serialize_message(msg)

        f = camera_info_fields(intrinsics)
        info = CameraInfo(height=f["height"], width=f["width"], distortion_model=f["distortion_model"])
        info.d, info.k, info.r, info.p = f["d"].tolist(), f["k"].tolist(), f["r"].tolist(), f["p"].tolist()
        info.header.frame_id = "camera_optical"
        self.info = serialize_message(info)
        self.messages = []
        for frame in frames:
            pose = PoseStamped()
            pose.header.frame_id = "map"
            t, q = quaternion_from_pose(frame.T_world_camera)
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in t)
            o = pose.pose.orientation
            o.x, o.y, o.z, o.w = (float(v) for v in q)
            pose_message = serialize_message(pose)
            if poses == "tf":  # odom -> base_link = T_world_camera @ inv(T_base_camera), sent as a TFMessage per stamp
                pose_message = frame.T_world_camera @ np.linalg.inv(self.T_BASE_CAMERA)
            self.messages.append((image(frame.color, "rgb8"), image(depth_mm(frame.depth), "16UC1"), pose_message))
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _transform(self, parent: str, child: str, T: np.ndarray, ns: int):
        from geometry_msgs.msg import TransformStamped

        from alster_mapping.core.geometry import quaternion_from_pose

        t = TransformStamped()
        t.header.frame_id, t.child_frame_id = parent, child
        t.header.stamp.sec, t.header.stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
        xyz, q = quaternion_from_pose(T)
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (float(v) for v in xyz)
        r = t.transform.rotation
        r.x, r.y, r.z, r.w = (float(v) for v in q)
        return t

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def _on_update(self, msg) -> None:
        received = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.latency[stamp] = (received - stamp) / 1e9

    def connected(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self.pubs.values())

    def wait_connected(self, node: NodeProcess, timeout: float) -> float:
        """Wait until the node answers and subscribes to every input; returns the seconds it took."""
        start = time.monotonic()
        self.stats(timeout=timeout)
        while not self.connected():
            node.check_alive()
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"the node did not subscribe within {timeout} s:\n{node.output()}")
            time.sleep(0.05)
        time.sleep(0.5)  # the node's side of discovery
        return time.monotonic() - start

    def publish(self, i: int) -> int:
        """Frame i of the walk, stamped now: camera info and pose first, then the images; returns the stamp [ns]."""
        color, depth, pose = self.messages[walk(i, len(self.messages))]
        ns = time.time_ns()
        self.pubs["info"].publish(restamped(self.info, ns))
        if self.poses == "tf":
            self.pubs["tf"].publish(self.TFMessage(transforms=[self._transform("odom", "base_link", pose, ns)]))
        else:
            self.pubs["pose"].publish(restamped(pose, ns))
        self.pubs["color"].publish(restamped(color, ns))
        self.pubs["depth"].publish(restamped(depth, ns))
        return ns

    def wait_update(self, stamp: int, timeout: float) -> float | None:
        """The latency [s] of the frame stamped ``stamp`` once its update arrived; None after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if stamp in self.latency:
                    return self.latency[stamp]
            time.sleep(0.005)
        return None

    def stats(self, timeout: float = 10.0) -> dict:
        """The node's ``~/get_stats`` as a dict."""
        from std_srvs.srv import Trigger

        client = self.node.create_client(Trigger, "/mapping_node/get_stats")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise RuntimeError("~/get_stats did not appear")
            for _ in range(3):
                future = client.call_async(Trigger.Request())
                deadline = time.monotonic() + timeout
                while not future.done() and time.monotonic() < deadline:
                    time.sleep(0.01)
                if future.done():
                    return json.loads(future.result().message)
                client.remove_pending_request(future)
            raise RuntimeError("~/get_stats did not answer")
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.ctx)
