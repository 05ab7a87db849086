#!/usr/bin/env python3
"""Load benchmark: the live node under a camera's 30 Hz against the engine alone, same frames, same run.

    python bench/bench_load.py [--out build/bench] [--seconds 60] [--sizes 320x240,640x480] [--quick]

For each image size:

1. Engine alone: ``OnlineMapper.step`` in this process on the frames the node will get
   (``ProceduralRoom``, an arc of --views poses walked back and forth, depth in whole
   millimetres as 16UC1 carries it; every k-th frame, k = the input rate times the step
   time, as the node skips the frames it cannot map), the node's configuration
   (``config/mapping.yaml``, mode alster, the shipped model). Measured before and after
   the node, averaged: median step time and frames per second.
2. The node (``mapping_node`` in a subprocess, real DDS on this host, pose_source pose):
   this process publishes colour (rgb8), depth (16UC1), CameraInfo and a PoseStamped at
   --rate Hz (default 30), stamped with the wall clock, from pre-serialized messages (only
   the stamp bytes change), and subscribes to ``~/semantic_cloud_update`` to time each
   mapped frame. After --warmup seconds it counts for --seconds: frames mapped per second
   (from the node's counters), the latency from image stamp to the update's arrival
   (median, p95), and what the node received of what was sent (best-effort images).

Goals (issue 10): mapped rate >= 90 % of the engine's rate, latency p95 <= 2 x the engine's
median step. Prints a table and writes ``bench_load.json`` into --out. Discovery stays on
this host in a random ROS_DOMAIN_ID unless one is set. ``--node-root DIR`` runs the node
from another checkout (e.g. an older commit, for a before/after comparison).
"""

from __future__ import annotations

import os
import random
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
if not os.environ.get("AMENT_PREFIX_PATH"):
    os.environ["AMENT_PREFIX_PATH"] = sys.prefix

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = ROOT / "models" / "alster_scannet20_synthetic.safetensors"
GOAL_RATE_FRACTION = 0.9
GOAL_LATENCY_STEPS = 2.0
START_TIMEOUT = 120.0


def frames_of(width: int, height: int, views: int):
    """The frames of both measurements: ProceduralRoom views with depth rounded to millimetres."""
    from alster_mapping.core.frame import RGBDFrame
    from alster_mapping.data.procedural_room import ProceduralRoom

    room = ProceduralRoom(width, height)
    frames = []
    for i in range(views):
        f = room.render(room.pose(i, views))
        depth_mm = np.round(np.nan_to_num(f.depth, posinf=0.0) * 1000).clip(0, 65535).astype(np.uint16)
        frames.append(RGBDFrame(f.color, depth_mm.astype(np.float32) / 1000, room.intrinsics, f.T_world_camera, f.stamp_ns, labels=f.labels))
    return frames, room.intrinsics


def depth_mm_of(frame) -> np.ndarray:
    return np.round(frame.depth * 1000).astype(np.uint16)


def walk(i: int, n: int) -> int:
    """Index of frame i on the arc walked back and forth."""
    period = 2 * n - 2 if n > 1 else 1
    j = i % period
    return j if j < n else period - j


def node_config(args):
    from alster_mapping.core.config import MappingConfig, apply_overrides, load_yaml

    cfg = load_yaml(MappingConfig, ROOT / "config" / "mapping.yaml", node_name="mapping_node")
    return apply_overrides(cfg, {"alster.checkpoint": str(args.model)}) if args.model else cfg


def bench_engine(args, frames, stride: int | None = None) -> dict:
    """OnlineMapper.step alone on every ``stride``-th frame of the walk (the node skips the frames it cannot map).

    stride None: the input rate times a warm-up estimate of the step time, i.e. about the
    frames the node maps at that rate.
    """
    from alster_mapping.pipeline.online_mapper import OnlineMapper

    mapper = OnlineMapper(node_config(args))
    warm = []
    for f in frames[:3]:
        t = time.perf_counter()
        mapper.step(f)  # lazy initialisation, and an estimate of the step
        warm.append(time.perf_counter() - t)
    mapper.map.clear()
    if stride is None:
        stride = max(1, round(args.rate * statistics.median(warm[1:])))
    times = []
    start = time.perf_counter()
    for i in range(args.engine_frames):
        t = time.perf_counter()
        mapper.step(frames[walk(i * stride, len(frames))])
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    median = statistics.median(times)
    return {
        "frames": len(times),
        "stride": stride,
        "step_ms_median": median * 1e3,
        "step_ms_p95": float(np.percentile(times, 95)) * 1e3,
        "rate_hz": len(times) / wall,
        "rate_hz_from_median": 1.0 / median,
    }


