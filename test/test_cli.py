"""The ``alster`` command line (alster_mapping.cli)."""

import json
import os

import numpy as np
import open3d as o3d
import pytest
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from alster_mapping import cli
from alster_mapping.cli import main
from alster_mapping.core.labels import LabelSpace
from alster_mapping.map.map_file import load_map

REQUIRED_OUTPUTS = ["map.safetensors", "map_labels.ply", "map_rgb.ply", "projection.png", "summary.json"]


@pytest.fixture(scope="module")
def demo_out(label_fusion_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    rc = main(["label-fusion-demo", "--out", str(out), "--data", str(label_fusion_dir)])
    return rc, out


def test_demo_writes_all_outputs(demo_out):
    rc, out = demo_out
    assert rc == 0
    files = set(os.listdir(out))
    for name in REQUIRED_OUTPUTS:
        assert name in files, name
        assert (out / name).stat().st_size > 0, name
    assert files <= set(REQUIRED_OUTPUTS) | {"render_label.png", "render_rgb.png"}, files
    assert not any(name.startswith(".") for name in files), "temporary files left behind"


def test_demo_summary(demo_out, label_fusion_dir):
    rc, out = demo_out
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 15
    accuracy = summary["reprojection_accuracy"]
    assert accuracy["min"] >= 0.9
    assert accuracy["min"] <= accuracy["mean"] <= 1.0
    assert len(accuracy["per_frame"]) == 15
    assert min(p["accuracy"] for p in accuracy["per_frame"]) == accuracy["min"]
    assert summary["config"]["label_space"] == "label_fusion"
    assert summary["config"]["map"]["voxel_size"] == 0.01
    assert summary["voxels"] > 1000
    # Every output listed exists (render PNGs only when a rendering context was available).
    for name in summary["outputs"]:
        assert (out / name).is_file(), name
    for name in ("render_label.png", "render_rgb.png"):
        assert ((out / name).exists()) == (name in summary["outputs"])
    assert set(summary["label_counts"]) == set(LabelSpace.load("label_fusion").names)
    assert sum(summary["label_counts"].values()) <= summary["voxels"]


def test_demo_map_file_and_projection(demo_out):
    rc, out = demo_out
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    m = load_map(out / "map.safetensors", label_space=LabelSpace.load("label_fusion"))
    assert len(m) == summary["voxels"]
    assert m.voxel_size == 0.01
    assert m.feature_kind == "label_evidence"
    panel = np.asarray(Image.open(out / "projection.png"))
    assert panel.shape == (480, 3 * 640, 3)
    cloud = o3d.t.io.read_point_cloud(str(out / "map_labels.ply"))
    assert cloud.point.positions.shape[0] == len(m)


def test_info(demo_out, capsys):
    rc, out = demo_out
    assert rc == 0
    capsys.readouterr()
    assert main(["info", str(out / "map.safetensors")]) == 0
    info = json.loads(capsys.readouterr().out)
    summary = json.loads((out / "summary.json").read_text())
    assert info["voxels"] == summary["voxels"]
    assert info["label_space"] == "label_fusion"
    assert info["voxel_size_m"] == 0.01
    assert info["feature_kind"] == "label_evidence"
    assert info["instances"] == 0 and info["voxels_in_instances"] == 0  # no segmentation has run
    assert sum(info["labels"].values()) + info["unlabelled"] == info["voxels"]
    lo, hi = np.array(info["bounds_m"])
    assert (lo <= hi).all()


def test_export_ply(demo_out, tmp_path, capsys):
    rc, out = demo_out
    assert rc == 0
    ply = tmp_path / "exported.ply"
    assert main(["export", str(out / "map.safetensors"), "--ply", str(ply), "--color-by", "rgb"]) == 0
    cloud = o3d.t.io.read_point_cloud(str(ply))
    m = load_map(out / "map.safetensors")
    assert cloud.point.positions.shape[0] == len(m)
    assert str(ply) in capsys.readouterr().out


def test_export_png(demo_out, tmp_path):
    rc, out = demo_out
    assert rc == 0
    png = tmp_path / "exported.png"
    try:
        code = main(["export", str(out / "map.safetensors"), "--png", str(png)])
    except RuntimeError as exc:
        pytest.skip(f"no rendering context: {exc}")
    assert code == 0
    image = np.asarray(Image.open(png))
    assert image.shape[:2] == (768, 1024)
    flat = image[..., :3].reshape(-1, 3)
    assert len(np.unique(flat, axis=0)) >= 3  # background and at least two classes
    assert (flat != 255).any(axis=1).mean() > 0.01, "nothing drawn on the white background"


def test_export_png_without_rendering_context_returns_1(demo_out, tmp_path, capsys, monkeypatch):
    rc, out = demo_out
    assert rc == 0

    def no_context(*args, **kwargs):
        raise RuntimeError("no rendering context (needs libEGL / Mesa)")

    monkeypatch.setattr(cli, "render_png", no_context)
    png = tmp_path / "exported.png"
    assert main(["export", str(out / "map.safetensors"), "--png", str(png)]) == 1
    _assert_clean_error(capsys, "rendering context")
    assert not png.exists()


def test_export_without_outputs_returns_2(demo_out, capsys):
    rc, out = demo_out
    assert rc == 0
    assert main(["export", str(out / "map.safetensors")]) == 2
    assert "nothing to do" in capsys.readouterr().err


def _assert_clean_error(capsys, *fragments):
    captured = capsys.readouterr()
    assert "error" in captured.err
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    for fragment in fragments:
        assert fragment in captured.err, (fragment, captured.err)


@pytest.mark.parametrize("content", [b"", b"not a map at all" * 10, b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "])
def test_info_on_corrupt_file_returns_1_without_traceback(tmp_path, capsys, content):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(content)
    assert main(["info", str(path)]) == 1
    _assert_clean_error(capsys, "corrupt.safetensors")


def test_info_on_truncated_map_returns_1(demo_out, tmp_path, capsys):
    rc, out = demo_out
    data = (out / "map.safetensors").read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    assert main(["info", str(path)]) == 1
    _assert_clean_error(capsys, "cut.safetensors")


def test_info_on_map_with_incomplete_metadata_returns_1(demo_out, tmp_path, capsys):
    rc, out = demo_out
    with safe_open(str(out / "map.safetensors"), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    del meta["tick"]  # checksums stay valid: only the header lost a field
    path = tmp_path / "no_tick.safetensors"
    save_file(tensors, str(path), metadata=meta)
    assert main(["info", str(path)]) == 1
    _assert_clean_error(capsys, "no_tick.safetensors")


def test_info_on_missing_file_returns_1(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.safetensors")]) == 1
    _assert_clean_error(capsys, "missing.safetensors")


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("map.voxel_size=abc", "map.voxel_size"),
        ("map.no_such_key=1", "map.no_such_key"),
        ("voxel_size", "KEY=VALUE"),
        ("map.voxel_size=[0.02", "map.voxel_size"),  # not parseable as a YAML scalar
    ],
)
def test_demo_bad_override_returns_1(label_fusion_dir, tmp_path, capsys, override, fragment):
    out = tmp_path / "out"
    assert main(["label-fusion-demo", "--out", str(out), "--data", str(label_fusion_dir), "--set", override]) == 1
    _assert_clean_error(capsys, fragment)
    assert not out.exists() or os.listdir(out) == []


def test_demo_bad_config_file_returns_1(label_fusion_dir, tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("map: {voxel_size: 3.0}\n")
    out = tmp_path / "out"
    assert main(["label-fusion-demo", "--out", str(out), "--data", str(label_fusion_dir), "--config", str(cfg)]) == 1
    _assert_clean_error(capsys, "bad.yaml", "map.voxel_size")


def test_demo_unknown_label_space_returns_1(label_fusion_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["label-fusion-demo", "--out", str(out), "--data", str(label_fusion_dir), "--set", "label_space=no_such_space"]) == 1
    _assert_clean_error(capsys, "no_such_space")


def test_demo_missing_data_returns_2(tmp_path, capsys):
    assert main(["label-fusion-demo", "--out", str(tmp_path / "out"), "--data", str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err


def test_unknown_subcommand_exits_with_usage_error():
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_demo_maps_a_synthetic_world_with_the_shipped_model(tmp_path, capsys):
    """`make demo` in small: the shipped checkpoint loads, maps a held-out world and is scored."""
    from alster_mapping.cli import DEFAULT_MODEL

    assert DEFAULT_MODEL.exists(), "models/ must ship the trained checkpoint"
    out = tmp_path / "demo"
    assert main(["demo", "--frames", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "expert" in printed and "2d_voting" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sequences"][0]["frames"] == 4
    assert metrics["provenance"]["model"] == str(DEFAULT_MODEL)
    for name in ("map.safetensors", "map_expert.ply", "class_iou.png", "confusion.png"):
        assert (out / name).stat().st_size > 0


def test_demo_without_a_model_says_how_to_get_one(tmp_path, capsys):
    assert main(["demo", "--model", str(tmp_path / "none.safetensors"), "--out", str(tmp_path)]) == 2
    assert "alster train" in capsys.readouterr().err


def test_export_grid_writes_nav2_map_files(demo_out, tmp_path, capsys):
    """The floor grid as nav2_map_server reads it: a trinary P5 PGM, top row = largest y, and its YAML."""
    import yaml

    from alster_mapping.map.semantic_grid import FREE, OCCUPIED, UNKNOWN, class_mask, semantic_grid

    rc, out = demo_out
    assert rc == 0
    m = load_map(out / "map.safetensors")
    background, first, second = m.label_space.names  # the real frames' own label space
    grid_dir = tmp_path / "grid"
    args = ["export", str(out / "map.safetensors"), "--grid", str(grid_dir)]
    assert main(args + ["--grid-set", f"free_classes={background}", f"groups=second:{second}"]) == 0
    printed = capsys.readouterr().out
    assert "semantic_grid.yaml" in printed and "semantic_grid_second.yaml" in printed
    assert main(args) == 1 and "unknown class(es) ['floor']" in capsys.readouterr().err  # no floor in this label space
    arrays = m.to_arrays()
    keys = np.floor(arrays.xyz / m.voxel_size).astype(np.int64)
    want = semantic_grid(keys, arrays.label_index, m.voxel_size, class_mask(m.label_space, [background], invert=True))
    meta = yaml.safe_load((grid_dir / "semantic_grid.yaml").read_text())
    assert meta["image"] == "semantic_grid.pgm" and meta["mode"] == "trinary" and meta["resolution"] == m.voxel_size
    assert meta["origin"] == pytest.approx([*want.origin, 0.0])
    pgm = (grid_dir / "semantic_grid.pgm").read_bytes()
    assert pgm.startswith(b"P5")
    image = np.asarray(Image.open(grid_dir / "semantic_grid.pgm"))[::-1]  # back to rows of increasing y
    assert image.shape == want.shape
    for value, grey in ((OCCUPIED, 0), (FREE, 254), (UNKNOWN, 205)):
        assert (image[want.cells == value] == grey).all() and (want.cells == value).any()
    assert main(args + ["--grid-set", f"free_classes={background}", "min_height=-6", "max_height=-5"]) == 1
    assert "empty" in capsys.readouterr().err
