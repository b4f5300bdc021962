"""What the map step leaves beside a dataset, read back: its folder, the cluster table and the
step's record. The build (:mod:`backend.map`) writes them; pages and audits read them here
without importing the build.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backend import paths
from backend.manifest import read_manifest


def map_dir(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / "map"


def clusters_path(name: str, root: Path | None = None) -> Path:
    return map_dir(name, root) / "clusters.json"


def load_clusters(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The cluster table of the last map build (empty when the map step has not run)."""
    path = clusters_path(name, root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return list(data.get("clusters", [])) if isinstance(data, dict) else []


def describe_map(name: str, root: Path | None = None) -> dict[str, Any]:
    """The map step's manifest record (empty when it has not run)."""
    return read_manifest(paths.manifest_path(name, root)).get("steps", {}).get("map", {})
