"""Launch alster_mapping's mapping node (and optionally RViz).

    ros2 launch alster_mapping mapping.launch.py [config:=FILE] [map_file:=MAP] [use_sim_time:=true] [rviz:=true]

config: a ROS 2 params file (default: the package's config/mapping.yaml). map_file: a map
loaded at start-up; it replaces the params file's map_file ('' = start with an empty
map). use_sim_time: take time from /clock. rviz: also start RViz with the package's
config/alster.rviz (when that file is installed).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    share = get_package_share_directory("alster_mapping")
    config = LaunchConfiguration("config")
    map_file = LaunchConfiguration("map_file")
    use_sim_time = LaunchConfiguration("use_sim_time")
    rviz = LaunchConfiguration("rviz")

    actions = [
        DeclareLaunchArgument(
            "config",
            default_value=os.path.join(share, "config", "mapping.yaml"),
            description="ROS 2 params file of the mapping node",
        ),
        DeclareLaunchArgument("map_file", default_value="", description="map file to load at start-up ('' = empty map)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (e.g. when playing a bag)"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz"),
        Node(
            package="alster_mapping",
            executable="mapping_node",
            name="mapping_node",
            output="screen",
            emulate_tty=True,
            parameters=[
                config,
                {
                    "use_sim_time": ParameterValue(use_sim_time, value_type=bool),
                    "map_file": ParameterValue(map_file, value_type=str),
                },
            ],
        ),
    ]

    rviz_config = os.path.join(share, "config", "alster.rviz")
    if os.path.isfile(rviz_config):
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                arguments=["-d", rviz_config],
                parameters=[{"use_sim_time": ParameterValue(use_sim_time, value_type=bool)}],
                condition=IfCondition(rviz),
                output="screen",
            )
        )
    return LaunchDescription(actions)
