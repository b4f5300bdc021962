"""What a build step skipped, so that every page says "not run" (with why and the command that
runs it) instead of showing an empty result as "none found".

A duplicate kind the dedup step skipped still has its column (all NULL), which reads exactly
like "no duplicates"; a scorer that could not load has no column at all. Both are recorded in
the manifest (``dedup.skipped``, ``score.skipped``); this module turns those records into one
shape: ``{column: {"what", "why", "command"}}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend import paths
from backend.manifest import read_manifest

DUP_COLUMNS = {"phash": "dup_phash_group", "semantic": "dup_semantic_group"}


def _steps(name: str, root: Path | None) -> dict[str, Any]:
    return read_manifest(paths.manifest_path(name, root)).get("steps", {})


def dedup_skipped(name: str, root: Path | None = None) -> dict[str, dict[str, str]]:
    """Duplicate columns whose kind the last dedup run skipped: column -> what/why/command.

    Records written before ``skipped`` existed are read from their notes ("semantic
    duplicates skipped: …") so an old build is not shown as "0 groups" either."""
    rec = _steps(name, root).get("dedup", {})
    skipped = dict(rec.get("skipped") or {})
    if not skipped:
        for note in rec.get("notes", []):
            for kind in DUP_COLUMNS:
                head = f"{kind} duplicates skipped: "
                if note.startswith(head):
                    skipped[kind] = {"why": note.removeprefix(head),
                                     "command": f"python -m backend dedup {name}"}  # fmt: skip
    return {
        DUP_COLUMNS[kind]: {"what": f"{kind} duplicates", **info}
        for kind, info in skipped.items()
        if kind in DUP_COLUMNS
    }


def score_skipped(name: str, root: Path | None = None) -> dict[str, dict[str, str]]:
    """Score columns of scorers the score step skipped (a package or model missing):
    column -> what/why/command. A column some later run did write is not listed."""
    from backend.safety import registry

    rec = _steps(name, root).get("score", {})
    ran = {c for s in rec.get("scorers", {}).values() for c in s.get("columns", [])}
    scorers = registry()
    out: dict[str, dict[str, str]] = {}
    for scorer, why in (rec.get("skipped") or {}).items():
        cls = scorers.get(scorer)
        for col in cls.columns if cls else ():
            if col not in ran:
                command = f"python -m backend score {name} --scorers {scorer}"
                out[col] = {"what": f"the {scorer} scorer", "why": str(why), "command": command}
    return out


def skipped(name: str, root: Path | None = None) -> dict[str, dict[str, str]]:
    """Every skipped score and duplicate column of dataset ``name`` (see the module doc)."""
    return {**score_skipped(name, root), **dedup_skipped(name, root)}
