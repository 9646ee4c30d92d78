"""pip install . -> cde_core and the `cde` command line (no ROS needed).

The ROS 2 package (messages, node, launch) is built by colcon/ament from CMakeLists.txt; on a training
server without ROS only cde_core is used. Optional heavy parts are extras.
"""
from setuptools import find_packages, setup

setup(
    name="cde",
    version="0.1.0",
    description="Causal Delta Embeddings: recognise the action the world underwent between two camera frames.",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["cde_core", "cde_core.*", "cde_ros", "cde_ros.*"]),
    package_data={"cde_core": ["configs/*.yaml"]},
    install_requires=[
        "torch>=2.2",
        "torchvision",
        "timm>=1.0",
        "safetensors",
        "numpy",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "pillow",
    ],
    extras_require={
        "export": ["onnx", "onnxruntime"],
        "sim": ["metaworld==3.1.1", "packaging"],
        "bags": ["rosbags", "mcap", "mcap-ros2-support"],
        "test": ["pytest", "pytest-timeout", "hypothesis"],
    },
    entry_points={"console_scripts": ["cde = cde_core.cli:main"]},
)
