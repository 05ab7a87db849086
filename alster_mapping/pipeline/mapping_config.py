"""``MappingConfig``: everything the online mapper needs (and the node's engine parameters).

The top level of the schema that ``config/mapping.yaml``, the mapping node's ROS
parameters and ``--set`` overrides of ``alster replay`` / ``eval`` / ``demo`` fill.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import LabelFusionConfig, MapConfig, param, section
from ..nets.alster.config import AlsterNetConfig
from .completion_job import CompletionJobConfig
from .gravity import GravityConfig
from .instance_job import InstanceJobConfig
from .keyframes import KeyframeConfig
from .refine_job import RefineJobConfig


@dataclass
class AlsterConfig:
    """The ALSTER mode of the online mapper: which depth is lifted, which weights run."""

    max_range: float = param(3.0, "ignore depth beyond this distance along the optical axis [m] (the paper: 3)", min=0.05, max=100.0)
    min_range: float = param(0.1, "ignore depth closer than this [m]", min=0.0, max=100.0)
    checkpoint: str = param("", "model checkpoint (.safetensors with its card); '' = the network as configured in model.*, untrained")
    label_update: str = param(
        "vote",
        "how the expert's per-frame labels become a voxel's label: vote = a confidence-weighted majority over all "
        "its observations; latest = the latest observation's (the paper's reading)",
        choices=("vote", "latest"),
    )
    network_width: int = param(
        320,
        "the 2D encoder sees frames at most this wide [px]: wider ones are reduced for it by an integer factor "
        "(colour averaged, geometry sampled); lifting and the 3D network keep every pixel. 320 = the width the "
        "shipped model learnt at (at 640x480 it scores 12 mIoU points more than on the whole frame); 0 = the whole frame",
        min=0,
        max=100000,
    )
    precision: str = param(
        "float32",
        "arithmetic of the networks at mapping time: float32, or mixed = autocast (float16 on CUDA; bfloat16 on "
        "the CPU, for checking only: slower there on most CPUs); the map stores float16 features either way",
        choices=("float32", "mixed"),
    )


@dataclass
class MappingConfig:
    """Top level: everything the mapper needs."""

    mode: str = param("alster", "alster: the network; label_fusion: fuse external label images", choices=("alster", "label_fusion"))
    label_space: str = param("scannet20", "label space: built-in name (scannet20, nyu40) or YAML file")
    map: MapConfig = section(MapConfig)
    alster: AlsterConfig = section(AlsterConfig)
    gravity: GravityConfig = section(GravityConfig)
    label_fusion: LabelFusionConfig = section(LabelFusionConfig)
    model: AlsterNetConfig = section(AlsterNetConfig, "the ALSTER network built when alster.checkpoint is empty (a checkpoint brings its own)")
    instances: InstanceJobConfig = section(InstanceJobConfig, "the node's ~/segment_instances: instance model and region (read at each request)")
    keyframes: KeyframeConfig = section(KeyframeConfig, "the keyframes the node keeps for ~/refine_semantics (saved beside the map)")
    refine: RefineJobConfig = section(RefineJobConfig, "the node's ~/refine_semantics: SAFNet, its image encoder, region, chunks (read per request)")
    completion: CompletionJobConfig = section(CompletionJobConfig, "the node's ~/complete_scene: IMENet on the latest keyframe (read per request)")
