"""Unit tests of the ROS conversions: MapArrays <-> PointCloud2 (ros/cloud.py) and
config dataclasses <-> ROS parameters (ros/params.py). In-process, no subprocesses."""

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

import yaml  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import PointCloud2, PointField  # noqa: E402

from alster_mapping.core.config import flatten, load_yaml  # noqa: E402
from alster_mapping.map.voxel_map import MapArrays  # noqa: E402
from alster_mapping.pipeline.mapping_config import MappingConfig  # noqa: E402
from alster_mapping.ros.cloud import (  # noqa: E402
    POINT_STEP,
    arrays_to_cloud,
    cloud_to_arrays,
    pack_rgb,
    unpack_rgb,
)
from alster_mapping.ros.node_config import MapServerConfig  # noqa: E402
from alster_mapping.ros.params import (  # noqa: E402
    INT64_MAX,
    ParameterError,
    apply_parameters,
    declare_config,
    parameters_to_config,
)

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def random_arrays(n: int, seed: int = 0) -> MapArrays:
    rng = np.random.default_rng(seed)
    label_index = rng.integers(-1, 20, n).astype(np.int16)
    return MapArrays(
        xyz=rng.normal(0, 5, (n, 3)).astype(np.float32),
        color=rng.integers(0, 256, (n, 3), dtype=np.uint8),
        label_color=rng.integers(0, 256, (n, 3), dtype=np.uint8),
        label=rng.integers(0, 41, n).astype(np.uint16),
        label_index=label_index,
        confidence=rng.random(n).astype(np.float32),
        count=rng.integers(0, 100, n).astype(np.int32),
        instance=rng.integers(-1, 50, n).astype(np.int16),
    )


# ---------------------------------------------------------------------------
# cloud.py
# ---------------------------------------------------------------------------


def test_cloud_layout():
    msg = arrays_to_cloud(random_arrays(10), frame_id="world")
    assert isinstance(msg, PointCloud2)
    assert msg.header.frame_id == "world"
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 10, POINT_STEP, 10 * POINT_STEP)
    assert msg.is_dense and not msg.is_bigendian
    assert len(msg.data) == 10 * POINT_STEP
    fields = {f.name: (f.offset, f.datatype, f.count) for f in msg.fields}
    assert fields == {
        "x": (0, PointField.FLOAT32, 1),
        "y": (4, PointField.FLOAT32, 1),
        "z": (8, PointField.FLOAT32, 1),
        "rgb": (12, PointField.FLOAT32, 1),
        "label": (16, PointField.UINT16, 1),
        "confidence": (20, PointField.FLOAT32, 1),
    }
    assert POINT_STEP % 4 == 0


@pytest.mark.parametrize("color_by", ["label", "rgb"])
def test_cloud_round_trip_1000_points(color_by):
    arrays = random_arrays(1000, seed=1)
    msg = arrays_to_cloud(arrays, color_by=color_by)
    back = cloud_to_arrays(msg)
    assert len(back) == 1000
    np.testing.assert_array_equal(back.xyz, arrays.xyz)
    assert back.xyz.shape == (1000, 3) and back.xyz.dtype == np.float32
    np.testing.assert_array_equal(back.label, arrays.label)
    assert back.label.dtype == np.uint16
    np.testing.assert_array_equal(back.confidence, arrays.confidence)
    expected_rgb = arrays.label_color if color_by == "label" else arrays.color
    np.testing.assert_array_equal(back.rgb, expected_rgb)
    np.testing.assert_array_equal(back.rgb_packed, pack_rgb(expected_rgb))


def test_cloud_survives_serialization():
    arrays = random_arrays(257, seed=2)
    msg = deserialize_message(serialize_message(arrays_to_cloud(arrays, color_by="rgb")), PointCloud2)
    back = cloud_to_arrays(msg)
    np.testing.assert_array_equal(back.xyz, arrays.xyz)
    np.testing.assert_array_equal(back.rgb, arrays.color)
    np.testing.assert_array_equal(back.label, arrays.label)


def test_rgb_is_packed_the_way_rviz_reads_it():
    arrays = random_arrays(3)
    arrays.label_color[:] = [[255, 0, 0], [0, 255, 0], [1, 2, 3]]
    msg = arrays_to_cloud(arrays)
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(3, POINT_STEP)
    rgb_bits = raw[:, 12:16].copy().view("<u4").ravel()
    assert [hex(v) for v in rgb_bits] == ["0xff0000", "0xff00", "0x10203"]
    # The field is declared FLOAT32: the same bytes read as float32 and viewed as uint32.
    as_float = raw[:, 12:16].copy().view("<f4").ravel()
    assert as_float.view(np.uint32)[0] == 0x00FF0000
    np.testing.assert_array_equal(unpack_rgb(as_float), arrays.label_color)


