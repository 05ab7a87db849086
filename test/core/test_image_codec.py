from types import SimpleNamespace

import numpy as np
import pytest

from alster_mapping.core.camera import CameraIntrinsics
from alster_mapping.core.image_codec import (
    CameraInfoError,
    ImageEncodingError,
    array_to_image_fields,
    camera_info_fields,
    color_to_rgb,
    depth_to_metres,
    image_to_array,
    intrinsics_from_camera_info,
    read_image_file,
    write_image_file,
)

RNG = np.random.default_rng(3)
RGB = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)


def msg(array, enc, **override):
    fields = array_to_image_fields(array, enc)
    fields.update(override)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize(
    "encoding, array",
    [
        ("rgb8", RGB),
        ("bgr8", RGB),
        ("rgba8", RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8)),
        ("mono8", RGB[:, :, 0]),
        ("16UC1", RNG.integers(0, 65536, (6, 5), dtype=np.uint16)),
        ("mono16", RNG.integers(0, 65536, (6, 5), dtype=np.uint16)),
        ("32FC1", RNG.normal(size=(6, 5)).astype(np.float32)),
    ],
)
def test_round_trip(encoding, array):
    fields = array_to_image_fields(array, encoding)
    assert fields["step"] * fields["height"] == fields["data"].size and fields["data"].dtype == np.uint8
    out = image_to_array(SimpleNamespace(**fields))
    assert out.dtype == array.dtype and np.array_equal(out, array)


def test_colour_orders():
    np.testing.assert_array_equal(color_to_rgb(msg(RGB, "rgb8")), RGB)
    np.testing.assert_array_equal(color_to_rgb(msg(RGB[:, :, ::-1].copy(), "bgr8")), RGB)
    rgba = np.concatenate([RGB, np.full((6, 5, 1), 7, np.uint8)], 2)
    np.testing.assert_array_equal(color_to_rgb(msg(rgba, "rgba8")), RGB)
    bgra = np.concatenate([RGB[:, :, ::-1], np.full((6, 5, 1), 7, np.uint8)], 2)
    np.testing.assert_array_equal(color_to_rgb(msg(bgra, "bgra8")), RGB)
    grey = color_to_rgb(msg(RGB[:, :, 1].copy(), "mono8"))
    assert grey.shape == (6, 5, 3) and np.array_equal(grey[:, :, 2], RGB[:, :, 1])
    with pytest.raises(ImageEncodingError, match="not a colour encoding"):
        color_to_rgb(msg(np.zeros((2, 2), np.uint16), "16UC1"))


def test_step_padding_and_big_endian():
    depth = np.array([[1, 2, 3], [258, 65535, 0]], dtype=np.uint16)
    step = 3 * 2 + 4
    rows = np.zeros((2, step), np.uint8)
    rows[:, :6] = depth.astype(">u2").view(np.uint8).reshape(2, 6)
    m = SimpleNamespace(height=2, width=3, encoding="16UC1", is_bigendian=1, step=step, data=rows.tobytes())
    np.testing.assert_array_equal(image_to_array(m), depth)
    # The same buffer as a Python array.array / list, as rclpy hands it over.
    import array

    m.data = array.array("B", rows.tobytes())
    np.testing.assert_array_equal(image_to_array(m), depth)
    m.data = list(rows.tobytes())
    np.testing.assert_array_equal(image_to_array(m), depth)


def test_depth_conversion():
    mm = np.array([[0, 1000], [1500, 65535]], np.uint16)
    np.testing.assert_allclose(depth_to_metres(msg(mm, "16UC1")), [[0, 1.0], [1.5, 65.535]], rtol=1e-6)
    np.testing.assert_allclose(depth_to_metres(msg(mm, "mono16"), depth_scale=0.0001)[1, 0], 0.15, rtol=1e-6)
    metres = np.array([[np.nan, 1.25], [np.inf, 0.0]], np.float32)
    out = depth_to_metres(msg(metres, "32FC1"))
    assert out.dtype == np.float32 and np.isnan(out[0, 0]) and np.isinf(out[1, 0]) and out[0, 1] == 1.25
    with pytest.raises(ImageEncodingError, match="not a depth encoding"):
        depth_to_metres(msg(RGB, "rgb8"))


def test_errors():
    with pytest.raises(ImageEncodingError, match="unsupported image encoding 'yuv422'"):
        image_to_array(msg(RGB, "rgb8", encoding="yuv422"))
    with pytest.raises(ImageEncodingError, match="needs 90 bytes, got 89"):
        image_to_array(msg(RGB, "rgb8", data=np.zeros(89, np.uint8)))
    with pytest.raises(ImageEncodingError, match="step 14"):
        image_to_array(msg(RGB, "rgb8", step=14))
    with pytest.raises(ImageEncodingError, match="empty"):
        image_to_array(msg(RGB, "rgb8", height=0))
    with pytest.raises(ImageEncodingError, match="uint16"):
        array_to_image_fields(np.zeros((2, 2), np.float32), "16UC1")
    with pytest.raises(ImageEncodingError, match="channel"):
        array_to_image_fields(np.zeros((2, 2), np.uint8), "rgb8")
    assert issubclass(ImageEncodingError, ValueError)


def test_camera_info():
    K = CameraIntrinsics(500.0, 510.0, 319.5, 239.5, 640, 480)
    info = SimpleNamespace(**camera_info_fields(K))
    assert intrinsics_from_camera_info(info) == K
    assert info.p.shape == (12,) and info.p[2] == 319.5
    zero = SimpleNamespace(**{**camera_info_fields(K), "k": np.zeros(9)})
    with pytest.raises(CameraInfoError, match="focal"):
        intrinsics_from_camera_info(zero)
    with pytest.raises(CameraInfoError, match="size"):
        intrinsics_from_camera_info(SimpleNamespace(**{**camera_info_fields(K), "width": 0}))
    with pytest.raises(CameraInfoError, match="9 entries"):
        intrinsics_from_camera_info(SimpleNamespace(**{**camera_info_fields(K), "k": np.ones(4)}))
    skewed = K.K.copy()
    skewed[0, 1] = 1.0
    with pytest.raises(CameraInfoError, match="skew"):
        intrinsics_from_camera_info(SimpleNamespace(**{**camera_info_fields(K), "k": skewed.reshape(-1)}))


def test_image_files(tmp_path):
    depth = np.array([[0, 1], [65535, 1234]], np.uint16)
    write_image_file(tmp_path / "d.png", depth)
    out, mode = read_image_file(tmp_path / "d.png")
    assert out.dtype == np.uint16 and np.array_equal(out, depth)
    write_image_file(tmp_path / "c.png", RGB)
    assert np.array_equal(read_image_file(tmp_path / "c.png")[0], RGB)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="bad.png"):
        read_image_file(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="missing.png"):
        read_image_file(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="16-bit"):
        write_image_file(tmp_path / "d.jpg", depth)


@pytest.mark.ros
def test_rclpy_messages():
    pytest.importorskip("rclpy")
    from sensor_msgs.msg import CameraInfo
    from sensor_msgs.msg import Image as RosImage

    depth = np.arange(12, dtype=np.uint16).reshape(3, 4)
    image = RosImage(**array_to_image_fields(depth, "16UC1"))
    np.testing.assert_allclose(depth_to_metres(image), depth / 1000.0, rtol=1e-6)
    K = CameraIntrinsics(5.0, 6.0, 1.5, 1.0, 4, 3)
    assert intrinsics_from_camera_info(CameraInfo(**camera_info_fields(K))) == K
