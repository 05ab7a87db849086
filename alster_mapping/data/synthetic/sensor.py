"""Depth sensors of the non-classic styles: a table of common RGB-D sensors (focal length,
measuring principle, baseline, noise, disparity quantisation, range) and ``DepthSensor``,
which turns a clean depth image into what such a sensor measures.

Artefacts, all vectorised over the image:

    axial noise      sigma(z) = a + b z + c z^2 [m] (structured light: Nguyen, Izadi & Lovell
                     2012; active stereo: RMS error ~ z^2 subpixel / (f B), Intel's D400 tuning
                     guide; time of flight: a few mm, slowly growing)
    quantisation     disparity sensors measure d ~ 1 / z in sub-pixel steps, so depth comes in
                     steps k z^2 (Khoshelham & Elberink 2012, Sensors 12(2): Kinect v1 depth
                     resolution about 7 cm at 5 m, k = 2.85e-3 / m); time of flight: 1 mm
    shadow band      structured light and stereo see a surface only where both the camera and
                     the projector (or second imager), a baseline B to the right, see it:
                     background next to the left side of a foreground edge lies in a band of
                     f B (1/z_front - 1/z_back) pixels without depth
    flying pixels    pixels across a depth edge mix both surfaces: depth between the front and
                     the back (mostly time of flight: mixed returns)
    dropouts         at depth edges, at grazing angles, on dark surfaces (little returned IR),
                     on shiny parts (specular: the pattern is reflected away), always on glass
                     (IR passes through), and at random; outside the sensor's range

Per world (rng: the world's sensor stream) the focal length, principal point and the artefact
levels are drawn within the sensor's ranges; per frame the noise (the frame's generator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.camera import CameraIntrinsics


@dataclass(frozen=True)
class SensorModel:
    """One kind of RGB-D sensor. Ranges (lo, hi) are drawn per world.

    principle: "structured_light", "active_stereo" or "time_of_flight". focal_per_width:
    fx / image width (fx = fy) of the depth registered to colour. baseline: projector (or
    second imager) to camera [m], to the right in the image; 0: no shadow band.
    disparity_step: k [1/m] of the depth step k z^2; 0: 1 mm steps. noise: (a, b, c) of
    sigma(z) = a + b z + c z^2 [m]. depth_range: measurable depth [m]. flying_pixels:
    share of the pixels at depth edges that mix both surfaces. edge_dropout: share of the
    other edge pixels without depth. dark_albedo: albedo luma below which the return fades.
    """

    principle: str
    focal_per_width: tuple[float, float]
    baseline: float
    disparity_step: float
    noise: tuple[float, float, float]
    depth_range: tuple[float, float]
    flying_pixels: tuple[float, float]
    edge_dropout: tuple[float, float]
    dark_albedo: tuple[float, float]


# Nguyen et al. 2012: sigma = 0.0012 + 0.0019 (z - 0.4)^2 m, expanded to a + b z + c z^2.
_KINECT_NOISE = (0.0012 + 0.0019 * 0.16, -0.0019 * 0.8, 0.0019)

SENSORS: dict[str, SensorModel] = {
    # Kinect v1 (PrimeSense structured light): baseline about 7.5 cm, disparity in 1/8 px,
    # depth step 2.85e-3 z^2 m and a 0.5-5 m range (Khoshelham & Elberink 2012); fx about
    # 525 px (colour) to 580 px (depth) at 640 px width.
    "kinect_v1": SensorModel("structured_light", (0.81, 0.91), 0.075, 2.85e-3, _KINECT_NOISE, (0.5, 5.0), (0.1, 0.3), (0.4, 0.7), (0.05, 0.12)),
    # Occipital Structure Sensor, ScanNet's depth camera (577.87 px at 640 px, ScanNet's
    # intrinsics); the same PrimeSense design, so we assume Kinect v1 geometry and noise.
    "structure_sensor": SensorModel(
        "structured_light", (0.89, 0.915), 0.075, 2.85e-3, _KINECT_NOISE, (0.4, 5.0), (0.1, 0.3), (0.4, 0.7), (0.05, 0.12)
    ),
    # Intel RealSense D415 (active stereo): baseline 55 mm, 65 deg horizontal depth field of
    # view (fx / width 0.785), about 1005 px focal length at 1280 px; sub-pixel RMS 0.08 px
    # gives c = 0.08 / (1005 * 0.055); disparity in 1/32 px steps: k = (1/32) / (1005 * 0.055).
    "realsense_d415": SensorModel(
        "active_stereo", (0.76, 0.80), 0.055, 5.7e-4, (0.0005, 0.0, 1.45e-3), (0.3, 5.0), (0.15, 0.35), (0.3, 0.6), (0.04, 0.1)
    ),
    # Intel RealSense D435 (active stereo): baseline 50 mm, depth aligned to the 640x480
    # colour stream (about 615 px: fx / width 0.96); the 87 deg depth imagers have about
    # 447 px at 848 px: c = 0.08 / (447 * 0.05), k = (1/32) / (447 * 0.05).
    "realsense_d435": SensorModel(
        "active_stereo", (0.93, 0.99), 0.050, 1.4e-3, (0.0005, 0.0, 3.6e-3), (0.2, 5.0), (0.15, 0.35), (0.3, 0.6), (0.04, 0.1)
    ),
    # held out
    # Kinect v2 (time of flight): 512x424 depth, 70.6 x 60 deg field of view (fx / width
    # 0.706), 0.5-4.5 m; mixed pixels at edges are its typical artefact.
    "kinect_v2": SensorModel("time_of_flight", (0.69, 0.725), 0.0, 0.0, (0.0015, 0.001, 0.0), (0.5, 4.5), (0.5, 0.8), (0.1, 0.3), (0.03, 0.08)),
    # Azure Kinect NFOV unbinned (time of flight): 75 x 65 deg field of view (fx / width
    # 0.652), 0.5-3.86 m operating range (Microsoft's hardware specification).
    "azure_kinect_nfov": SensorModel(
        "time_of_flight", (0.63, 0.67), 0.0, 0.0, (0.001, 0.0008, 0.0), (0.5, 3.86), (0.5, 0.8), (0.1, 0.3), (0.03, 0.08)
    ),
}


class DepthSensor:
    """One world's depth sensor: ``SensorModel`` ``name`` with its per-world draws.

    rng: the world's sensor stream. width, height: image size [px]; min_depth, max_depth:
    the generator's range [m] (``SyntheticConfig``), intersected with the sensor's.
    """

    def __init__(self, name: str, rng: np.random.Generator, width: int, height: int, min_depth: float, max_depth: float):
        self.name = name
        self.model = m = SENSORS[name]
        fx = rng.uniform(*m.focal_per_width) * width
        # Principal points of real units sit a few pixels off the centre.
        cx = (width - 1) / 2 + rng.uniform(-0.01, 0.01) * width
        cy = (height - 1) / 2 + rng.uniform(-0.01, 0.01) * height
        self.intrinsics = CameraIntrinsics(fx, fx, cx, cy, width, height)
        self.noise_scale = rng.uniform(0.8, 1.4)
        self.flying_pixels = rng.uniform(*m.flying_pixels)
        self.edge_dropout = rng.uniform(*m.edge_dropout)
        self.dark_albedo = np.float32(rng.uniform(*m.dark_albedo))
        self.shiny_dropout = np.float32(rng.uniform(0.5, 0.9))
        self.random_dropout = np.float32(rng.uniform(0.001, 0.006))
        self.grazing_cos = np.cos(np.radians([rng.uniform(70, 80), rng.uniform(85, 89)])).astype(np.float32)
        self.min_depth = max(min_depth, m.depth_range[0])
        self.max_depth = min(max_depth, m.depth_range[1])

    def measure(
        self, depth_clean: np.ndarray, cos_angle: np.ndarray, albedo_luma: np.ndarray, glass: np.ndarray, shiny: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """The (H, W) float32 depth [m] (0 = no measurement) the sensor reports.

        depth_clean (H, W) float32 [m] (0 = nothing in range); cos_angle (H, W): |cos| of the
        angle between ray and surface normal; albedo_luma (H, W): the surface's albedo luma
        0..1; glass, shiny (H, W) bool: the surface is glass (IR passes through: never
        measured) or glossy (the pattern is mirrored away: lost with probability
        ``shiny_dropout`` x (1 - cos_angle), so mostly when seen obliquely); rng: the frame's
        generator.
        """
        m = self.model
        z = depth_clean
        valid = z > 0
        a, b, c = (np.float32(x * self.noise_scale) for x in m.noise)
        depth = z + rng.standard_normal(z.shape, dtype=np.float32) * (a + z * (b + c * z))

        # Depth edges: the spread of the clean depth over the pixel and its 4 neighbours
        # (nothing in range counts as the far end of the range).
        far = np.where(valid, z, np.float32(self.max_depth))
        low, high = far.copy(), far.copy()
        for lo_, hi_, src in ((low[:, 1:], high[:, 1:], far[:, :-1]), (low[:, :-1], high[:, :-1], far[:, 1:]),
                              (low[1:], high[1:], far[:-1]), (low[:-1], high[:-1], far[1:])):  # fmt: skip
            np.minimum(lo_, src, out=lo_)
            np.maximum(hi_, src, out=hi_)
        edge = (high - low > np.float32(0.03) + np.float32(0.03) * z) & valid

        c0, c1 = self.grazing_cos
        p_drop = np.clip((c0 - cos_angle) / (c0 - c1), 0, 1)
        np.maximum(p_drop, np.where(shiny, self.shiny_dropout * (1 - cos_angle), np.float32(0)), out=p_drop)
        p_drop[glass] = 1.0
        # Dark surfaces: the return fades linearly below the threshold, none at half of it.
        np.maximum(p_drop, np.clip((self.dark_albedo - albedo_luma) / (np.float32(0.5) * self.dark_albedo), 0, 1), out=p_drop)
        p_drop[edge] = np.maximum(p_drop[edge], np.float32(self.edge_dropout))
        np.maximum(p_drop, self.random_dropout, out=p_drop)
        drop = rng.random(z.shape, dtype=np.float32) < p_drop

        # Flying pixels: some measured edge pixels report a depth between the two surfaces.
        candidates = np.flatnonzero(edge & ~drop)
        flying = candidates[rng.random(len(candidates)) < self.flying_pixels]
        mix = rng.random(len(flying)).astype(np.float32)
        depth.ravel()[flying] = low.ravel()[flying] + mix * (high.ravel()[flying] - low.ravel()[flying])

        if m.baseline > 0:
            drop |= self._shadow(z, valid)
        if m.disparity_step > 0:
            # Disparity ~ 1 / (k z) is measured in whole steps: depth comes in steps k z^2.
            k = np.float32(m.disparity_step)
            steps = np.round(np.float32(1) / (k * np.where(depth > self.min_depth / 2, depth, np.float32(1))))
            depth = np.float32(1) / (k * steps)
        else:
            depth = np.round(depth * np.float32(1000)) / np.float32(1000)
        drop |= ~valid | (depth < self.min_depth) | (depth > self.max_depth)  # on the reported values
        depth[drop] = 0.0
        return depth.astype(np.float32, copy=False)

    def _shadow(self, z: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(H, W) bool: pixels the projector (a baseline to the right) cannot light.

        A point at column x with disparity d = f B / z lies at column x - d of the
        projector's rectified image; it is occluded if a point further right lands at the
        same or a smaller projector column (a nearer surface in front of it).
        """
        disparity = np.where(valid, np.float32(self.intrinsics.fx * self.model.baseline) / np.where(valid, z, np.float32(1)), np.float32(0))
        projector = np.arange(z.shape[1], dtype=np.float32) - disparity
        right_min = np.minimum.accumulate(projector[:, ::-1], axis=1)[:, ::-1]  # min over x' >= x
        shadow = np.zeros(z.shape, dtype=bool)
        shadow[:, :-1] = right_min[:, 1:] < projector[:, :-1] - np.float32(1e-3)
        return shadow & valid
