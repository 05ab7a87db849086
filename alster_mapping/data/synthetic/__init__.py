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

Styles (``SyntheticConfig.style``, or ``style=`` of ``SyntheticWorld``; see ``style``):

    classic     the look above, bit for bit (the default; the held-out evaluations
                ``synthetic:0..4`` use it)
    randomized  domain randomization for training: a model trained on the classic look
                alone learns that look and fails on real scans, so each world draws its
                materials (6 palette and 9 texture families), lighting (5 families: RGB
                ambient, sun and lamps), colour camera (3 families: exposure with auto
                exposure, white balance, gamma, vignetting, defocus / motion blur, read and
                shot noise, JPEG) and depth sensor (Kinect v1, Structure Sensor, RealSense
                D415 / D435: their focal lengths, axial noise, disparity quantisation
                k z^2, projector shadow bands, flying pixels, holes on dark, shiny and
                glass surfaces); per-frame effects are seeded by (seed, index). The room
                also gets shape variants (aprons, stretchers, footboards, desk panels) and
                clutter on its surfaces (NYU40 "otherprop", 40: ignored by ScanNet-20)
    shifted     the held-out look of the robustness benchmark: the same rooms as
                randomized, drawn from families randomized never uses (dots, chevron and
                marble patterns; saturated, very dark and very bright palettes; a warm light
                near the floor or strongly coloured lights; noise, blur or JPEG levels beyond
                the training ranges; the time-of-flight Kinect v2 and Azure Kinect)

The split is ``style.RANDOMIZED_FAMILIES`` / ``style.SHIFTED_FAMILIES``; a non-classic
world records what it drew in ``style_families``. The image size is the caller's in every
style; the non-classic styles vary the focal length (fx / width 0.76-0.99 randomized,
0.63-0.73 shifted). Sequences name a style as ``synthetic:SEED[:FRAMES][@STYLE]``.

Frames: world z up, metres; cameras are optical frames (x right, y down, z forward),
T_world_camera (4, 4) float64. Everything is reproducible from the seed (and style): the
layout, the trajectory and the ground-truth points come from their own generators seeded by
the world seed, and the noise of frame i from a generator seeded by (seed, i), so frames can be
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
    style        the styles, the split of training / held-out families, the per-world family draw
    materials    palette and texture families, restyling a world's materials
    patterns     the procedural patterns of the non-classic styles (stripes ... marble)
    lighting     lighting families and RGB shading
    imaging      colour camera families and the image pipeline (exposure ... JPEG)
    sensor       depth sensor models: intrinsics and depth artefacts
    clutter      shape variants of the furniture and clutter on its surfaces
    styled       applying a style to a built world and rendering it
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
    OTHERPROP,
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
from .style import RANDOMIZED_FAMILIES, SHIFTED_FAMILIES, STYLES
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
    "OTHERPROP",
    "PALETTES",
    "PICTURE",
    "PLAIN",
    "RANDOMIZED_FAMILIES",
    "REFRIGERATOR",
    "SHIFTED_FAMILIES",
    "SHOWER_CURTAIN",
    "SINK",
    "SOFA",
    "SPECKLE",
    "STYLES",
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
