"""``SyntheticConfig``: the knobs of the synthetic world generator (sensor, trajectory, room, noise)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SyntheticConfig:
    """Knobs of the generator; the defaults mimic a handheld ScanNet capture.

    Times in nanoseconds or seconds, lengths in metres, angles in degrees.
    """

    frame_period_ns: int = 100_000_000
    """Time between consecutive trajectory frames (10 Hz)."""
    speed_range: tuple[float, float] = (0.3, 0.5)
    """Walking speed [m/s]; each world draws one constant speed from this range."""
    height_range: tuple[float, float] = (1.2, 1.8)
    """Camera height above the floor [m]; varies smoothly within the range."""
    pitch_range_deg: tuple[float, float] = (10.0, 35.0)
    """Downward pitch of the optical axis [deg]; varies smoothly within the range."""
    wall_clearance: float = 0.4
    """Minimum distance of the camera from the walls [m]."""
    furniture_clearance: float = 0.1
    """Minimum distance of the camera from any furniture footprint (axis-aligned box) [m]."""
    room_x_range: tuple[float, float] = (4.5, 7.0)
    room_y_range: tuple[float, float] = (4.0, 6.0)
    room_height_range: tuple[float, float] = (2.5, 2.9)
    max_depth: float = 5.0
    """Sensor range [m]: depth (and depth_clean) is 0 beyond it."""
    min_depth: float = 0.3
    """Closest measurable depth [m]: noisy depth is 0 below it."""
    noise: bool = True
    """False: depth equals depth_clean (still cut to the range) and colour has no pixel noise
    (nor, in the non-classic styles, blur or JPEG artefacts)."""
    color_noise: float = 3.0
    """Standard deviation of the Gaussian colour noise [uint8 units]."""
    grazing_angle_deg: tuple[float, float] = (75.0, 88.0)
    """Depth dropout probability rises linearly from 0 to 1 between these angles of ray and normal."""
    edge_dropout: float = 0.6
    """Dropout probability of pixels at depth discontinuities."""
    random_dropout: float = 0.003
    """Dropout probability of any other pixel."""
    depth_quantum: float = 0.001
    """Depth quantisation [m] (ScanNet stores millimetres); 0 disables it."""
    point_density: float = 2500.0
    """Ground-truth points per square metre of surface (2500 = one per 4 cm^2)."""
    hidden_tolerance: float = 0.004
    """Ground-truth points within this distance [m] inside another part or the room shell are dropped."""
    focal_per_width: float = 577.870605 / 640.0
    """fx = fy = focal_per_width * width [px] (ScanNet's depth camera: about 58 deg horizontal FoV).
    Classic style only: the other styles take the focal length of their drawn sensor."""
    style: str = "classic"
    """How the world looks (``style.STYLES``): "classic" (the default) is the original look, bit
    for bit; "randomized" is the training style of domain randomization (each world draws
    materials, textures, lights, colour camera and depth sensor from the training families,
    and gets shape variants and clutter); "shifted" draws the same kinds of things from
    held-out families only (the robustness benchmark's unseen look, same rooms as
    "randomized"). ``color_noise``, ``grazing_angle_deg``, ``edge_dropout``,
    ``random_dropout``, ``depth_quantum`` and ``focal_per_width`` apply to "classic" only; the
    other styles take these from their sensor and imaging families."""
