"""launch/mapping.launch.py, checked without ROS 2 launch (no pip wheels of launch / launch_ros).

The launch file runs against small stand-ins of the launch API injected into
sys.modules: ``generate_launch_description`` and its ``OpaqueFunction`` are executed
with chosen launch arguments, and the Node actions they create are checked against the
package: executable, package name, declared parameters, real input topic names.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / "launch" / "mapping.launch.py"
SHARE = "/opt/share/alster_mapping"


# ---------------------------------------------------------------------------
# stand-ins of the launch API (only what a launch file calls)
# ---------------------------------------------------------------------------


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchDescription(Recorded):
    pass


class DeclareLaunchArgument(Recorded):
    @property
    def name(self):
        return self.args[0]


class OpaqueFunction(Recorded):
    pass


class IfCondition(Recorded):
    pass


class ParameterValue(Recorded):
    pass


class Node(Recorded):
    pass


class LaunchConfiguration:
    def __init__(self, name, default=None):
        self.name = name

    def perform(self, context):
        return context.launch_configurations[self.name]


class Context:
    def __init__(self, values):
        self.launch_configurations = values


def _stub_modules() -> dict[str, types.ModuleType]:
    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        return m

    return {
        "launch": module("launch", LaunchDescription=LaunchDescription),
        "launch.actions": module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument, OpaqueFunction=OpaqueFunction),
        "launch.conditions": module("launch.conditions", IfCondition=IfCondition),
        "launch.substitutions": module("launch.substitutions", LaunchConfiguration=LaunchConfiguration),
        "launch_ros": module("launch_ros"),
        "launch_ros.actions": module("launch_ros.actions", Node=Node),
        "launch_ros.parameter_descriptions": module("launch_ros.parameter_descriptions", ParameterValue=ParameterValue),
        "ament_index_python": module("ament_index_python"),
        "ament_index_python.packages": module("ament_index_python.packages", get_package_share_directory=lambda pkg: f"/opt/share/{pkg}"),
    }


@pytest.fixture
def launch_module(monkeypatch):
    for name, stub in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, stub)
    spec = importlib.util.spec_from_file_location("alster_mapping_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_launch(module, monkeypatch, **overrides) -> tuple[dict, list[Node]]:
    """generate_launch_description, then its OpaqueFunction(s) with the argument defaults plus ``overrides``."""
    monkeypatch.setattr(module.os.path, "isfile", lambda p: p == f"{SHARE}/config/alster.rviz" or Path(p).is_file())
    description = module.generate_launch_description()
    (actions,) = description.args
    arguments = {a.name: a.kwargs for a in actions if isinstance(a, DeclareLaunchArgument)}
    values = {name: kw["default_value"] for name, kw in arguments.items()}
    unknown = set(overrides) - set(values)
    assert not unknown, f"not launch arguments: {unknown}"
    values.update(overrides)
    nodes = [a for a in actions if isinstance(a, Node)]
    context = Context(values)
    for action in actions:
        if isinstance(action, OpaqueFunction):
            nodes += action.kwargs["function"](context)
    return arguments, nodes


def _mapping_node(nodes) -> Node:
    (node,) = [n for n in nodes if n.kwargs["package"] == "alster_mapping"]
    return node


# ---------------------------------------------------------------------------
# the package's facts
# ---------------------------------------------------------------------------


def _console_scripts() -> dict[str, str]:
    return dict(re.findall(r"'([\w-]+) = ([\w.]+:\w+)'", (ROOT / "setup.py").read_text()))


def _node_parameters() -> set[str]:
    pytest.importorskip("rclpy")
    from alster_mapping.core.config import flatten
    from alster_mapping.ros.params import documented_configs

    names = {"use_sim_time"}  # every rclpy node declares it
    for cfg in documented_configs().values():
        names |= set(flatten(cfg))
    return names


def _node_input_topics() -> dict[str, str]:
    from alster_mapping.ros.node_config import MappingNodeConfig

    cfg = MappingNodeConfig()
    return {key: getattr(cfg, key) for key in ("color_topic", "depth_topic", "camera_info_topic", "label_topic", "pose_topic")}


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------


def test_launch_arguments(launch_module, monkeypatch):
    arguments, _ = run_launch(launch_module, monkeypatch)
    expected = {"config", "model", "map_file", "use_sim_time", "rviz", "namespace", "respawn"} | set(_node_input_topics())
    assert set(arguments) == expected
    assert all(kw.get("description") for kw in arguments.values())
    assert arguments["config"]["default_value"] == f"{SHARE}/config/mapping.yaml"
    assert arguments["use_sim_time"]["default_value"] == arguments["rviz"]["default_value"] == arguments["respawn"]["default_value"] == "false"
    assert arguments["model"]["default_value"] == arguments["map_file"]["default_value"] == ""


def test_default_launch_runs_the_installed_executable_with_the_shipped_params(launch_module, monkeypatch):
    _, nodes = run_launch(launch_module, monkeypatch)
    node = _mapping_node(nodes)
    kw = node.kwargs
    package_xml = ET.parse(ROOT / "package.xml").getroot().findtext("name")
    assert kw["package"] == package_xml == "alster_mapping"
    assert "package_name = 'alster_mapping'" in (ROOT / "setup.py").read_text()
    assert kw["executable"] in _console_scripts()
    assert _console_scripts()[kw["executable"]] == "alster_mapping.ros.mapping_node:main"
    assert kw["name"] == "mapping_node"
    params_file, overrides = kw["parameters"]
    assert params_file == f"{SHARE}/config/mapping.yaml"
    assert overrides == {"use_sim_time": False}  # model / map_file '' leave the params file's values
    assert kw["remappings"] == []  # default topic arguments remap nothing
    assert kw["respawn"] is False
    assert [n for n in nodes if n.kwargs["package"] == "rviz2"] == []


def test_every_parameter_and_remapping_targets_the_real_node(launch_module, monkeypatch, tmp_path):
    topics = _node_input_topics()
    new_topics = {arg: f"/robot/{arg}" for arg in topics}
    _, nodes = run_launch(
        launch_module, monkeypatch, model=str(tmp_path / "m.safetensors"), map_file="maps/a.safetensors",
        use_sim_time="true", rviz="true", namespace="robot", respawn="true", **new_topics,
    )  # fmt: skip
    node = _mapping_node(nodes)
    params_file, overrides = node.kwargs["parameters"]
    declared = _node_parameters()
    assert set(overrides) <= declared, set(overrides) - declared
    assert overrides["alster.checkpoint"] == str(tmp_path / "m.safetensors")
    assert Path(overrides["map_file"]).is_absolute() and overrides["map_file"].endswith("maps/a.safetensors")
    assert overrides["use_sim_time"] is True
    assert node.kwargs["namespace"] == "robot"
    assert node.kwargs["respawn"] is True and node.kwargs["respawn_delay"] > 0  # a watchdog exit (code 3) restarts it
    # Remappings go from the node's real (default) input names to the arguments' values.
    assert dict(node.kwargs["remappings"]) == {topics[arg]: new_topics[arg] for arg in topics}

    (rviz,) = [n for n in nodes if n.kwargs["package"] == "rviz2"]
    assert rviz.kwargs["arguments"] == ["-d", f"{SHARE}/config/alster.rviz"]
    assert rviz.kwargs["parameters"] == [{"use_sim_time": True}]


def test_shipped_params_file_names_only_declared_parameters():
    declared = _node_parameters()
    doc = yaml.safe_load((ROOT / "config" / "mapping.yaml").read_text())
    (params,) = [v["ros__parameters"] for v in doc.values()]

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield prefix + k

    assert set(leaves(params)) <= declared


def test_bad_flag_is_refused(launch_module, monkeypatch):
    with pytest.raises(ValueError, match="use_sim_time"):
        run_launch(launch_module, monkeypatch, use_sim_time="maybe")


def test_launch_and_rviz_files_are_installed():
    text = (ROOT / "setup.py").read_text()
    assert "'launch/*.py'" in text and "'config/*.rviz'" in text


def test_rviz_config_shows_the_nodes_real_topics():
    """config/alster.rviz: YAML as rviz2 saves it, fixed frame map, displays on the node's topics."""
    pytest.importorskip("rclpy")
    from alster_mapping.ros.map_server_node import NODE_NAME

    config = yaml.safe_load((ROOT / "config" / "alster.rviz").read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "map"
    displays = manager["Displays"]
    by_topic = {d["Topic"]["Value"]: d for d in displays if "Topic" in d}
    classes = {d["Class"] for d in displays}
    node = f"/{NODE_NAME}"

    cloud = by_topic[f"{node}/semantic_cloud"]
    assert cloud["Class"] == "rviz_default_plugins/PointCloud2" and cloud["Enabled"]
    assert cloud["Color Transformer"] == "RGB8"  # the packed rgb field of ros/cloud.py
    assert cloud["Topic"]["Durability Policy"] == "Transient Local"  # the cloud is latched (CLOUD_QOS)
    assert by_topic[f"{node}/markers"]["Class"] == "rviz_default_plugins/MarkerArray"
    assert "rviz_default_plugins/TF" in classes

    topics = _node_input_topics()
    camera = by_topic["/" + topics["color_topic"]]
    assert camera["Class"] == "rviz_default_plugins/Image" and camera["Topic"]["Reliability Policy"] == "Best Effort"
    label_image = by_topic[f"{node}/label_image"]
    assert label_image["Class"] == "rviz_default_plugins/Image" and not label_image["Enabled"]  # optional output
    for display in displays:
        if "Topic" in display:
            assert display["Topic"]["Value"].startswith("/"), display["Name"]
