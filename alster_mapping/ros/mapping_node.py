"""Entry point of the ``mapping_node`` console script (``ros2 run alster_mapping mapping_node``).

For now the node serves a map (``MapServerNode``: publish, save, load, clear, stats);
the live mapping pipeline grows into this node later.
"""

import sys

from .map_server_node import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
