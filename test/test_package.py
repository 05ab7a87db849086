"""The package as a ROS 2 / pip user meets it: layout, manifests, entry points, layering, bench."""

from __future__ import annotations

import ast
import configparser
import importlib
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "alster_mapping"


def test_top_level_layout_is_an_ament_python_package():
    for name in ("package.xml", "setup.py", "setup.cfg", "README.md", "Makefile", ".ci/run", "resource/alster_mapping"):
        assert (ROOT / name).is_file(), name
    for name in ("alster_mapping", "launch", "config", "models", "test", "bench", "docs"):
        assert (ROOT / name).is_dir(), name
    assert (ROOT / "docs" / "ARCHITECTURE.md").is_file()


def test_package_xml_declares_the_runtime_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "alster_mapping"
    assert root.find("export/build_type").text == "ament_python"
    exec_depends = {e.text for e in root.findall("exec_depend")}
    required = {
        "rclpy", "sensor_msgs", "geometry_msgs", "visualization_msgs", "std_srvs", "nav_msgs", "diagnostic_msgs",
        "tf2_ros", "tf2_msgs", "vision_msgs", "message_filters", "cv_bridge", "python3-numpy", "python3-scipy", "python3-yaml",
    }  # fmt: skip
    assert required <= exec_depends, required - exec_depends


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["develop"]["script_dir"] == "$base/lib/alster_mapping"
    assert cfg["install"]["install_scripts"] == "$base/lib/alster_mapping"


def _console_scripts() -> dict[str, str]:
    text = (ROOT / "setup.py").read_text()
    return dict(re.findall(r"'([\w-]+) = ([\w.]+:\w+)'", text))


def test_console_scripts_point_at_real_functions():
    scripts = _console_scripts()
    assert set(scripts) >= {"alster", "mapping_node"}
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target


def test_requirements_are_pinned_and_torch_is_constrained():
    lines = (ROOT / "requirements" / "requirements.txt").read_text().splitlines()
    lines += (ROOT / "requirements" / "interfaces.txt").read_text().splitlines()
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            assert "==" in line, f"unpinned requirement: {line}"
            assert not re.match(r"ros-(?!jazzy-)", line), f"only ros-jazzy-* wheels may be named: {line}"
    constraints = (ROOT / "requirements" / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0\b", constraints, re.M)


# Layer rules of docs/ARCHITECTURE.md: what each layer must not import.
FORBIDDEN = {
    "core": {"map", "nets", "pipeline", "data", "ros", "train", "eval", "cli", "rclpy"},
    "map": {"nets", "pipeline", "data", "ros", "train", "eval", "cli", "rclpy"},
    "nets": {"map", "pipeline", "data", "ros", "train", "eval", "cli", "rclpy"},
    "pipeline": {"data", "ros", "train", "eval", "cli", "rclpy"},
    "data": {"pipeline", "nets", "ros", "train", "eval", "cli", "rclpy"},
    "train": {"ros", "rclpy"},
    "eval": {"ros", "rclpy"},
    "cli": {"ros", "rclpy"},
}


# The one sanctioned crossing: `alster play` publishes on ROS topics, so its command
# imports the ROS layer when (and only when) it runs; `alster` itself stays ROS-free.
LAZY_ROS_COMMANDS = {"cli.py": {"cmd_play"}}


def _imported_layers(path: Path) -> set[str]:
    """First components of everything ``path`` imports, relative to the package where internal
    (imports inside the functions of ``LAZY_ROS_COMMANDS`` excepted)."""
    tree = ast.parse(path.read_text())
    layer_of_file = path.relative_to(PACKAGE).parts
    exempt = LAZY_ROS_COMMANDS.get(str(path.relative_to(PACKAGE)), set())
    skipped = {
        id(inner) for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name in exempt for inner in ast.walk(node)
    }  # fmt: skip
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                names.add(parts[1] if parts[0] == "alster_mapping" and len(parts) > 1 else parts[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = list(layer_of_file[:-1])[: max(len(layer_of_file) - node.level, 0)]
                parts = base + (node.module.split(".") if node.module else [])
                if parts:
                    names.add(parts[0])
                else:  # `from .. import x` at the top: x is the layer
                    names.update(a.name for a in node.names)
            elif node.module:
                parts = node.module.split(".")
                names.add(parts[1] if parts[0] == "alster_mapping" and len(parts) > 1 else parts[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_dependencies_point_down_the_layers(layer):
    files = [PACKAGE / f"{layer}.py"] if (PACKAGE / f"{layer}.py").is_file() else sorted((PACKAGE / layer).rglob("*.py"))
    for path in files:
        bad = _imported_layers(path) & FORBIDDEN[layer]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, which layer {layer!r} must not use"


def test_engine_imports_without_ros():
    code = (
        "import sys, alster_mapping.core, alster_mapping.map, alster_mapping.pipeline.label_fusion, alster_mapping.cli; "
        "sys.exit('rclpy' in sys.modules)"
    )
    import subprocess

    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_the_launch_files_import_of_the_node_config_stays_light():
    """launch/mapping.launch.py reads the topic defaults from ros.node_config: no torch, no rclpy at launch."""
    import subprocess

    code = "import sys, alster_mapping.ros.node_config; sys.exit(('torch' in sys.modules) or ('rclpy' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_map_bench_runs_and_reports_its_goals(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        bench_map = importlib.import_module("bench_map")
    finally:
        sys.path.pop(0)
    assert bench_map.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "bench_map.json").read_text())
    assert result["large_map_voxels"] > result["small_map_voxels"] > 0
    assert result["frame_update_ms"]["small_median"] > 0 and result["memory"]["bytes_per_voxel"] > 0
    assert result["save_s_median"] > 0 and result["load_s_median"] > 0


def test_readme_python_examples_run(label_fusion_dir, tmp_path, monkeypatch):
    """Every ```python block of the README runs as written (from a scratch working directory)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build").mkdir()
    for block in blocks:
        code = block.replace("../shared/data/label-fusion/frames", str(label_fusion_dir)).replace('"models/', f'"{ROOT}/models/')
        exec(compile(code, "README.md", "exec"), {})


def test_make_setup_built_the_interface_packages():
    """tf2_msgs and vision_msgs come from interfaces/ (or a ROS distro): the TF and vision_msgs
    tests must run, not skip, wherever ``make setup`` ran without ALSTER_SKIP_INTERFACES=1."""
    import subprocess

    if os.environ.get("ALSTER_SKIP_INTERFACES") == "1":
        pytest.skip("ALSTER_SKIP_INTERFACES=1: the interface packages were not built")
    code = (
        "from tf2_msgs.msg import TFMessage; from vision_msgs.msg import Detection3DArray, LabelInfo; "
        "assert {'header', 'class_map', 'threshold'} <= set(LabelInfo.get_fields_and_field_types()); "
        "assert set(Detection3DArray.get_fields_and_field_types()) == {'header', 'detections'}; TFMessage()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