def test_cloud_300k_points():
    arrays = random_arrays(300_000, seed=3)
    back = cloud_to_arrays(arrays_to_cloud(arrays))
    assert len(back) == 300_000
    np.testing.assert_array_equal(back.xyz, arrays.xyz)
    np.testing.assert_array_equal(back.rgb, arrays.label_color)
    np.testing.assert_array_equal(back.label, arrays.label)
    np.testing.assert_array_equal(back.confidence, arrays.confidence)


def test_empty_cloud_and_bad_input():
    empty = random_arrays(0)
    msg = arrays_to_cloud(empty)
    assert msg.width == 0 and len(msg.data) == 0 and msg.is_dense
    back = cloud_to_arrays(msg)
    assert len(back) == 0 and back.xyz.shape == (0, 3)
    with pytest.raises(ValueError, match="color_by"):
        arrays_to_cloud(random_arrays(2), color_by="label_color")
    broken = arrays_to_cloud(random_arrays(4))
    broken.width = 5
    broken.row_step = 5 * POINT_STEP
    with pytest.raises(ValueError, match="bytes"):
        cloud_to_arrays(broken)


def test_cloud_of_a_real_map():
    import torch

    from alster_mapping.map.voxel_map import SemanticVoxelMap

    m = SemanticVoxelMap()
    keys = np.array([[0, 0, 0], [1, -2, 3], [-5, 4, 2]], dtype=np.int32)
    m.write(keys, label=torch.tensor([0, 5, -1]), confidence=torch.tensor([0.25, 1.0, 0.0]))
    arrays = m.to_arrays()
    back = cloud_to_arrays(arrays_to_cloud(arrays))
    np.testing.assert_array_equal(back.xyz, arrays.xyz)
    np.testing.assert_array_equal(back.label, arrays.label)
    np.testing.assert_array_equal(back.rgb, arrays.label_color)


# ---------------------------------------------------------------------------
# params.py
# ---------------------------------------------------------------------------


@pytest.fixture
def ros_context():
    ctx = Context()
    rclpy.init(context=ctx)
    nodes = []

    def make_node(name="alster_params_test", **kwargs):
        node = Node(name, context=ctx, **kwargs)
        nodes.append(node)
        return node

    try:
        yield make_node
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown(context=ctx)


def test_declare_and_read_back(ros_context):
    node = ros_context(
        parameter_overrides=[
            Parameter("map.voxel_size", value=0.05),
            Parameter("label_fusion.max_range", value=4),  # an integer for a float parameter
            Parameter("label_space", value="nyu40"),
        ]
    )
    cfg = declare_config(node, MappingConfig())
    assert cfg.map.voxel_size == 0.05
    assert cfg.label_fusion.max_range == 4.0 and isinstance(cfg.label_fusion.max_range, float)
    assert cfg.label_space == "nyu40"
    for key, (value, _) in flatten(cfg).items():
        assert node.get_parameter(key).value == value, key
    assert parameters_to_config(node, MappingConfig) == cfg
    expected = MappingConfig()
    expected.map.voxel_size, expected.label_fusion.max_range, expected.label_space = 0.05, 4.0, "nyu40"
    assert cfg == expected


