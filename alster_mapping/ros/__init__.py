"""ROS 2 adapters of the mapping engine: message conversion, parameters, nodes.

This layer only converts between ROS messages and the engine's types and owns the
threads, QoS and timing (see docs/ARCHITECTURE.md). Importing ``alster_mapping.ros``
does not import rclpy; the submodules do:

- ``cloud``: ``MapArrays`` <-> ``sensor_msgs/PointCloud2`` (vectorised).
- ``params``: ROS parameters declared from, and read back into, the config dataclasses.
- Components given the node: ``node_runtime`` (log, guarded callbacks, exit),
  ``node_parameters`` (configs as parameters), ``map_server`` (``MapServer``: the map,
  publish, save, load, clear, stats), ``live_mapping`` (``LiveMapping``: images and poses
  in, a worker thread mapping them, outputs, watchdog, diagnostics).
- ``map_server_node``: ``MapServerNode`` (a map server alone) and the nodes' ``main``.
- ``mapping_node``: ``MappingNode``, the live mapper composed of the components, and the
  ``mapping_node`` console-script entry point.
- ``inputs``: image conversion (cv_bridge or numpy), pose messages, ``PoseSource`` (TF / pose topics).
- ``worker``: the bounded drop-oldest frame queue, counters, latency statistics, throttling.
- ``outputs``: per-frame update arrays, RViz markers with a legend, the debug label image.
- ``diagnostics``: ``diagnostic_msgs`` status of flat key/values, process memory.
- ``bag_player``: ``BagPlayer`` behind ``alster play`` (a bag re-published with its timing and /clock).
"""
