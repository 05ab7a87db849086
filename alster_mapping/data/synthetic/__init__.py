"""Seeded synthetic indoor worlds with ground truth: the training and evaluation data of ALSTER.

One world is one furnished room (random size, about 4.5-7 m x 4-6 m, 2.5-2.9 m high) whose
objects cover the 20 ScanNet benchmark classes (NYU40 ids, see ``core.labels``): floor,
walls and a ceiling (NYU40 22, outside the 20 classes), doors, windows with curtains,
pictures, a bathroom corner (bathtub with shower curtain, toilet, sink), a kitchen corner
(base cabinets under a counter with a sink, wall cabinets, refrigerator), a bedroom /
office part (bed, nightstands, desk with chair, bookshelf, wardrobe or dresser) and a
living part (sofa, coffee table, dining table with chairs, lamps, ottomans, shelf units).
Every object is built from primitives (boxes, cylinders, folded sheets) with per-instance
size, pose, colour (class palette + HSV jitter) and procedural texture (wood grain,
fabric weave, tiles, speckle, book spines, art), so that a network has to learn shape,
size, placement and colour cues that generalise to unseen seeds.

A ``SyntheticWorld`` renders posed RGB-D frames with Open3D ray casting (one scene per
world): RGB = albedo x texture x shading (ambient, sun-like directional light, ceiling
point light) + pixel noise; depth = z with a Kinect-like noise model (noise growing with
distance, dropouts at depth edges, grazing angles and at random, a min/max range);
noise-free per-pixel NYU40 labels and instance ids. ``ground_truth_points`` samples the
visible surfaces of all objects (the analogue of ScanNet's labelled mesh vertices).

Frames: world z up, metres; cameras are optical frames (x right, y down, z forward),
T_world_camera (4, 4) float64. Everything is reproducible from the seed: the layout,
the trajectory and the ground-truth points come from their own generators seeded by the
world seed, and the noise of frame i from a generator seeded by (seed, i), so frames can be
rendered in any order.

Modules (one concept each; the package re-exports the public names of the former module):

    classes      the NYU40 ids of the generated classes
    config       ``SyntheticConfig``, the generator's knobs
    records      ``WorldObject`` and ``SyntheticView``, what a world holds and renders
    textures     texture kinds, class palettes with HSV jitter, procedural texture evaluation
    shapes       primitive meshes (box, cylinder, folded sheet), ``_Part`` and ``_Parts``
    fixtures     builders of built-in fixtures: door, window, curtains, pictures, bathroom, kitchen
    furniture    builders of furniture: bed, nightstand, desk, chair, sofa, tables, shelves, ...
    freespace    the free-space grid of camera positions and the camera clearance test
    layout       the room shell and the placement of fixtures and furniture
    render       the ray-casting scene and the renderer (RGB, depth with noise, labels, instances)
    trajectory   camera paths through the free space and the posed trajectory
    groundtruth  labelled ground-truth points on the visible surfaces
    world        ``SyntheticWorld``, which combines the layout, renderer, trajectory and ground truth
"""

from .classes import (
    BATHTUB,
    BED,
    BOOKSHELF,
    CABINET,
    CEILING,
    CHAIR,
    COUNTER,
    CURTAIN,
    DESK,
    DOOR,
    FLOOR,
    OTHERFURNITURE,
    PICTURE,
    REFRIGERATOR,
    SHOWER_CURTAIN,
    SINK,
    SOFA,
    TABLE,
    TOILET,
    WALL,
    WINDOW,
)
from .config import SyntheticConfig
from .records import SyntheticView, WorldObject
from .textures import ART, BOOKS, FABRIC, GLASS, PALETTES, PLAIN, SPECKLE, TILES, WOOD
from .world import SyntheticWorld

__all__ = [
    "ART",
    "BATHTUB",
    "BED",
    "BOOKS",
    "BOOKSHELF",
    "CABINET",
    "CEILING",
    "CHAIR",
    "COUNTER",
    "CURTAIN",
    "DESK",
    "DOOR",
    "FABRIC",
    "FLOOR",
    "GLASS",
    "OTHERFURNITURE",
    "PALETTES",
    "PICTURE",
    "PLAIN",
    "REFRIGERATOR",
    "SHOWER_CURTAIN",
    "SINK",
    "SOFA",
    "SPECKLE",
    "SyntheticConfig",
    "SyntheticView",
    "SyntheticWorld",
    "TABLE",
    "TILES",
    "TOILET",
    "WALL",
    "WINDOW",
    "WOOD",
    "WorldObject",
]