def test_descriptors_have_help_and_ranges(ros_context):
    node = ros_context()
    declare_config(node, MappingConfig())
    declare_config(node, MapServerConfig())
    fields = {k: f for k, (_, f) in {**flatten(MappingConfig()), **flatten(MapServerConfig())}.items()}

    d = node.describe_parameter("map.voxel_size")
    assert d.description == fields["map.voxel_size"].metadata["help"]
    (r,) = d.floating_point_range
    assert (r.from_value, r.to_value, r.step) == (0.002, 1.0, 0.0)
    assert not d.integer_range

    (r,) = node.describe_parameter("map.feature_dim").integer_range
    assert (r.from_value, r.to_value, r.step) == (1, 1024, 1)
    (r,) = node.describe_parameter("map.max_bytes").integer_range  # min only: max = int64 max
    assert (r.from_value, r.to_value) == (0, INT64_MAX)
    (r,) = node.describe_parameter("publish_period").floating_point_range
    assert r.from_value == 0.05

    d = node.describe_parameter("map.device")
    assert not d.integer_range and not d.floating_point_range and d.description
    assert "'rgb'" in node.describe_parameter("color_by").additional_constraints
    for key in fields:
        assert node.describe_parameter(key).description == fields[key].metadata["help"]

    # The ranges are enforced by rclpy at run time too.
    (result,) = node.set_parameters([Parameter("map.voxel_size", value=2.0)])
    assert not result.successful
    (result,) = node.set_parameters([Parameter("map.max_bytes", value=10**12)])
    assert result.successful


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ([Parameter("map.voxel_size", value=-1.0)], "map.voxel_size = -1.0: below the minimum 0.002"),
        ([Parameter("map.feature_dim", value="many")], "map.feature_dim = 'many': expected int"),
        ([Parameter("map.block_size", value=2.5)], "map.block_size = 2.5: expected int"),
        ([Parameter("label_fusion.max_range", value=1000)], "label_fusion.max_range = 1000.0: above the maximum"),
    ],
)
def test_invalid_values_raise_value_error(ros_context, overrides, needle):
    node = ros_context(parameter_overrides=overrides)
    with pytest.raises(ValueError) as info:
        declare_config(node, MappingConfig())
    assert needle in str(info.value)
    assert isinstance(info.value, ParameterError) and len(info.value.problems) == 1


def test_invalid_choice_and_all_problems_listed(ros_context):
    node = ros_context(
        parameter_overrides=[Parameter("color_by", value="bogus"), Parameter("publish_period", value=0.0)]
    )
    with pytest.raises(ParameterError) as info:
        declare_config(node, MapServerConfig())
    text = str(info.value)
    assert "color_by = 'bogus': not one of ['label', 'rgb']" in text
    assert "publish_period = 0.0: below the minimum 0.05" in text


def test_apply_parameters():
    cfg = MappingConfig()
    new = apply_parameters(cfg, [Parameter("map.max_bytes", value=1000), Parameter("frame_id", value="x")])
    assert new.map.max_bytes == 1000 and cfg.map.max_bytes == 0
    assert apply_parameters(cfg, [Parameter("frame_id", value="x")]) is cfg
    with pytest.raises(ValueError, match="map.max_bytes"):
        apply_parameters(cfg, [Parameter("map.max_bytes", value=-1)])


def test_shipped_params_file_holds_every_leaf_with_its_default():
    path = REPO / "config" / "mapping.yaml"
    params = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]

    def leaves(d, prefix=""):
        for key, value in d.items():
            yield from leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]

    from alster_mapping.ros.params import documented_configs

    configs = documented_configs().values()  # MappingConfig, MapServerConfig, MappingNodeConfig
    assert set(leaves(params)) == set().union(*(flatten(cfg) for cfg in configs))
    for cfg in configs:
        assert load_yaml(type(cfg), path) == cfg


def test_rclpy_reads_nested_params_files_as_dotted_names(ros_context, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "/**:\n"
        "  ros__parameters:\n"
        "    map:\n"
        "      voxel_size: 0.08\n"
        "      feature_dim: 20\n"
        "    label_fusion: {max_range: 2}\n"
        "other_node:\n"
        "  ros__parameters:\n"
        "    map: {block_size: 2}\n"
        "/**/alster_params_file_test:\n"
        "  ros__parameters:\n"
        "    map: {block_size: 8}\n"
        "    label_space: nyu40\n"
    )
    node = ros_context("alster_params_file_test", cli_args=["--ros-args", "--params-file", str(params)])
    cfg = declare_config(node, MappingConfig())
    assert node.has_parameter("map.voxel_size")
    assert (cfg.map.voxel_size, cfg.map.feature_dim, cfg.map.block_size) == (0.08, 20, 8)
    assert cfg.label_fusion.max_range == 2.0 and cfg.label_space == "nyu40"
    # The ROS-free reader gives the same configuration.
    assert load_yaml(MappingConfig, params, node_name="alster_params_file_test") == cfg
    assert load_yaml(MappingConfig, params, node_name="other_node").map.block_size == 2
    assert load_yaml(MappingConfig, params, node_name="x").map.block_size == 4


def test_parameters_doc_is_current():
    from alster_mapping.ros.params import documented_configs, parameters_markdown

    doc = (REPO / "docs" / "PARAMETERS.md").read_text()
    assert doc == parameters_markdown(documented_configs()), "regenerate: python -m alster_mapping.ros.params > docs/PARAMETERS.md"
