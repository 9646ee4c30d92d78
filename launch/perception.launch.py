"""ros2 launch cde_ros perception.launch.py model_path:=/path/model.onnx [namespace:=robot1] [image:=/camera/image_raw]

Loads config/perception.yaml; arguments only name things. No logic here: everything the node does is
in its parameters.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    params = os.path.join(get_package_share_directory("cde_ros"), "config", "perception.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("params_file", default_value=params, description="parameter YAML"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="exported .onnx index or .safetensors (always passed: overrides params_file's)"),
        DeclareLaunchArgument("image", default_value="image", description="camera image topic"),
        DeclareLaunchArgument("commands", default_value="commands", description="ManipulatorCommand topic"),
        Node(
            package="cde_ros",
            executable="perception_node",
            name="cde_perception",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), {"model_path": LaunchConfiguration("model_path")}],
            remappings=[("image", LaunchConfiguration("image")), ("commands", LaunchConfiguration("commands"))],
            output="screen",
        ),
    ])
