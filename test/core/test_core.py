"""Unit tests of alster_mapping.core: camera, frame, label spaces and the config schema."""

import dataclasses
import re

import numpy as np
import pytest
import torch
import yaml
from tracker_poses import with_orthonormality_error

from alster_mapping.core import config as cfgmod
from alster_mapping.core.camera import CameraIntrinsics
from alster_mapping.core.config import LabelFusionConfig, MapConfig
from alster_mapping.core.frame import RGBDFrame
from alster_mapping.core.geometry import orthonormality_error
from alster_mapping.core.labels import SCANNET20_IDS, LabelSpace, nyu40, scannet20
from alster_mapping.pipeline.gravity import GravityConfig
from alster_mapping.pipeline.mapping_config import MappingConfig
from alster_mapping.train.recipes.alster import AlsterTrainConfig

W, H = 64, 48


def make_intrinsics(width=W, height=H, f=50.0):
    return CameraIntrinsics(f, f, (width - 1) / 2, (height - 1) / 2, width, height)


def make_frame(**overrides):
    rng = np.random.default_rng(0)
    kwargs = dict(
        color=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        depth=np.full((H, W), 1.5, dtype=np.float64),
        intrinsics=make_intrinsics(),
        T_world_camera=np.eye(4),
    )
    kwargs.update(overrides)
    return RGBDFrame(**kwargs)


# ---------------------------------------------------------------------------
# CameraIntrinsics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        ((0.0, 50.0, 31.5, 23.5, W, H), "focal"),
        ((50.0, -1.0, 31.5, 23.5, W, H), "focal"),
        ((float("nan"), 50.0, 31.5, 23.5, W, H), "fx"),
        ((50.0, 50.0, float("inf"), 23.5, W, H), "cx"),
        ((50.0, 50.0, 31.5, 23.5, 0, H), "size"),
        ((50.0, 50.0, 31.5, 23.5, W, -3), "size"),
        ((50.0, 50.0, 31.5, 23.5, 64.5, H), "integer"),
    ],
)
def test_intrinsics_rejects_invalid_values(args, fragment):
    with pytest.raises(ValueError, match=fragment):
        CameraIntrinsics(*args)


def test_intrinsics_from_matrix_and_K_round_trip():
    K = np.array([[500.0, 0.0, 320.5], [0.0, 510.0, 240.25], [0.0, 0.0, 1.0]])
    cam = CameraIntrinsics.from_matrix(K, 640, 480)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (500.0, 510.0, 320.5, 240.25)
    assert cam.shape == (480, 640)
    assert isinstance(cam.width, int) and isinstance(cam.height, int)
    np.testing.assert_array_equal(cam.K, K)
    assert cam.K.dtype == np.float64


@pytest.mark.parametrize(
    "K, fragment",
    [
        (np.eye(2), "3x3"),
        (np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 2.0]]), "pinhole"),
        (np.array([[500.0, 0, 320], [0.5, 500, 240], [0, 0, 1.0]]), "pinhole"),
        (np.array([[500.0, 3.0, 320], [0, 500, 240], [0, 0, 1.0]]), "skew"),
    ],
)
def test_intrinsics_from_matrix_rejects_non_pinhole(K, fragment):
    with pytest.raises(ValueError, match=fragment):
        CameraIntrinsics.from_matrix(K, 640, 480)


@pytest.mark.parametrize("new_size", [(32, 24), (128, 96), (100, 30), (640, 480)])
def test_resized_keeps_principal_point_at_centre_of_centred_camera(new_size):
    cam = CameraIntrinsics(50.0, 60.0, (W - 1) / 2, (H - 1) / 2, W, H)
    w, h = new_size
    r = cam.resized(w, h)
    assert (r.width, r.height) == (w, h)
    assert r.cx == pytest.approx((w - 1) / 2)
    assert r.cy == pytest.approx((h - 1) / 2)
    assert r.fx == pytest.approx(50.0 * w / W)
    assert r.fy == pytest.approx(60.0 * h / H)


