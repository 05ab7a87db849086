"""The floor grid as files: the Nav2 map_server pair (PGM + YAML) and a PNG picture.

``nav2_map_server`` loads a map from a YAML file naming a PGM image, the resolution and
the origin (``mode: trinary``): black (0) occupied, white (254) free, grey (205) unknown,
with the image's top row at the grid's largest y. ``write_nav2_map`` writes exactly that,
so a map built by the node can be served to Nav2 later without the node
(``ros2 run nav2_map_server map_server --ros-args -p yaml_filename:=grid.yaml``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.atomic_file import atomic_path, write_text_atomic
from .semantic_grid import FREE, OCCUPIED, Grid

PGM_OCCUPIED, PGM_FREE, PGM_UNKNOWN = 0, 254, 205
"""Grey values of nav2_map_server's trinary PGM maps."""


def grid_image(grid: Grid, scale: int = 1) -> np.ndarray:
    """(H * scale, W * scale) uint8 grey image of the grid, top row = largest y (as a map is viewed)."""
    image = np.full(grid.shape, PGM_UNKNOWN, np.uint8)
    image[grid.cells == OCCUPIED] = PGM_OCCUPIED
    image[grid.cells == FREE] = PGM_FREE
    image = image[::-1]
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1) if scale > 1 else image


def write_nav2_map(grid: Grid, directory: str | os.PathLike, name: str = "semantic_grid") -> tuple[Path, Path]:
    """Write ``NAME.pgm`` and ``NAME.yaml`` (nav2_map_server's format) into ``directory``,
    atomically; returns both paths. Raises ValueError for an empty grid."""
    if grid.cells.size == 0:
        raise ValueError("the grid is empty: nothing at or below max_height was seen")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pgm, yaml_path = directory / f"{name}.pgm", directory / f"{name}.yaml"
    with atomic_path(pgm) as tmp:
        Image.fromarray(grid_image(grid), mode="L").save(tmp, format="PPM")  # PIL writes mode L as binary PGM (P5)
    x, y = grid.origin
    write_text_atomic(
        yaml_path,
        f"image: {pgm.name}\nmode: trinary\nresolution: {grid.resolution}\norigin: [{x}, {y}, 0.0]\n"
        "negate: 0\noccupied_thresh: 0.65\nfree_thresh: 0.25\n",
    )
    return pgm, yaml_path
