"""bench/bench_load.py --quick: the node at 30 Hz against the engine alone, as JSON and a table."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy")

ROOT = Path(__file__).resolve().parents[2]


def test_load_bench_quick_reports_rates_and_latency(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_load.py"), "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "of engine" in run.stdout
    result = json.loads((tmp_path / "bench_load.json").read_text())
    (size,) = result["sizes"].values()
    engine, node = size["engine"], size["node"]
    assert engine["before_node"]["frames"] == engine["after_node"]["frames"] == 6
    assert engine["before_node"]["stride"] == engine["after_node"]["stride"] >= 1
    assert 0 < engine["step_ms_median"] and engine["rate_hz"] > 0
    assert node["rate_sent_hz"] == pytest.approx(30.0, rel=0.2) and node["frames_sent"] > 0
    # Timing is not judged here (bench/ and docs/RESULTS.md do that), but the node must map at 30 Hz input.
    assert node["mapped"] > 0 and node["mapped_hz"] > 0 and node["latency_ms"]["n"] > 0
    assert node["superseded"] > 0  # faster input than mapping: the slot keeps the newest
    assert size["mapped_fraction_of_engine_rate"] > 0