def test_resized_maps_pixel_edges_onto_pixel_edges():
    cam = CameraIntrinsics(50.0, 60.0, 10.0, 7.0, W, H)
    r = cam.resized(2 * W, 2 * H)
    # The left image edge (u = -0.5) is at normalised x = (-0.5 - cx) / fx in both.
    assert (-0.5 - r.cx) / r.fx == pytest.approx((-0.5 - cam.cx) / cam.fx)
    assert (r.height - 0.5 - r.cy) / r.fy == pytest.approx((cam.height - 0.5 - cam.cy) / cam.fy)


# ---------------------------------------------------------------------------
# RGBDFrame
# ---------------------------------------------------------------------------


def test_valid_frame_converts_depth_to_float32_and_pose_to_float64():
    frame = make_frame(T_world_camera=np.eye(4, dtype=np.float32), stamp_ns=np.int64(7))
    assert frame.depth.dtype == np.float32
    assert frame.T_world_camera.dtype == np.float64
    assert frame.shape == (H, W)
    assert frame.stamp_ns == 7 and isinstance(frame.stamp_ns, int)
    np.testing.assert_allclose(frame.depth, 1.5)


def test_frame_accepts_integer_labels():
    labels = np.zeros((H, W), dtype=np.uint8)
    frame = make_frame(labels=labels)
    assert frame.labels.shape == (H, W)


def _scaled_rotation():
    T = np.eye(4)
    T[:3, :3] *= 1.1
    return T


def _reflection():
    T = np.eye(4)
    T[0, 0] = -1.0
    return T


def _bad_bottom_row():
    T = np.eye(4)
    T[3] = [0.0, 0.0, 0.5, 1.0]
    return T


def _non_finite_pose():
    T = np.eye(4)
    T[1, 3] = np.nan
    return T


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"color": np.zeros((H, W, 3), dtype=np.float32)}, "uint8"),
        ({"color": np.zeros((H, W, 4), dtype=np.uint8)}, "RGB"),
        ({"color": np.zeros((H, W), dtype=np.uint8)}, "RGB"),
        ({"color": np.zeros((H, W + 1, 3), dtype=np.uint8)}, "depth is"),
        ({"depth": np.ones((H, W, 1), dtype=np.float32)}, r"\(H, W\)"),
        (
            {
                "depth": np.ones((H + 2, W), dtype=np.float32),
                "color": np.zeros((H + 2, W, 3), dtype=np.uint8),
            },
            "intrinsics",
        ),
        ({"depth": np.full((H, W), 1500, dtype=np.uint16)}, "float32 metres"),
        ({"depth": np.full((H, W), 1500, dtype=np.int32)}, "float32 metres"),
        ({"T_world_camera": _non_finite_pose()}, "non-finite"),
        ({"T_world_camera": _scaled_rotation()}, "not rigid"),
        ({"T_world_camera": _reflection()}, "not rigid"),
        ({"T_world_camera": _bad_bottom_row()}, "bottom row"),
        ({"T_world_camera": np.eye(3)}, "4x4"),
        ({"labels": np.zeros((H, W + 1), dtype=np.int32)}, "label image"),
        ({"labels": np.zeros((H, W), dtype=np.float32)}, "integer"),
    ],
)
def test_frame_rejects_invalid_inputs_naming_the_problem(overrides, fragment):
    with pytest.raises(ValueError, match=fragment):
        make_frame(**overrides)


def test_frame_pose_errors_name_the_pose():
    with pytest.raises(ValueError, match="T_world_camera"):
        make_frame(T_world_camera=_reflection())


def test_frame_projects_a_nearly_rigid_pose_and_records_the_correction():
    noisy = with_orthonormality_error(np.eye(4), 1.1e-4)
    frame = make_frame(T_world_camera=noisy)
    assert frame.pose_correction == pytest.approx(1.1e-4, rel=0.02)
    assert orthonormality_error(frame.T_world_camera[:3, :3]) < 1e-12
    assert make_frame().pose_correction == 0.0
    # A frame rebuilt from the projected one (its pose now rigid) still counts as projected.
    rebuilt = dataclasses.replace(frame, stamp_ns=5)
    assert rebuilt.pose_correction == frame.pose_correction
    np.testing.assert_array_equal(rebuilt.T_world_camera, frame.T_world_camera)


# ---------------------------------------------------------------------------
# LabelSpace
# ---------------------------------------------------------------------------


