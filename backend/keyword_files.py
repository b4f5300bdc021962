"""Folder swaps for the keyword index: fsync, an atomic link swap and stale-build cleanup.

A build writes a new folder aside and swaps the ``<dataset>/keyword`` link with one atomic
rename, so readers see the old index or the new one, never half of one; leftovers of crashed
builds (temp folders of dead processes, unlinked builds) are removed by the next build.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path


def _du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _swap_link(out_dir: Path, final: Path) -> None:
    """Point ``out_dir`` at ``final`` with one rename; then delete what it pointed at before."""
    parent, name = out_dir.parent, out_dir.name
    old: Path | None = None
    if out_dir.is_symlink():
        old = parent / os.readlink(out_dir)
    elif out_dir.exists():  # a plain folder (copied in by hand): move it aside first
        old = parent / f".{name}.old-{secrets.token_hex(4)}"
        os.rename(out_dir, old)
    link = parent / f".{name}.link-{os.getpid()}-{secrets.token_hex(4)}"
    os.symlink(final.name, link)  # relative: the dataset folder can move
    os.replace(link, out_dir)
    _fsync_dir(parent)
    if old is not None and old.resolve() != final.resolve():
        # Open readers keep working: their files are mmapped and unlinking keeps the data.
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale(out_dir: Path, min_age_s: float = 600) -> None:
    """Delete leftovers of crashed builds: temp folders of dead processes, unlinked builds.

    A finished build not (yet) linked is kept for ``min_age_s``: it may be another process's
    build between its rename and its link swap.
    """
    parent, name = out_dir.parent, out_dir.name
    current = out_dir.resolve() if out_dir.is_symlink() else None
    for p in parent.glob(f".{name}.*"):
        rest = p.name[len(name) + 2 :]
        if rest.startswith(("tmp-", "link-")):
            pid = rest.split("-")[1]
            if pid.isdigit() and _alive(int(pid)):
                continue
        elif (current is not None and p.resolve() == current) or _age(p) < min_age_s:
            continue
        if p.is_symlink() or p.is_file():
            p.unlink(missing_ok=True)
        else:
            shutil.rmtree(p, ignore_errors=True)


def _age(p: Path) -> float:
    try:
        return time.time() - p.lstat().st_mtime
    except OSError:
        return float("inf")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
