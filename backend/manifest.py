"""The build manifest: which steps ran, with what parameters, library versions and timings."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import backend

TRACKED = ("duckdb", "pyarrow", "pillow", "numpy", "faiss-cpu", "open_clip_torch", "torch")


def versions() -> dict[str, str]:
    out = {"tailscope": backend.__version__, "python": platform.python_version()}
    for dist in TRACKED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON beside ``path`` and rename it over, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, path)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at ``path``, or an empty one when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def step_record(params: dict[str, Any], started: str, seconds: float, **summary: Any) -> dict:
    return {
        "status": "done",
        "params": params,
        "versions": versions(),
        "started_at": started,
        "finished_at": now(),
        "seconds": round(seconds, 3),
        **summary,
    }


def update_manifest(
    path: Path, step: str, record: dict[str, Any], models: dict | None = None
) -> dict:
    """Record one finished build step (and the models it used) in the manifest at ``path``."""
    manifest = read_manifest(path)
    manifest.setdefault("steps", {})[step] = record
    if models:
        manifest.setdefault("models", {}).update(models)
    write_json_atomic(path, manifest)
    return manifest


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file, read in chunks: what manifests record of the files they list."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