def test_scannet20_has_the_benchmark_classes():
    space = scannet20()
    assert space.num_classes == 20
    assert space.ids == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
    assert space.ids == SCANNET20_IDS
    assert space.names[0] == "wall" and space.names[1] == "floor"
    assert space.names[space.ids.index(33)] == "toilet"
    assert space.names[space.ids.index(39)] == "otherfurniture"
    assert len(space.colors) == 20
    assert LabelSpace.load("scannet20") == space


def test_nyu40_has_40_classes():
    space = nyu40()
    assert space.num_classes == 40
    assert space.ids == tuple(range(1, 41))
    assert space.ignore_ids == (0,)
    assert LabelSpace.load("nyu40") == space


def test_encode_maps_ids_to_indices_and_ignored_ids_to_minus_one():
    space = scannet20()
    ids = np.array(SCANNET20_IDS, dtype=np.int32)
    np.testing.assert_array_equal(space.encode(ids).numpy(), np.arange(20))
    ignored = np.array([0, 13, 15, 17, 40], dtype=np.int64)
    np.testing.assert_array_equal(space.encode(ignored).numpy(), -1)
    image = np.array([[1, 0], [39, 13]], dtype=np.uint8)
    out = space.encode(image)
    assert out.dtype == torch.int64 and tuple(out.shape) == (2, 2)
    np.testing.assert_array_equal(out.numpy(), [[0, -1], [19, -1]])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.int64])
def test_encode_accepts_every_integer_dtype(dtype):
    space = scannet20()
    ids = np.array([[1, 2], [0, 39]], dtype=dtype)
    np.testing.assert_array_equal(space.encode(ids).numpy(), [[0, 1], [-1, 19]])


def test_encode_accepts_torch_tensors():
    space = scannet20()
    out = space.encode(torch.tensor([3, 0, 36]))
    np.testing.assert_array_equal(out.numpy(), [2, -1, 18])


@pytest.mark.parametrize("bad", [[41], [255, 1], [-1], [1000, 2, 41]])
def test_encode_unknown_ids_raise_listing_them(bad):
    space = scannet20()
    with pytest.raises(ValueError) as info:
        space.encode(np.array(bad, dtype=np.int64))
    message = str(info.value)
    assert "scannet20" in message
    for value in bad:
        if value not in SCANNET20_IDS:
            assert str(value) in message


def test_encode_rejects_float_labels():
    with pytest.raises(ValueError, match="integer"):
        scannet20().encode(np.array([1.0, 2.0]))


def test_decode_round_trip_and_unknown_handling():
    space = scannet20()
    rng = np.random.default_rng(1)
    ids = rng.choice(np.array(SCANNET20_IDS), size=(5, 7))
    decoded = space.decode(space.encode(ids))
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, ids)
    # -1 decodes to the unknown id (the first ignore id, 0 here).
    assert space.unknown_id == 0
    np.testing.assert_array_equal(space.decode(np.array([-1, 0, 19])), [0, 1, 39])
    np.testing.assert_array_equal(space.decode(torch.tensor([[-1, 2]])), [[0, 3]])


def test_unknown_id_without_ignore_ids_is_65535():
    space = LabelSpace("two", (0, 5), ("a", "b"), ((1, 2, 3), (4, 5, 6)), ignore_ids=())
    assert space.unknown_id == 65535
    np.testing.assert_array_equal(space.decode(np.array([-1, 0, 1])), [65535, 0, 5])
    with pytest.raises(ValueError, match=r"\[7\]"):
        space.encode(np.array([0, 7]))


def test_colorize_uses_palette_and_black_for_unknown():
    space = scannet20()
    idx = np.array([[0, -1], [19, 1]])
    rgb = space.colorize(idx)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert tuple(rgb[0, 0]) == space.colors[0]
    assert tuple(rgb[0, 1]) == (0, 0, 0)
    assert tuple(rgb[1, 0]) == space.colors[19]
    assert tuple(rgb[1, 1]) == space.colors[1]
    np.testing.assert_array_equal(space.colorize(torch.tensor([0, -1])), rgb[0])


