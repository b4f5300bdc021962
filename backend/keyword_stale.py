"""Is a keyword index still the store's? Refuse one built from an earlier ingest build.

A rebuild renumbers rows and changes captions, so an index from before it would return wrong
rows; the check costs a readlink per query (the build id is cached per store file).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import duckdb

from backend import paths
from backend.keyword_errors import KeywordIndexStale

_CACHE_LOCK = threading.Lock()
_BUILDS: dict[tuple[str, str], str] = {}  # (dataset folder, store file) -> ingest build id


def store_build(out_dir: Path) -> str | None:
    """The ingest build id (:func:`backend.build_id.build_fingerprint`) of the store beside the
    index at ``out_dir``, or None where there is none (an index built on its own). Derived
    columns (map, scores) swap in a new store file but keep the build; a rebuild changes it.
    Cached per store file, so a check on every query costs a readlink."""
    from backend.build_id import build_fingerprint

    ds = Path(out_dir).absolute().parent
    try:
        key = (str(ds), (ds / "store.duckdb").resolve(strict=True).name)
    except OSError:
        return None
    with _CACHE_LOCK:
        if key in _BUILDS:
            return _BUILDS[key]
    try:
        fp = build_fingerprint(ds.name, ds.parent)
    except (duckdb.Error, OSError, ValueError):  # a store being swapped, or not one of ours
        return None
    with _CACHE_LOCK:
        if len(_BUILDS) > 256:
            _BUILDS.clear()
        _BUILDS[key] = fp
    return fp


def _older_than_ingest(out_dir: Path, meta: dict) -> bool:
    """For an index from before build ids were recorded: built before the store's ingest?"""
    from datetime import datetime

    ingest = paths.manifest_path(Path(out_dir).absolute().parent.name,
                                 Path(out_dir).absolute().parent.parent)  # fmt: skip
    try:
        steps = json.loads(ingest.read_text(encoding="utf-8")).get("steps", {})
        store_at = datetime.fromisoformat(steps["ingest"]["finished_at"])
        index_at = datetime.strptime(str(meta.get("built_at")), "%Y-%m-%dT%H:%M:%S%z")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # nothing to judge by: keep the index
    return index_at < store_at


def _check_store(out_dir: Path, meta: dict) -> None:
    """Refuse an index built from another ingest build of the store: a rebuild renumbers rows
    and changes captions, so its hits would be stale."""
    built = meta.get("store_build")
    if built is None and not _older_than_ingest(out_dir, meta):
        return
    now = store_build(out_dir)
    if now is None or built == now:
        return
    raise KeywordIndexStale(
        f"the keyword index of {Path(out_dir).absolute().parent.name!r} was built from an "
        f"earlier build of the store, so its hits would be wrong: rebuild it with "
        f"`{build_command(out_dir)}`"
    )


def build_command(out_dir: Path) -> str:
    """The command that (re)builds the index at ``out_dir`` (``<dataset>/keyword``)."""
    return f"python -m backend index {Path(out_dir).absolute().parent.name}"
