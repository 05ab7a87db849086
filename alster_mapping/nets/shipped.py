"""Where the checkpoints that ship with the package are: ``models/`` in a checkout,
``share/alster_mapping/models`` when installed (found through the ament index)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shipped_checkpoint(file_name: str) -> Path:
    """The path of a shipped checkpoint, e.g. ``asis_scannet20_synthetic.safetensors``. When it
    is found nowhere, the checkout's path (so the error that follows names a real place)."""
    local = REPO_ROOT / "models" / file_name
    if local.exists():
        return local
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("alster_mapping")) / "models" / file_name
    except Exception:  # noqa: BLE001 - no ament index (a plain checkout): the checkout's path
        return local


def shipped_instance_checkpoint(model: str) -> Path:
    """The shipped checkpoint of an instance model (``asis`` or ``ban``)."""
    return shipped_checkpoint(f"{model}_scannet20_synthetic.safetensors")


def shipped_alster_checkpoint() -> Path:
    """The shipped ALSTER model (trained on synthetic worlds); its 2D encoder is SAFNet's frozen image branch."""
    return shipped_checkpoint("alster_scannet20_synthetic.safetensors")


def shipped_safnet_checkpoint() -> Path:
    """The shipped SAFNet, as ``~/refine_semantics`` and ``alster refine`` run it."""
    return shipped_checkpoint("safnet_scannet20_synthetic.safetensors")


def shipped_imenet_checkpoint() -> Path:
    """The shipped IMENet, as ``~/complete_scene`` and ``alster complete`` run it."""
    return shipped_checkpoint("imenet_ssc11_synthetic.safetensors")