def test_label_space_dict_and_json_round_trip():
    for space in (scannet20(), nyu40(), LabelSpace.load("label_fusion")):
        assert LabelSpace.from_dict(space.to_dict()) == space
        assert LabelSpace.from_json(space.to_json()) == space


def test_label_space_yaml_round_trip(tmp_path):
    space = scannet20()
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space.to_dict()))
    loaded = LabelSpace.from_yaml(path)
    assert loaded == space
    assert LabelSpace.load(str(path)) == space


def test_from_dict_fills_missing_names_and_colors():
    space = LabelSpace.from_dict({"name": "mini", "classes": [{"id": 3}, {"id": 9, "name": "nine"}]})
    assert space.names == ("class_3", "nine")
    assert len(space.colors) == 2 and space.colors[0] != space.colors[1]
    assert space.ignore_ids == (0,)


def test_load_label_fusion_space_from_config_dir():
    space = LabelSpace.load("label_fusion")
    assert space.name == "label_fusion"
    assert space.ids == (0, 48, 132)
    assert space.ignore_ids == ()
    assert space.names == ("background", "object_48", "object_132")
    np.testing.assert_array_equal(space.encode(np.array([0, 48, 132])).numpy(), [0, 1, 2])


def test_load_searches_labelspace_path_env(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text(
        yaml.safe_dump({"name": "mine", "classes": [{"id": 1, "name": "a", "color": [1, 2, 3]}]})
    )
    monkeypatch.setenv("ALSTER_LABELSPACE_PATH", str(tmp_path))
    space = LabelSpace.load("mine")
    assert space.name == "mine" and space.ids == (1,)


def test_load_unknown_name_raises():
    with pytest.raises(ValueError, match="no_such_space"):
        LabelSpace.load("no_such_space")


@pytest.mark.parametrize(
    "text",
    [
        "name: x\nclasses: [{id: 1, name: a\n",  # YAML syntax error
        "just a string\n",
        "name: x\nclasses: 3\n",
        "name: x\nclasses:\n  - {name: no_id}\n",
        "name: x\nclasses:\n  - {id: 1, color: [1, 2]}\n",
        "name: x\nclasses:\n  - {id: 1}\n  - {id: 1}\n",
        "name: x\nclasses:\n  - {id: 1, color: 7}\n",
        "name: x\nignore_ids: [1]\nclasses:\n  - {id: 1}\n",
        "",
    ],
)
def test_malformed_yaml_raises_value_error_naming_file(tmp_path, text):
    path = tmp_path / "broken_space.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="broken_space.yaml"):
        LabelSpace.from_yaml(path)


def test_missing_yaml_file_raises_value_error_naming_file(tmp_path):
    with pytest.raises(ValueError, match="absent.yaml"):
        LabelSpace.from_yaml(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    "data",
    [
        {"classes": [{"id": 1, "color": None}]},
        {"classes": [{"id": None}]},
        {"classes": [{"id": "one"}]},
        {"classes": [{"id": 1}], "ignore_ids": None},
        {"classes": [{"id": 1}], "ignore_ids": 5},
        {"classes": [{"id": 1, "color": [1, 2, "x"]}]},
        {"classes": {"id": 1}},
        ["not", "a", "mapping"],
    ],
)
def test_label_space_from_dict_malformed_raises_value_error(data):
    # from_dict documents "raises ValueError if malformed", whatever the malformation.
    with pytest.raises(ValueError):
        LabelSpace.from_dict(data)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(name="e", ids=(), names=(), colors=()), "no classes"),
        (dict(name="d", ids=(1, 1), names=("a", "b"), colors=((0, 0, 0), (0, 0, 0))), "duplicate"),
        (dict(name="n", ids=(1, 2), names=("a",), colors=((0, 0, 0), (0, 0, 0))), "names"),
        (dict(name="c", ids=(1,), names=("a",), colors=((0, 0, 300),)), "colors"),
        (dict(name="r", ids=(70000,), names=("a",), colors=((0, 0, 0),)), "65535"),
    ],
)
def test_label_space_validation(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        LabelSpace(**kwargs)


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


def test_default_config_validates():
    cfg = MappingConfig()
    assert cfgmod.validate(cfg) is cfg
    assert cfg.map.voxel_size == 0.04
    assert cfg.label_space == "scannet20"
    assert cfgmod.from_dict(MappingConfig, {}) == cfg
    assert cfgmod.from_dict(MappingConfig, cfgmod.to_dict(cfg)) == cfg


def test_from_dict_builds_nested_sections():
    cfg = cfgmod.from_dict(MappingConfig, {"map": {"voxel_size": 0.02, "feature_dim": 8}, "label_fusion": {"max_range": 4}})
    assert cfg.map.voxel_size == 0.02 and cfg.map.feature_dim == 8
    assert cfg.label_fusion.max_range == 4.0 and isinstance(cfg.label_fusion.max_range, float)
    assert cfg.map.block_size == 4  # untouched default


@pytest.mark.parametrize(
    "data, key",
    [
        ({"bogus": 1}, "bogus"),
        ({"map": {"voxelsize": 0.1}}, "map.voxelsize"),
        ({"label_fusion": {"max_rang": 1.0}}, "label_fusion.max_rang"),
    ],
)
def test_from_dict_rejects_unknown_keys_with_dotted_key(data, key):
    with pytest.raises(ValueError, match="unknown") as info:
        cfgmod.from_dict(MappingConfig, data)
    assert key in str(info.value)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"map": {"voxel_size": 0.0001}}, "map.voxel_size"),
        ({"map": {"voxel_size": 5.0}}, "map.voxel_size"),
        ({"map": {"voxel_size": float("inf")}}, "map.voxel_size"),
        ({"map": {"voxel_size": "abc"}}, "map.voxel_size"),
        ({"map": {"feature_dim": 0}}, "map.feature_dim"),
        ({"map": {"feature_dim": 2.5}}, "map.feature_dim"),
        ({"map": {"feature_dim": True}}, "map.feature_dim"),
        ({"map": {"block_size": 17}}, "map.block_size"),
        ({"map": {"max_bytes": -1}}, "map.max_bytes"),
        ({"label_fusion": {"min_range": -0.5}}, "label_fusion.min_range"),
        ({"label_fusion": {"max_range": 1000.0}}, "label_fusion.max_range"),
        ({"label_fusion": {"evidence_weight_cap": 0}}, "label_fusion.evidence_weight_cap"),
        ({"label_space": 3}, "label_space"),
        ({"map": 3}, "map"),
    ],
)
def test_from_dict_rejects_bad_values_with_dotted_key(data, key):
    with pytest.raises(ValueError) as info:
        cfgmod.from_dict(MappingConfig, data)
    assert key in str(info.value)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"map": {"voxel_size": float("nan")}}, "map.voxel_size"),
        ({"label_fusion": {"max_range": float("nan")}}, "label_fusion.max_range"),
        ({"label_fusion": {"min_range": float("nan")}}, "label_fusion.min_range"),
    ],
)
def test_from_dict_rejects_nan_for_ranged_float_keys(data, key):
    # NaN is not inside any [min, max] range; it must not pass validation.
    with pytest.raises(ValueError) as info:
        cfgmod.from_dict(MappingConfig, data)
    assert key in str(info.value)


