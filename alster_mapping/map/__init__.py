"""The sparse semantic voxel map, its index, files and exports."""

from .map_file import MapFileError, load_map, save_map
from .voxel_map import MapArrays, SemanticVoxelMap, VoxelData

__all__ = ["SemanticVoxelMap", "VoxelData", "MapArrays", "MapFileError", "load_map", "save_map"]
