import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from alster_mapping.core.geometry import interpolate_pose, invert_se3
from alster_mapping.core.tf_buffer import (
    MAX_DEPTH,
    ExtrapolationError,
    FrameNotFound,
    NotConnected,
    TransformBuffer,
    TransformError,
)

S = 1_000_000_000


def pose(rotvec, t):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


A = pose([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
B = pose([0.0, 0.0, np.pi / 2], [2.0, 0.0, 0.0])
EXTRINSIC = pose([0.1, -0.2, 0.3], [0.1, 0.0, 0.3])


def robot_buffer(**kwargs):
    buf = TransformBuffer(**kwargs)
    buf.set_transform("map", "base_link", A, 1 * S)
    buf.set_transform("map", "base_link", B, 2 * S)
    buf.set_transform("base_link", "camera", EXTRINSIC, 0, static=True)
    return buf


def test_lookup_chain_and_interpolation():
    buf = robot_buffer()
    np.testing.assert_allclose(buf.lookup("map", "camera", 1 * S), A @ EXTRINSIC, atol=1e-12)
    np.testing.assert_allclose(buf.lookup("map", "camera", 2 * S), B @ EXTRINSIC, atol=1e-12)
    mid = buf.lookup("map", "base_link", int(1.25 * S))
    np.testing.assert_allclose(mid, interpolate_pose(A, B, 0.25), atol=1e-12)
    np.testing.assert_allclose(mid[:3, 3], [0.5, 0.0, 0.0], atol=1e-12)
    angle = Rotation.from_matrix(mid[:3, :3]).as_rotvec()
    np.testing.assert_allclose(angle, [0.0, 0.0, np.pi / 8], atol=1e-12)


def test_inverse_and_sibling_lookups():
    buf = robot_buffer()
    buf.set_transform("map", "landmark", pose([0.3, 0, 0], [5, 5, 0]), 0, static=True)
    T = buf.lookup("camera", "map", int(1.5 * S))
    np.testing.assert_allclose(T, invert_se3(buf.lookup("map", "camera", int(1.5 * S))), atol=1e-12)
    # Through the common ancestor "map": camera -> landmark.
    expected = invert_se3(interpolate_pose(A, B, 0.5) @ EXTRINSIC) @ pose([0.3, 0, 0], [5, 5, 0])
    np.testing.assert_allclose(buf.lookup("camera", "landmark", int(1.5 * S)), expected, atol=1e-12)
    np.testing.assert_allclose(buf.lookup("camera", "camera", 123), np.eye(4))


def test_extrapolation_tolerance():
    buf = robot_buffer()
    with pytest.raises(ExtrapolationError, match=r"map -> base_link.*|100\.000 ms") as info:
        buf.lookup("map", "camera", int(0.9 * S))
    assert "100.000 ms" in str(info.value) and "map -> base_link" in str(info.value)
    np.testing.assert_allclose(buf.lookup("map", "camera", int(0.9 * S), tolerance_ns=S // 10), A @ EXTRINSIC)
    np.testing.assert_allclose(buf.lookup("map", "camera", int(2.05 * S), tolerance_ns=S // 10), B @ EXTRINSIC)
    with pytest.raises(ExtrapolationError, match="after the last"):
        buf.lookup("map", "camera", int(2.2 * S), tolerance_ns=S // 10)
    assert not buf.can_transform("map", "camera", int(2.2 * S))
    assert buf.can_transform("map", "camera", int(1.7 * S))
    assert isinstance(ExtrapolationError("x"), ValueError)


def test_latest_common_time():
    buf = robot_buffer()
    buf.set_transform("odom", "x", A, 5 * S)
    np.testing.assert_allclose(buf.lookup("map", "camera", None), B @ EXTRINSIC, atol=1e-12)


def test_unknown_and_unconnected_frames():
    buf = robot_buffer()
    buf.set_transform("odom", "wheel", A, 0, static=True)
    with pytest.raises(FrameNotFound, match="nowhere"):
        buf.lookup("map", "nowhere", S)
    with pytest.raises(NotConnected, match="not connected"):
        buf.lookup("map", "wheel", S)
    assert issubclass(FrameNotFound, LookupError) and issubclass(NotConnected, TransformError)


def test_out_of_order_duplicates_and_leading_slash():
    buf = TransformBuffer()
    buf.set_transform("/map", "base", B, 2 * S)
    buf.set_transform("map", "base", pose([0, 0, 0], [9, 9, 9]), 1 * S)
    buf.set_transform("map", "base", A, 1 * S)  # duplicate stamp replaces
    assert buf.time_range("map", "base") == (1 * S, 2 * S)
    np.testing.assert_allclose(buf.lookup("map", "/base", int(1.5 * S)), interpolate_pose(A, B, 0.5), atol=1e-12)


def test_cache_bounds_history():
    buf = TransformBuffer(cache_ns=S)
    for i in range(5):
        buf.set_transform("map", "base", pose([0, 0, 0], [i, 0, 0]), i * S)
    assert buf.time_range("map", "base") == (3 * S, 4 * S)
    unbounded = TransformBuffer(cache_ns=None)
    for i in range(5):
        unbounded.set_transform("map", "base", pose([0, 0, 0], [i, 0, 0]), i * S)
    assert unbounded.time_range("map", "base") == (0, 4 * S)


def test_reparent_replaces_and_cycles_are_rejected():
    buf = robot_buffer()
    buf.set_transform("odom", "base_link", B, 5 * S)
    assert buf.parent_of("base_link") == "odom" and buf.reparented == 1
    np.testing.assert_allclose(buf.lookup("odom", "camera", 5 * S), B @ EXTRINSIC)
    with pytest.raises(NotConnected):
        buf.lookup("map", "camera", 5 * S)
    with pytest.raises(TransformError, match="cycle"):
        buf.set_transform("camera", "odom", A, 0, static=True)
    with pytest.raises(TransformError, match="itself"):
        buf.set_transform("a", "a", A, 0)


def test_rejects_non_rigid():
    buf = TransformBuffer()
    with pytest.raises(TransformError, match="map -> base"):
        buf.set_transform("map", "base", np.diag([2.0, 1.0, 1.0, 1.0]), 0)
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(TransformError):
        buf.set_transform("map", "base", bad, 0)


def test_gaps_beyond_max_gap_are_not_interpolated():
    from alster_mapping.core.tf_buffer import InterpolationGapError

    buf = robot_buffer()  # samples at 1 s and 2 s
    np.testing.assert_allclose(buf.lookup("map", "base_link", 1_500_000_000, max_gap_ns=S), interpolate_pose(A, B, 0.5))
    with pytest.raises(InterpolationGapError, match="gap"):
        buf.lookup("map", "base_link", 1_500_000_000, max_gap_ns=S // 2)
    # Exact samples and the static edge need no interpolation.
    np.testing.assert_allclose(buf.lookup("map", "base_link", 2 * S, max_gap_ns=1), B)
    assert not buf.can_transform("map", "camera", 1_500_000_000, max_gap_ns=S // 2)


def test_chains_deeper_than_max_depth_are_refused_link_by_link():
    buf = TransformBuffer(max_depth=10)
    T = np.eye(4)
    for i in range(9):
        buf.set_transform(f"f{i}", f"f{i + 1}", T, 0, static=True)
    with pytest.raises(TransformError, match="more than 10 links"):
        buf.set_transform("f9", "f10", T, 0, static=True)
    np.testing.assert_array_equal(buf.lookup("f0", "f9", None), T)  # the accepted part still works
    # A 10,000-link chain: every link that would reach past max_depth is refused (each check
    # walks at most max_depth links), so no frame ends up more than max_depth below its root.
    big = TransformBuffer()
    refused = 0
    for i in range(10_000):
        try:
            big.set_transform(f"g{i}", f"g{i + 1}", T, 0, static=True)
        except TransformError:
            refused += 1
    assert refused == 10_000 // MAX_DEPTH
    assert big.can_transform("g0", f"g{MAX_DEPTH - 1}", None) and not big.can_transform("g0", "g10000", None)