def test_apply_overrides_from_cli_strings():
    base = MappingConfig()
    cfg = cfgmod.apply_overrides(base, ["map.voxel_size=0.02", "label_space=nyu40", "map.max_bytes = 1000"])
    assert cfg.map.voxel_size == 0.02
    assert cfg.label_space == "nyu40"
    assert cfg.map.max_bytes == 1000
    # A copy: the original is unchanged.
    assert base.map.voxel_size == 0.04 and base.label_space == "scannet20"


def test_apply_overrides_reads_exponents_without_a_dot_as_floats():
    # YAML 1.1 parses "5e-4" as a string; a float field must still get the number.
    cfg = cfgmod.apply_overrides(AlsterTrainConfig(), ["joint.max_lr=5e-4", "mapping.map.voxel_size=2e-2"])
    assert cfg.joint.max_lr == 5e-4 and cfg.mapping.map.voxel_size == 0.02
    with pytest.raises(ValueError, match="expected float"):
        cfgmod.apply_overrides(AlsterTrainConfig(), ["joint.max_lr=fast"])


def test_apply_overrides_from_dict():
    cfg = cfgmod.apply_overrides(MappingConfig(), {"map.voxel_size": 0.02, "label_fusion.min_range": 0.3})
    assert cfg.map.voxel_size == 0.02
    assert cfg.label_fusion.min_range == 0.3


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["map.voxel_size=abc"], "map.voxel_size"),
        (["map.voxel_size=9"], "map.voxel_size"),
        (["map.nope=1"], "map.nope"),
        (["map=1"], "map"),
        (["map.voxel_size"], "KEY=VALUE"),
        ({"label_fusion.max_range": -1.0}, "label_fusion.max_range"),
    ],
)
def test_apply_overrides_rejects_bad_overrides(overrides, fragment):
    with pytest.raises(ValueError, match=fragment):
        cfgmod.apply_overrides(MappingConfig(), overrides)


