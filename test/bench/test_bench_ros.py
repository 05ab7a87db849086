"""bench/bench_ros.py --quick: cloud packing, the live node's latency and memory, as JSON and a table."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy")

ROOT = Path(__file__).resolve().parents[2]


def test_ros_bench_quick_reports_packing_latency_and_memory(tmp_path):
    # A subprocess: the bench starts its own rclpy context and a node process (the
    # environment of conftest.py, i.e. localhost discovery in this session's domain).
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_ros.py"), "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PointCloud2 packing" in run.stdout and "latency" in run.stdout
    result = json.loads((tmp_path / "bench_ros.json").read_text())
    packing = result["packing"]
    assert packing["points"] == 300_000 and len(packing["runs_ms"]) == 5 and 0 < packing["min_ms"] <= packing["median_ms"]
    node = result["node"]
    assert node["duration_s"] == 30.0 and node["rate_hz"] > 0 and node["processing_ms_median"] > 0
    assert node["frames_sent_after_warmup"] > 0 and node["updates_received_after_warmup"] > 0
    assert 0 < node["latency_ms"]["median"] <= node["latency_ms"]["p95"]
    memory = node["memory"]
    assert memory["rss_after_warmup_bytes"] > 0 and memory["rss_end_bytes"] > 0
    assert len(memory["samples"]) >= 20  # one a second
    assert node["node_mapped"] > 0 and node["map_voxels_end"] > 0
