"""alster_mapping: real-time semantic 3D mapping (ALSTER) for ROS 2.

The mapping engine (``core``, ``map``, ``pipeline``, ``data``) runs without ROS;
``alster_mapping.ros`` adapts it to ROS 2 topics, TF and services.
"""

__version__ = "0.1.0"
