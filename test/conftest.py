"""Session-wide test environment: ROS 2 isolation and shared-data fixtures.

The environment variables are set at import time, i.e. before any test
module imports rclpy, because rcl reads them when a context is initialised:

* discovery is confined to this machine (ROS_LOCALHOST_ONLY=1 for older
  RMWs, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST for Jazzy);
* every pytest session gets its own random ROS_DOMAIN_ID in 1..101, so two
  test runs (or a test run and a live system) on one host do not see each
  other's topics; set ALSTER_TEST_DOMAIN_ID to pin it;
* rcl log files go to <repo>/build/ros_log unless ROS_LOG_DIR is set;
* AMENT_PREFIX_PATH defaults to the running environment's prefix (the
  .venv that holds the ROS 2 Jazzy wheels' share/ament_index) so rclpy
  finds its RMW implementation without a sourced ROS distro.
"""
import os
import pathlib
import random
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / 'shared'


def _configure_ros_environment() -> None:
    env = os.environ
    # Never discover (or send traffic to) other hosts from a test.
    env['ROS_LOCALHOST_ONLY'] = '1'
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    pinned = env.get('ALSTER_TEST_DOMAIN_ID', '').strip()
    if pinned:
        env['ROS_DOMAIN_ID'] = pinned
    else:
        env['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 101))
    if not env.get('ROS_LOG_DIR'):
        log_dir = REPO_ROOT / 'build' / 'ros_log'
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # rcl creates it, or falls back to ~/.ros/log
        env['ROS_LOG_DIR'] = str(log_dir)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    if not env.get('AMENT_PREFIX_PATH'):
        env['AMENT_PREFIX_PATH'] = sys.prefix


_configure_ros_environment()


def pytest_report_header(config):
    return (
        f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} "
        f"AMENT_PREFIX_PATH={os.environ['AMENT_PREFIX_PATH']}"
    )


@pytest.fixture(scope='session')
def shared_data_dir() -> pathlib.Path:
    """``<repo>/../shared/data`` (may not exist in a user's clone)."""
    return SHARED_DIR / 'data'


@pytest.fixture(scope='session')
def label_fusion_dir(shared_data_dir: pathlib.Path) -> pathlib.Path:
    """``<shared>/label-fusion/frames``; skips the test when it is absent."""
    frames = shared_data_dir / 'label-fusion' / 'frames'
    if not frames.is_dir():
        pytest.skip(f"{frames} absent (a user's clone has no ../shared)")
    return frames


@pytest.fixture(scope='session')
def bench_script():
    """Import a script of ``bench/`` by name (e.g. ``bench_script("bench_map")``)."""
    import importlib

    bench_dir = str(REPO_ROOT / 'bench')

    def load(name: str):
        sys.path.insert(0, bench_dir)
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(bench_dir)

    return load


@pytest.fixture(scope='session')
def tiny_instance_model(tmp_path_factory):
    """A tiny ASIS trained briefly on one small synthetic world, and that world's map
    (scannet20, 8 cm voxels, saved): (checkpoint path, map path, world (seed, frames, width, height))."""
    from tiny_configs import tiny_asis_net

    from alster_mapping.core.config import MapConfig, apply_overrides
    from alster_mapping.core.labels import scannet20
    from alster_mapping.data.sequences import SyntheticSequence
    from alster_mapping.map.map_file import save_map
    from alster_mapping.map.voxel_map import SemanticVoxelMap
    from alster_mapping.pipeline.label_fusion import LabelFusion
    from alster_mapping.train.loop import MODEL_FILE, TrainingLoop
    from alster_mapping.train.recipes.asis import AsisTrainConfig

    root = tmp_path_factory.mktemp('tiny_instance_model')
    world_args = (1002, 6, 96, 72)
    world = SyntheticSequence(*world_args)
    seed, frames, width, height = world_args
    overrides = {'data.points': 256, 'data.voxel_size': 0.08, 'steps': 10, 'batch': 4, **tiny_asis_net('model.')}
    # The card records the world's size as the data settings: held-out worlds are then fused alike.
    overrides.update({'data.seeds': [seed, seed], 'data.frames': frames, 'data.width': width, 'data.height': height})
    TrainingLoop('asis', apply_overrides(AsisTrainConfig(), overrides), root / 'train', sequences=[world], progress=False).run()
    voxel_map = SemanticVoxelMap(MapConfig(voxel_size=0.08, feature_dim=20), scannet20())
    fusion = LabelFusion(voxel_map)
    for frame in world:
        fusion.integrate(frame)
    save_map(voxel_map, root / 'map.safetensors')
    return root / 'train' / MODEL_FILE, root / 'map.safetensors', world_args


@pytest.fixture(scope='session')
def tiny_safnet_model(tmp_path_factory):
    """A tiny untrained SAFNet checkpoint (for the refinement's mechanics, not its quality)
    and a small synthetic world's label-fused map (scannet20, 8 cm voxels) saved with the
    keyframes the node would keep: (checkpoint path, map path, world (seed, frames, width, height))."""
    import torch
    from tiny_configs import as_set_arguments, tiny_safnet_net

    from alster_mapping.core.config import MapConfig, apply_overrides
    from alster_mapping.core.labels import scannet20
    from alster_mapping.data.sequences import SyntheticSequence
    from alster_mapping.map.map_file import save_map
    from alster_mapping.map.voxel_map import SemanticVoxelMap
    from alster_mapping.nets.checkpoint import save_checkpoint
    from alster_mapping.nets.registry import MODELS
    from alster_mapping.nets.safnet import SafnetConfig
    from alster_mapping.pipeline.keyframes import KeyframeStore, keyframe_file
    from alster_mapping.pipeline.label_fusion import LabelFusion

    root = tmp_path_factory.mktemp('tiny_safnet_model')
    torch.manual_seed(0)
    model = MODELS.build('safnet', apply_overrides(SafnetConfig(), as_set_arguments(tiny_safnet_net())), num_classes=20)
    save_checkpoint(model.eval(), root / 'safnet.safetensors', scannet20())
    world_args = (1002, 8, 96, 72)
    voxel_map = SemanticVoxelMap(MapConfig(voxel_size=0.08, feature_dim=20), scannet20())
    fusion, keyframes = LabelFusion(voxel_map), KeyframeStore()
    for frame in SyntheticSequence(*world_args):
        fusion.integrate(frame)
        keyframes.consider(frame)
    save_map(voxel_map, root / 'map.safetensors')
    keyframes.save(keyframe_file(root / 'map.safetensors'))
    return root / 'safnet.safetensors', root / 'map.safetensors', world_args


@pytest.fixture
def held_instance_jobs(monkeypatch):
    """Instance jobs wait in ``segment_instances`` until the returned event is set (at most 30 s)."""
    import threading

    from alster_mapping.pipeline import instance_job

    release = threading.Event()
    real = instance_job.segment_instances

    def held(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(instance_job, 'segment_instances', held)
    yield release
    release.set()
