"""Where datasets live: the workspace folder and the files inside one dataset's folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class BadName(ValueError):
    """A dataset name that could escape the workspace or is not a plain folder name."""


def workspace() -> Path:
    """The folder holding one sub-folder per dataset (``$TAILSCOPE_HOME`` or ``indexes/``)."""
    return Path(os.environ.get("TAILSCOPE_HOME") or REPO_ROOT / "indexes").resolve()


def is_plain_name(text: object, longest: int = 64) -> bool:
    """Whether ``text`` is a plain folder name: 1 to ``longest`` letters, digits, '_', '-' or
    '.', starting with a letter or digit, no '..'. The one rule for every folder a user names
    (datasets, subsets, exports): nothing that could escape its parent."""
    return (isinstance(text, str) and 0 < len(text) <= longest and ".." not in text
            and _PLAIN.fullmatch(text) is not None)  # fmt: skip


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe dataset name, else raise :class:`BadName`."""
    if not is_plain_name(name):
        raise BadName(
            f"bad dataset name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def dataset_dir(name: str, root: Path | None = None) -> Path:
    return (root or workspace()) / check_name(name)


def store_path(name: str, root: Path | None = None) -> Path:
    return dataset_dir(name, root) / "store.duckdb"


def manifest_path(name: str, root: Path | None = None) -> Path:
    return dataset_dir(name, root) / "manifest.json"


def staging_dir(name: str, root: Path | None = None) -> Path:
    """Where a build writes aside before it swaps its result in (and resumes from)."""
    return dataset_dir(name, root) / ".staging"


def list_datasets(root: Path | None = None) -> list[str]:
    """Names of the datasets that have a finished store, sorted."""
    base = root or workspace()
    if not base.is_dir():
        return []
    return sorted(
        p.name for p in base.iterdir() if NAME_RE.match(p.name) and (p / "store.duckdb").is_file()
    )
