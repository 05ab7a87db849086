"""The settings of the floor grid (``map/semantic_grid.py``): one schema for the node's
``grid.*`` parameters, YAML and ``alster export --grid``. Light (no torch), so the launch
file's import of the node's config stays light."""

from __future__ import annotations

from dataclasses import dataclass

from .config import param

UNLABELLED = ("obstacle", "free")
"""What a voxel without a class is in the grid."""


@dataclass
class SemanticGridConfig:
    """The floor grid published for navigation (``~/semantic_grid``; ``map/semantic_grid.py``)."""

    period: float = param(1.0, "seconds between grid updates when the map changed; 0 = no grid", min=0.0, max=3600.0)
    resolution: float = param(0.0, "cell edge [m]; 0 = the map's voxel size", min=0.0, max=10.0)
    min_height: float = param(0.1, "lowest voxel centre above the map frame's z = 0 that can block a cell [m]", min=-100.0, max=100.0)
    max_height: float = param(1.8, "highest voxel centre that can block a cell (the robot's height) [m]", min=-100.0, max=100.0)
    obstacle_classes: str = param(
        "", "comma-separated class names that occupy a cell ('' = every class not in free_classes)"
    )
    free_classes: str = param("floor", "comma-separated class names that never occupy a cell (used when obstacle_classes is '')")
    unlabelled: str = param("obstacle", "voxels without a class: an obstacle (safe) or free", choices=UNLABELLED)
    groups: str = param(
        "",
        "extra grids, one per class group, as 'name:class,class;name:class' (e.g. 'keep_out:stairs,bathtub'), "
        "published as ~/semantic_grid_NAME; fixed while the node runs",
    )
    max_cells: int = param(4_000_000, "a grid with more cells than this is not built (counted, logged)", min=1, max=2**31 - 1)
