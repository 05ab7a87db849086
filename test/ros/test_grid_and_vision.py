"""In-process: the map server node's grids (groups, size limit), vision_msgs content, fixed-parameter reasons."""

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter  # noqa: E402

from alster_mapping.core.labels import scannet20  # noqa: E402
from alster_mapping.map.voxel_map import SemanticVoxelMap  # noqa: E402
from alster_mapping.pipeline.mapping_config import MappingConfig  # noqa: E402
from alster_mapping.ros import vision_outputs  # noqa: E402
from alster_mapping.ros.map_server_node import MapServerNode  # noqa: E402

SPACE = scannet20()


def small_map() -> SemanticVoxelMap:
    m = SemanticVoxelMap(MappingConfig().map, SPACE)
    # A floor of 10 x 10 voxels, a bathtub column at (2, 2) and a chair at (5, 5), both 0.5 m up.
    floor = np.array([[x, y, 0] for x in range(10) for y in range(10)], np.int32)
    things = np.array([[2, 2, 12], [5, 5, 12]], np.int32)
    labels = [SPACE.names.index("floor")] * len(floor) + [SPACE.names.index("bathtub"), SPACE.names.index("chair")]
    m.write(np.concatenate([floor, things]), label=np.array(labels), confidence=np.full(len(labels), 0.8, np.float32))
    return m


def test_group_grids_size_limit_and_parameter_reasons(ros_context):
    node = MapServerNode(
        "grid_node",
        context=ros_context,
        voxel_map=small_map(),
        parameter_overrides=[Parameter("grid.groups", value="keep_out:bathtub;seats:chair,sofa"), Parameter("grid.period", value=0.0)],
    )
    try:
        assert sorted(node.grid.topics) == ["/grid_node/semantic_grid", "/grid_node/semantic_grid_keep_out", "/grid_node/semantic_grid_seats"]
        grids = node.grid.build()
        main, keep_out, seats = grids[""], grids["keep_out"], grids["seats"]
        assert main.shape == (10, 10) and main.corner == (0, 0)
        assert main.cells[2, 2] == main.cells[5, 5] == 100 and (main.cells == 100).sum() == 2 and (main.cells == 0).sum() == 98
        assert keep_out.cells[2, 2] == 100 and keep_out.cells[5, 5] == 0 and seats.cells[5, 5] == 100 and seats.cells[2, 2] == 0

        # Obstacles by name at run time; an unknown class and the groups (own publishers) are refused with the reason.
        (ok,) = node.set_parameters([Parameter("grid.obstacle_classes", value="chair")])
        assert ok.successful and (node.grid.build()[""].cells == 100).sum() == 1
        (unknown,) = node.set_parameters([Parameter("grid.obstacle_classes", value="chair,lava")])
        assert not unknown.successful and "lava" in unknown.reason and "bathtub" in unknown.reason
        (fixed,) = node.set_parameters([Parameter("grid.groups", value="")])
        assert not fixed.successful and "publisher" in fixed.reason
        (geometry,) = node.set_parameters([Parameter("map.voxel_size", value=0.08)])
        assert not geometry.successful and "geometry" in geometry.reason

        # A grid over the size limit is not built: counted, the node goes on.
        node.set_parameters([Parameter("grid.max_cells", value=50), Parameter("grid.period", value=1.0)])
        node.map_server.mark_changed()
        node.grid.publish_if_changed()
        assert node.grid.stats()["too_large"] == 1 and node.runtime.counters.messages()["grid.too_large"].startswith("the grid would be")
    finally:
        node.destroy_node()


@pytest.mark.skipif(vision_outputs.LabelInfo is None, reason="vision_msgs is built by make setup (interfaces/)")
def test_detections_carry_class_ids_scores_and_boxes():
    objects = [
        {"id": 3, "class_index": SPACE.names.index("chair"), "score": 0.75, "center": [1.0, 2.0, 0.5], "extent": [0.5, 0.4, 0.9]},
        {"id": 7, "class_index": SPACE.names.index("table"), "score": 0.5, "center": [0.0, 0.0, 0.4], "extent": [1.2, 0.8, 0.8]},
    ]
    msg = vision_outputs.detections_message(objects, SPACE, "map", rclpy.time.Time(nanoseconds=5).to_msg())
    assert msg.header.frame_id == "map" and [d.id for d in msg.detections] == ["3", "7"]
    chair = msg.detections[0]
    (hypothesis,) = chair.results
    assert hypothesis.hypothesis.class_id == str(SPACE.ids[SPACE.names.index("chair")]) and hypothesis.hypothesis.score == 0.75
    assert (chair.bbox.center.position.x, chair.bbox.center.position.y, chair.bbox.center.position.z) == (1.0, 2.0, 0.5)
    assert (chair.bbox.size.x, chair.bbox.size.y, chair.bbox.size.z) == (0.5, 0.4, 0.9)
    info = vision_outputs.label_info_message(SPACE, "map", msg.header.stamp)
    assert [c.class_name for c in info.class_map] == list(SPACE.names) and info.class_map[1].class_id == SPACE.ids[1]