class Node:
    """The mapping node in a subprocess (output to a file)."""

    def __init__(self, workdir: Path, root: Path, params: list[str], name: str):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [env.get("PYTHONPATH")] if p])
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "alster_mapping.ros.mapping_node", "--ros-args", "--params-file", str(root / "config" / "mapping.yaml")]
        for p in params:
            cmd += ["-p", p]
        self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the node exited ({self.proc.returncode}):\n{self.output()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._log.close()
        return self.proc.returncode


def stamped(raw: bytes, ns: int) -> bytes:
    """Serialized message ``raw`` (little-endian CDR, starting with a std_msgs/Header) restamped to ``ns``."""
    out = bytearray(raw)
    out[4:12] = int(ns // 1_000_000_000).to_bytes(4, "little", signed=True) + int(ns % 1_000_000_000).to_bytes(4, "little")
    return bytes(out)


class Camera:
    """Publishes pre-serialized frames like a camera driver and a localisation, and times the node's updates."""

    def __init__(self, frames, intrinsics):
        import array

        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node as RosNode
        from rclpy.qos import qos_profile_sensor_data
        from rclpy.serialization import serialize_message
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from alster_mapping.core.geometry import quaternion_from_pose
        from alster_mapping.core.image_codec import array_to_image_fields, camera_info_fields

        self.rclpy = rclpy
        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.node = RosNode("bench_load_camera", context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        n = self.node
        # A camera driver publishes images with the sensor-data profile (best effort).
        self.pubs = {
            "info": n.create_publisher(CameraInfo, "/camera/color/camera_info", qos_profile_sensor_data),
            "pose": n.create_publisher(PoseStamped, "/camera_pose", 10),
            "color": n.create_publisher(Image, "/camera/color/image_raw", qos_profile_sensor_data),
            "depth": n.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", qos_profile_sensor_data),
        }
        self.lock = threading.Lock()
        self.latency: dict[int, float] = {}
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
            self.messages.append((image(frame.color, "rgb8"), image(depth_mm_of(frame), "16UC1"), serialize_message(pose)))
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

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

    def publish(self, i: int) -> int:
        """Frame i of the walk, stamped now: camera info and pose first, then the images; returns the stamp."""
        color, depth, pose = self.messages[walk(i, len(self.messages))]
        ns = time.time_ns()
        self.pubs["info"].publish(stamped(self.info, ns))
        self.pubs["pose"].publish(stamped(pose, ns))
        self.pubs["color"].publish(stamped(color, ns))
        self.pubs["depth"].publish(stamped(depth, ns))
        return ns

    def stats(self, timeout: float = 10.0) -> dict:
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


def bench_node(args, frames, intrinsics, workdir: Path, size: str) -> dict:
    params = ["pose_source:=pose"] + ([f"alster.checkpoint:={args.model}"] if args.model else [])
    node = Node(workdir, args.node_root, params, f"node_{size}")
    camera = None
    try:
        camera = Camera(frames, intrinsics)
        start = time.monotonic()
        camera.stats(timeout=START_TIMEOUT)
        while not camera.connected():
            node.check_alive()
            if time.monotonic() - start > START_TIMEOUT:
                raise RuntimeError(f"the node did not subscribe within {START_TIMEOUT} s:\n{node.output()}")
            time.sleep(0.05)
        time.sleep(0.5)
        period = 1.0 / args.rate
        sent: list[tuple[float, int]] = []
        t0 = time.monotonic()
        marks = {}
        i = 0
        next_frame = t0
        while True:
            now = time.monotonic()
            if now - t0 >= args.warmup and "start" not in marks:
                marks["start"] = (now, camera.stats()["pipeline"])
            if now - t0 >= args.warmup + args.seconds:
                marks["end"] = (time.monotonic(), camera.stats()["pipeline"])
                break
            if now >= next_frame:
                sent.append((now - t0, camera.publish(i)))
                i += 1
                next_frame += period
                if next_frame < now - period:  # this process fell behind: keep the rate, no bursts
                    next_frame = now + period
            node.check_alive()
            time.sleep(max(0.0, next_frame - time.monotonic()))
        time.sleep(3.0)  # the last updates
        (t_start, p_start), (t_end, p_end) = marks["start"], marks["end"]
        with camera.lock:
            latency = dict(camera.latency)
        window = [(t, s) for t, s in sent if args.warmup <= t < args.warmup + args.seconds]
        timed = [latency[s] for _, s in window if s in latency]
        mapped = p_end["mapped"] - p_start["mapped"]
        received = p_end["received"].get("color", 0) - p_start["received"].get("color", 0)
        stats_end = camera.stats()
        result = {
            "seconds": t_end - t_start,
            "rate_sent_hz": len(window) / args.seconds,
            "frames_sent": len(window),
            "colour_images_received": received,
            "lost_before_the_node_percent": 100.0 * (1.0 - received / len(window)) if window else None,
            "mapped": mapped,
            "mapped_hz": mapped / (t_end - t_start),
            "superseded": p_end["queue"].get("superseded", p_end["queue"].get("dropped", 0))
            - p_start["queue"].get("superseded", p_start["queue"].get("dropped", 0)),
            "skipped": {k: v - p_start["skipped"].get(k, 0) for k, v in p_end["skipped"].items() if v - p_start["skipped"].get(k, 0)},
            "latency_ms": {
                "n": len(timed),
                "median": statistics.median(timed) * 1e3 if timed else None,
                "p95": float(np.percentile(timed, 95)) * 1e3 if timed else None,
                "max": max(timed) * 1e3 if timed else None,
            },
            "node_latency_ms": {k: v.get("mean_ms") for k, v in stats_end["pipeline"]["latency"].items()},
            "map_voxels_end": stats_end.get("voxels"),
        }
        code = node.stop()
        if code != 0:
            raise RuntimeError(f"the node exited with {code}:\n{node.output()}")
        return result
    finally:
        if camera is not None:
            camera.close()
        node.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--sizes", default="320x240,640x480", help="comma-separated WIDTHxHEIGHT")
    parser.add_argument("--rate", type=float, default=30.0, help="input rate [Hz]")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per size after the warm-up")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of input before measuring")
    parser.add_argument("--views", type=int, default=30, help="poses on the arc (walked back and forth)")
    parser.add_argument("--engine-frames", type=int, default=40, help="frames of each engine-alone measurement")
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL if SHIPPED_MODEL.is_file() else None)
    parser.add_argument("--node-root", type=Path, default=ROOT, help="checkout the node runs from")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 320x240, 8 s, fewer frames")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.seconds, args.warmup, args.views, args.engine_frames = "320x240", 8.0, 4.0, 6, 6
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]

    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        for width, height in sizes:
            key = f"{width}x{height}"
            frames, intrinsics = frames_of(width, height, args.views)
            # The engine alone before and after the node, on the same frames: this machine's speed
            # drifts by several percent over minutes, and the ratio must not depend on that.
            before = bench_engine(args, frames)
            node = bench_node(args, frames, intrinsics, Path(tmp), key)
            after = bench_engine(args, frames, before["stride"])
            engine = {
                "before_node": before,
                "after_node": after,
                "step_ms_median": (before["step_ms_median"] + after["step_ms_median"]) / 2,
                "rate_hz": (before["rate_hz"] + after["rate_hz"]) / 2,
            }
            results[key] = {
                "engine": engine,
                "node": node,
                "mapped_fraction_of_engine_rate": node["mapped_hz"] / engine["rate_hz"],
                "latency_p95_in_engine_steps": (node["latency_ms"]["p95"] or float("nan")) / engine["step_ms_median"],
            }
    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "load_avg_1min": os.getloadavg()[0]},
        "goals": {"mapped_fraction_of_engine_rate_min": GOAL_RATE_FRACTION, "latency_p95_in_engine_steps_max": GOAL_LATENCY_STEPS},
        "node_root": str(args.node_root),
        "sizes": results,
        "command": "python bench/bench_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    (args.out / "bench_load.json").write_text(json.dumps(result, indent=2))

    header = ("size", "engine step (median)", "engine rate (before / after)", f"node at {args.rate:g} Hz: mapped", "of engine (>= 90 %)",
              "latency median / p95", "p95 in steps (<= 2)", "lost by DDS")
    rows = []
    for key, r in results.items():
        e, n = r["engine"], r["node"]
        lat = n["latency_ms"]
        rows.append((
            key,
            f"{e['step_ms_median']:.0f} ms",
            f"{e['rate_hz']:.2f} Hz ({e['before_node']['rate_hz']:.2f} / {e['after_node']['rate_hz']:.2f})",
            f"{n['mapped_hz']:.2f} Hz",
            f"{100 * r['mapped_fraction_of_engine_rate']:.0f} %",
            f"{lat['median']:.0f} / {lat['p95']:.0f} ms" if lat["median"] is not None else "n/a",
            f"{r['latency_p95_in_engine_steps']:.2f}",
            f"{n['lost_before_the_node_percent']:.0f} %",
        ))
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    print(f"wrote {args.out / 'bench_load.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
