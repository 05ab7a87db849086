"""Launch alster_mapping's mapping node (and optionally RViz).

    ros2 launch alster_mapping mapping.launch.py [config:=FILE] [model:=CHECKPOINT] [map_file:=MAP]
        [use_sim_time:=true] [rviz:=true] [namespace:=NS] [respawn:=true]
        [color_topic:=T] [depth_topic:=T] [camera_info_topic:=T] [label_topic:=T] [pose_topic:=T]

config: a ROS 2 params file (default: the package's config/mapping.yaml).
model: an ALSTER checkpoint (.safetensors with its card) for the ``alster.checkpoint``
parameter (default: the model shipped in models/, trained on synthetic worlds; '' = the
params file's). map_file: a map loaded at start-up ('' = the params
file's map_file). use_sim_time: take time from /clock (e.g. with ``alster play`` or
``ros2 bag play --clock``). rviz: also start RViz with the package's config/alster.rviz.
namespace: the node's namespace (its relative input topics follow it). respawn: start
the node again when it exits (after ``RESPAWN_DELAY`` seconds), e.g. when its watchdog
found the worker stuck (exit code 3); off by default, so a configuration error is
reported once instead of in a loop.

The *_topic arguments remap the node's default input topics (the defaults of
``color_topic``, ``depth_topic``, ``camera_info_topic``, ``label_topic`` and
``pose_topic`` in ``MappingNodeConfig``, alster_mapping/ros/node_config.py) to other
names, e.g. ``depth_topic:=/camera/depth/image_raw`` for a bag written by
``alster_mapping.data.rosbag_io.write_bag``. A params file that renames those inputs
itself is followed as is (the remappings only match the default names).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from alster_mapping.ros.node_config import MappingNodeConfig

PACKAGE = "alster_mapping"
EXECUTABLE = "mapping_node"
NODE_NAME = "mapping_node"
SHIPPED_MODEL = "alster_scannet20_synthetic.safetensors"
RESPAWN_DELAY = 2.0

# Launch argument -> (the node's default input topic, description). The defaults are read
# from MappingNodeConfig (rclpy-free), so they cannot drift from the node's.
_TOPIC_HELP = {
    "color_topic": "colour image topic (rgb8, bgr8, rgba8, bgra8, mono8)",
    "depth_topic": "depth image topic registered to colour (16UC1 mm or 32FC1 m)",
    "camera_info_topic": "CameraInfo of the colour camera",
    "label_topic": "label image topic (label_fusion mode)",
    "pose_topic": "pose topic (pose_source pose, odometry or transform)",
}
TOPIC_ARGUMENTS = {name: (getattr(MappingNodeConfig(), name), help_text) for name, help_text in _TOPIC_HELP.items()}

TRUE_VALUES = ("true", "1", "yes", "on")
FALSE_VALUES = ("false", "0", "no", "off")


def _flag(context, name):
    value = LaunchConfiguration(name).perform(context).strip().lower()
    if value not in TRUE_VALUES + FALSE_VALUES:
        raise ValueError(f"launch argument {name} must be true or false, got {value!r}")
    return value in TRUE_VALUES


def _nodes(context, *args, **kwargs):
    share = get_package_share_directory(PACKAGE)
    use_sim_time = _flag(context, "use_sim_time")
    overrides = {"use_sim_time": use_sim_time}
    model = LaunchConfiguration("model").perform(context).strip()
    if model:
        overrides["alster.checkpoint"] = os.path.abspath(os.path.expanduser(model))
    map_file = LaunchConfiguration("map_file").perform(context).strip()
    if map_file:
        overrides["map_file"] = os.path.abspath(os.path.expanduser(map_file))
    remappings = []
    for argument, (default, _) in TOPIC_ARGUMENTS.items():
        target = LaunchConfiguration(argument).perform(context).strip()
        if target and target != default:
            remappings.append((default, target))

    nodes = [
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=LaunchConfiguration("namespace").perform(context),
            output="screen",
            emulate_tty=True,
            parameters=[LaunchConfiguration("config").perform(context), overrides],
            remappings=remappings,
            respawn=_flag(context, "respawn"),
            respawn_delay=RESPAWN_DELAY,
        )
    ]
    rviz_config = os.path.join(share, "config", "alster.rviz")
    if _flag(context, "rviz"):
        if not os.path.isfile(rviz_config):
            raise FileNotFoundError(f"rviz:=true but {rviz_config} is not installed")
        nodes.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                arguments=["-d", rviz_config],
                parameters=[{"use_sim_time": use_sim_time}],
                output="screen",
            )
        )
    return nodes


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    shipped = os.path.join(share, "models", SHIPPED_MODEL)
    arguments = [
        DeclareLaunchArgument(
            "config", default_value=os.path.join(share, "config", "mapping.yaml"), description="ROS 2 params file of the mapping node"
        ),
        DeclareLaunchArgument(
            "model",
            default_value=shipped if os.path.isfile(shipped) else "",
            description="ALSTER checkpoint for alster.checkpoint (default: the shipped model, trained on synthetic worlds; '' = the params file's)",
        ),
        DeclareLaunchArgument("map_file", default_value="", description="map file to load at start-up ('' = the params file's)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (e.g. when playing a bag)"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz with config/alster.rviz"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the mapping node"),
        DeclareLaunchArgument(
            "respawn", default_value="false", description="restart the node when it exits (e.g. its watchdog found the worker stuck)"
        ),
    ]
    for argument, (default, description) in TOPIC_ARGUMENTS.items():
        arguments.append(DeclareLaunchArgument(argument, default_value=default, description=f"{description}; remaps {default}"))
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
