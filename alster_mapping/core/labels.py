"""Label spaces: which raw label ids exist, their names and display colours.

A label image holds raw ids (e.g. NYU40 ids 1..40); the map and the networks work on
class *indices* 0..C-1 of a ``LabelSpace``. Index -1 means "no label".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

UNKNOWN_INDEX = -1
UNKNOWN_COLOR = (0, 0, 0)

# NYU40 class names by id 1..40 (Silberman et al. / ScanNet's nyu40 mapping).
NYU40_NAMES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refrigerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)  # fmt: skip

# The ScanNet benchmark palette, indexed by NYU40 id (0 = unannotated).
NYU40_COLORS = (
    (0, 0, 0), (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120), (188, 189, 34),
    (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213), (148, 103, 189), (196, 156, 148),
    (23, 190, 207), (178, 76, 76), (247, 182, 210), (66, 188, 102), (219, 219, 141), (140, 57, 197),
    (202, 185, 52), (51, 176, 203), (200, 54, 131), (92, 193, 61), (78, 71, 183), (172, 114, 82),
    (255, 127, 14), (91, 163, 138), (153, 98, 156), (140, 153, 101), (158, 218, 229), (100, 125, 154),
    (178, 127, 135), (120, 185, 128), (146, 111, 194), (44, 160, 44), (112, 128, 144), (96, 207, 209),
    (227, 119, 194), (213, 92, 176), (94, 106, 211), (82, 84, 163), (100, 85, 144),
)  # fmt: skip

# The 20 classes of the ScanNet semantic benchmark, as NYU40 ids.
SCANNET20_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)


@dataclass(frozen=True)
class LabelSpace:
    """An ordered set of classes.

    name: identifier stored in maps and checkpoints. ids: (C,) raw label ids in class
    order. names: C class names. colors: C RGB uint8 triples. ignore_ids: raw ids that
    mean "not labelled" (mapped to index -1, never an error).
    """

    name: str
    ids: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    ignore_ids: tuple[int, ...] = (0,)
    _lut: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(int(i) for i in self.ids))
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "colors", tuple(tuple(int(c) for c in col) for col in self.colors))
        object.__setattr__(self, "ignore_ids", tuple(int(i) for i in self.ignore_ids))
        n = len(self.ids)
        if n == 0:
            raise ValueError(f"label space {self.name!r} has no classes")
        if len(self.names) != n or len(self.colors) != n:
            raise ValueError(f"label space {self.name!r}: {n} ids but {len(self.names)} names and {len(self.colors)} colors")
        if len(set(self.ids)) != n:
            raise ValueError(f"label space {self.name!r} has duplicate ids")
        if set(self.ids) & set(self.ignore_ids):
            raise ValueError(f"label space {self.name!r}: ids {sorted(set(self.ids) & set(self.ignore_ids))} are also ignored")
        all_ids = self.ids + self.ignore_ids
        if min(all_ids) < 0 or max(all_ids) > 65535:
            raise ValueError(f"label space {self.name!r}: ids must be in 0..65535")
        if any(len(c) != 3 or min(c) < 0 or max(c) > 255 for c in self.colors):
            raise ValueError(f"label space {self.name!r}: colors must be RGB triples in 0..255")
        # Lookup table raw id -> index over every uint16 id (so uint8/uint16 images need no
        # range check); -2 marks ids outside the space (an error on encode).
        lut = np.full(65536, -2, dtype=np.int64)
        if self.ignore_ids:
            lut[list(self.ignore_ids)] = UNKNOWN_INDEX
        lut[list(self.ids)] = np.arange(n)
        object.__setattr__(self, "_lut", lut)

    @property
    def unknown_id(self) -> int:
        """Raw id written for "no label": the first ignore id, or 65535 if the space ignores none."""
        return self.ignore_ids[0] if self.ignore_ids else 65535

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return len(self.ids)

    # -- conversions ---------------------------------------------------------------

    def encode(self, label_ids: np.ndarray | torch.Tensor, what: str = "label image") -> torch.Tensor:
        """Raw ids (any integer shape) -> class indices int64 (same shape), -1 for ignored ids.

        Raises ValueError naming the unknown ids if any id is neither a class nor ignored.
        """
        if not isinstance(label_ids, torch.Tensor):
            # numpy images (the usual case): one lookup in the table over every uint16 id,
            # single-threaded -- the tensor ops below cost ~4x more on the CPU.
            ids = np.asarray(label_ids)
            if ids.dtype.kind not in "iu":
                raise ValueError(f"{what} must hold integer label ids, got {ids.dtype}")
            table_ids, bad = ids, None  # uint8 / uint16 ids index the table as they are
            if ids.dtype.kind == "i" or ids.dtype.itemsize > 2:
                bad = (ids < 0) | (ids >= len(self._lut))
                table_ids = np.where(bad, 0, ids)
            idx = self._lut[table_ids]
            bad = idx == -2 if bad is None else bad | (idx == -2)
            if bad.any():
                unknown = np.unique(ids[bad])[:10].tolist()
                raise ValueError(f"{what} has label ids {unknown} outside the label space {self.name!r}")
            return torch.from_numpy(idx.astype(np.int64, copy=False))
        ids = label_ids
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(f"{what} must hold integer label ids, got {ids.dtype}")
        lut = torch.as_tensor(self._lut, device=ids.device)
        flat = ids.reshape(-1).to(torch.int64)
        outside = (flat < 0) | (flat >= len(lut))
        idx = lut[flat.clamp(0, len(lut) - 1)]
        bad = outside | (idx == -2)
        if bool(bad.any()):
            unknown = torch.unique(flat[bad])[:10].tolist()
            raise ValueError(f"{what} has label ids {unknown} outside the label space {self.name!r}")
        return idx.reshape(ids.shape)

    def decode(self, indices: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class indices (any shape, -1 = unknown) -> raw ids uint16; unknown -> ``unknown_id``."""
        idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices).astype(np.int64)
        table = np.array(self.ids + (self.unknown_id,), dtype=np.uint16)
        return table[np.where(idx < 0, len(self.ids), idx)]

    def colorize(self, indices: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class indices (any shape, -1 = unknown) -> RGB uint8 of shape (..., 3)."""
        idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices).astype(np.int64)
        palette = np.array(self.colors + (UNKNOWN_COLOR,), dtype=np.uint8)
        return palette[np.where(idx < 0, len(self.ids), idx)]

    # -- construction -------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain-data form (YAML/JSON), the inverse of ``from_dict``."""
        return {
            "name": self.name,
            "ignore_ids": list(self.ignore_ids),
            "classes": [{"id": i, "name": n, "color": list(c)} for i, n, c in zip(self.ids, self.names, self.colors)],
        }

    def to_json(self) -> str:
        """Compact JSON of ``to_dict`` (stored in map files and model cards)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict) -> LabelSpace:
        """Build from ``{name, ignore_ids?, classes: [{id, name, color?}]}``; raises ValueError if malformed."""
        if not isinstance(data, dict) or "classes" not in data:
            raise ValueError("a label space needs a 'classes' list")
        classes = data["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, dict) and "id" in c for c in classes):
            raise ValueError("label space 'classes' must be a list of {id, name, color} entries")
        try:
            ids = [int(c["id"]) for c in classes]
            names = [str(c.get("name", f"class_{c['id']}")) for c in classes]
            colors = [tuple(c["color"]) if "color" in c else _fallback_color(i) for i, c in enumerate(classes)]
            ignore = tuple(int(i) for i in data.get("ignore_ids", [0]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed label space entry: {exc}") from exc
        return cls(str(data.get("name", "custom")), tuple(ids), tuple(names), tuple(colors), ignore)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> LabelSpace:
        """Load a label space YAML file (see ``config/labelspaces/``)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read label space {path}: {exc}") from exc
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"bad label space file {path}: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> LabelSpace:
        """Inverse of ``to_json``."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> LabelSpace:
        """A built-in space by name (``scannet20``, ``nyu40``), a YAML file path, or
        ``<name>.yaml`` found in the label space search path (``ALSTER_LABELSPACE_PATH``,
        the package's ``config/labelspaces``)."""
        key = str(name_or_path)
        if key in BUILTIN:
            return BUILTIN[key]()
        path = Path(key)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            return cls.from_yaml(path)
        for directory in labelspace_dirs():
            candidate = directory / f"{key}.yaml"
            if candidate.is_file():
                return cls.from_yaml(candidate)
        raise ValueError(f"unknown label space {key!r}: not built in ({', '.join(BUILTIN)}) and no such YAML file")


def _fallback_color(i: int) -> tuple[int, int, int]:
    """A distinct colour per class index for spaces that name none (golden-angle hues)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.95)
    return (int(r * 255), int(g * 255), int(b * 255))


def labelspace_dirs() -> list[Path]:
    """Directories searched for ``<name>.yaml`` label spaces, in order."""
    dirs = [Path(p) for p in os.environ.get("ALSTER_LABELSPACE_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "config" / "labelspaces")  # source / editable install
    try:  # installed in a colcon workspace
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory("alster_mapping")) / "config" / "labelspaces")
    except Exception:  # noqa: BLE001 - no ament index (pip-only install) or package not in it
        pass
    return dirs


def scannet20() -> LabelSpace:
    """The 20 classes of the ScanNet benchmark (NYU40 ids; 0 and the other NYU40 ids are not labelled)."""
    ignore = tuple(i for i in range(0, 41) if i not in SCANNET20_IDS)
    return LabelSpace(
        "scannet20",
        SCANNET20_IDS,
        tuple(NYU40_NAMES[i - 1] for i in SCANNET20_IDS),
        tuple(NYU40_COLORS[i] for i in SCANNET20_IDS),
        ignore,
    )


def nyu40() -> LabelSpace:
    """All 40 NYU40 classes (id 0 = unannotated)."""
    return LabelSpace("nyu40", tuple(range(1, 41)), NYU40_NAMES, NYU40_COLORS[1:], (0,))


BUILTIN = {"scannet20": scannet20, "nyu40": nyu40}