@pytest.mark.parametrize("override", ["map.voxel_size=[1", 'label_space="unterminated', "map.voxel_size={a"])
def test_apply_overrides_unparsable_value_raises_value_error(override):
    # A CLI --set whose value is not valid YAML is a user error: ValueError naming the key.
    with pytest.raises(ValueError, match=re.escape(override.split("=")[0])):
        cfgmod.apply_overrides(MappingConfig(), [override])


def test_load_yaml_of_written_file(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump({"label_space": "nyu40", "map": {"voxel_size": 0.05, "feature_dim": 41}}))
    cfg = cfgmod.load_yaml(MappingConfig, path)
    assert cfg.label_space == "nyu40" and cfg.map.voxel_size == 0.05 and cfg.map.feature_dim == 41
    # The dumped form of a config loads back to an equal config.
    path.write_text(yaml.safe_dump(cfgmod.to_dict(cfg)))
    assert cfgmod.load_yaml(MappingConfig, path) == cfg
    # An empty file gives the defaults.
    path.write_text("")
    assert cfgmod.load_yaml(MappingConfig, path) == MappingConfig()


@pytest.mark.parametrize("text", ["map: {voxel_size: 7}\n", "map: [1, 2\n", "unknown_section: {}\n", "- 1\n- 2\n"])
def test_load_yaml_errors_name_the_file(tmp_path, text):
    path = tmp_path / "bad_config.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad_config.yaml"):
        cfgmod.load_yaml(MappingConfig, path)


def test_load_yaml_missing_file_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="missing.yaml"):
        cfgmod.load_yaml(MappingConfig, tmp_path / "missing.yaml")


def test_flatten_lists_every_leaf_with_help():
    flat = cfgmod.flatten(MappingConfig())
    expected = {"label_space"}
    expected |= {f"map.{f.name}" for f in dataclasses.fields(MapConfig)}
    expected |= {f"label_fusion.{f.name}" for f in dataclasses.fields(LabelFusionConfig)}
    expected |= {f"gravity.{f.name}" for f in dataclasses.fields(GravityConfig)}
    assert expected <= set(flat)
    assert {k for k in flat if not k.startswith(("model.", "alster.", "instances.", "keyframes.", "refine.", "completion."))} == expected | {"mode"}
    assert {"instances.model", "instances.region_radius", "instances.segmentation.bandwidth"} <= set(flat)
    assert {"keyframes.max_count", "refine.checkpoint", "refine.chunks.points", "completion.checkpoint"} <= set(flat)
    assert {"model.inputs", "model.focal_gamma", "model.unet3d.channels", "model.expert.layers", "model.encoder2d.backbone"} <= set(flat)
    assert "map.voxel_size" in flat and "label_fusion.max_range" in flat
    for key, (value, f) in flat.items():
        assert isinstance(f, dataclasses.Field)
        assert isinstance(f.metadata.get("help"), str) and f.metadata["help"].strip(), key
        assert not dataclasses.is_dataclass(value), key
    assert flat["map.voxel_size"][0] == 0.04
    assert flat["map.voxel_size"][1].metadata["min"] == 0.002


