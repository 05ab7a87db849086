"""Atomic file writes: write beside the target in a private directory, fsync, rename.

Why a private directory and not just a temporary file: writers such as safetensors'
``save_file`` create their own temporary file (``.tmpXXXXXX``) next to the path they are
given, with a name nobody can attribute later. Writing inside ``.NAME.tmp-PID-XXXX/``
keeps everything a write creates in one place that is removed as a whole: by
``atomic_path`` itself on success or failure, and by ``remove_stale_temporaries`` when
the writing process died (kill -9, power loss) and could not clean up.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = ".tmp-"
"""Temporary directories of ``path`` are named ``.{path.name}.tmp-{pid}-{random}``."""


def _temp_prefix(path: Path) -> str:
    return f".{path.name}{TEMP_MARK}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` atomically.

    The temporary file has the target's name (so writers that pick a format by extension,
    open3d and PIL, still work) inside a private directory beside the target. On any
    exception the directory and everything in it are removed and the target is left as
    it was. A crash can leave no half-written target, only the directory, which
    ``remove_stale_temporaries(path)`` removes later.
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(path)}{os.getpid()}-", dir=directory))
    tmp = workdir / path.name
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(f"writing {path} produced no data")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp-style files are 0600; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # directory fsync is not possible everywhere
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove what interrupted ``atomic_path`` writes of ``path`` left behind; returns the removed paths.

    A temporary directory is stale when the process that created it (its name holds the
    pid) no longer runs; those of running processes, this one included, are kept.
    Never raises: a directory that cannot be listed or removed is skipped.
    """
    path = Path(path)
    prefix = _temp_prefix(path)
    removed = []
    try:
        candidates = glob.glob(glob.escape(str(path.parent / prefix)) + "*")
    except OSError:
        return removed
    for name in candidates:
        pid_text = name[len(str(path.parent / prefix)):].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid == os.getpid() or _process_alive(pid):
            continue
        stale = Path(name)
        try:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        except OSError:
            continue
        removed.append(stale)
    return removed


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