@pytest.mark.parametrize(
    "args, fragment",
    [
        ((50.0, 50.0, 1e6, 23.5, W, H), "principal point cx"),
        ((50.0, 50.0, 31.5, -3.0, W, H), "principal point cy"),
        ((50.0, 50.0, W + 0.0, 23.5, W, H), "principal point cx"),
        ((1e-3, 50.0, 31.5, 23.5, W, H), "field of view"),
        ((50.0, 1e9, 31.5, 23.5, W, H), "field of view"),
    ],
)
def test_intrinsics_reject_what_no_camera_has(args, fragment):
    with pytest.raises(ValueError, match=fragment):
        CameraIntrinsics(*args)


def test_intrinsics_accept_real_cameras_and_their_edges():
    CameraIntrinsics(615.0, 615.0, 319.5, 239.5, 640, 480)  # RealSense D435 colour
    CameraIntrinsics(200.0, 200.0, -0.5, 479.5, 640, 480)  # principal point on the image's edge
    CameraIntrinsics(30.0, 30.0, 319.5, 239.5, 640, 480)  # about 168 degrees wide


def test_downscaled_intrinsics_and_images_stay_consistent():
    from alster_mapping.core.downscale import downscale_images
    from alster_mapping.core.geometry import backproject

    cam = CameraIntrinsics(50.0, 60.0, 31.5, 23.5, 64, 48)
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    depth = np.full((48, 64), 2.0, np.float32)
    depth[:, 40:] = 3.0  # a depth edge: never averaged
    labels = rng.integers(0, 40, (48, 64)).astype(np.uint16)
    for f in (1, 2, 3):
        c, d, lab = downscale_images(color, depth, labels, f)
        small = cam.downscaled(f)
        assert c.shape == (48 // f, 64 // f, 3) and d.shape == lab.shape == small.shape
        assert set(np.unique(d).tolist()) <= {2.0, 3.0}
        np.testing.assert_array_equal(lab, labels[f // 2 :: f, f // 2 :: f][: 48 // f, : 64 // f])
        if f == 2:
            np.testing.assert_allclose(c[0, 0], color[:2, :2].reshape(-1, 3).mean(0), atol=0.5)
        # The centre pixel's ray points the same way before and after.
        points, _ = backproject(torch.from_numpy(np.ones(small.shape, np.float32)), small, 10.0)
        centre = points.reshape(small.height, small.width, 3)[small.height // 2, small.width // 2]
        u = f * (small.width // 2) + (f - 1) / 2
        v = f * (small.height // 2) + (f - 1) / 2
        np.testing.assert_allclose(centre[:2].numpy(), [(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy], atol=1e-6)
    with pytest.raises(ValueError):
        downscale_images(color, depth, labels, 0)


def test_downscale_frame_scales_every_image_and_the_intrinsics():
    from alster_mapping.core.downscale import downscale_frame, downscale_images

    cam = CameraIntrinsics(50.0, 60.0, 31.5, 23.5, 64, 48)
    rng = np.random.default_rng(1)
    frame = RGBDFrame(
        color=rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
        depth=np.full((48, 64), 2.0, np.float32),
        intrinsics=cam,
        T_world_camera=np.eye(4),
        stamp_ns=7,
        labels=rng.integers(0, 40, (48, 64)).astype(np.uint16),
        instances=rng.integers(0, 9, (48, 64)).astype(np.int32),
    )
    small = downscale_frame(frame, 2)
    color, depth, labels = downscale_images(frame.color, frame.depth, frame.labels, 2)
    np.testing.assert_array_equal(small.color, color)
    np.testing.assert_array_equal(small.labels, labels)
    np.testing.assert_array_equal(small.instances, frame.instances[1::2, 1::2])
    assert small.intrinsics == cam.downscaled(2) and small.stamp_ns == 7
    assert downscale_frame(frame, 1).instances is frame.instances


def test_resize_nearest_takes_the_pixel_under_each_centre():
    from alster_mapping.core.downscale import resize_nearest

    image = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(resize_nearest(image, (4, 6)), np.repeat(np.repeat(image, 2, 0), 2, 1))
    np.testing.assert_array_equal(resize_nearest(np.arange(16).reshape(4, 4), (2, 2)), [[5, 7], [13, 15]])
    assert resize_nearest(np.zeros((5, 7, 3)), (3, 2)).shape == (3, 2, 3)
