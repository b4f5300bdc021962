"""What the workspace holds: one summary per dataset, for the home page and ``info``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend import embedding_sets, paths
from backend.browse import reject_reasons
from backend.manifest import read_manifest
from backend.scores import catalog
from backend.store import connect

PIPELINE = ("ingest", "embed", "index", "map", "score", "concepts", "dedup")


def summary(name: str, root: Path | None = None) -> dict[str, Any]:
    """Counts from the store itself, steps and models from the manifest."""
    manifest = read_manifest(paths.manifest_path(name, root))
    con = connect(name, root)
    try:
        rows = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        rejects = con.execute("SELECT count(*) FROM rejects").fetchone()[0]
        reasons = reject_reasons(con)
        names = [r[0] for r in con.execute("DESCRIBE samples").fetchall()]
    finally:
        con.close()
    steps = manifest.get("steps", {})
    return {
        "name": name,
        "rows": rows,
        "rejects": rejects,
        "reasons": reasons,
        "steps": [s for s in PIPELINE if steps.get(s, {}).get("status") == "done"],
        "pending_steps": [s for s in PIPELINE if steps.get(s, {}).get("status") != "done"],
        "models": manifest.get("models", {}),
        "source": manifest.get("source"),
        "format": manifest.get("format"),
        "built_at": manifest.get("built_at"),
        "path": str(paths.dataset_dir(name, root)),
        "profile": manifest.get("profile"),
        "scores": catalog(manifest, names),
        "embeddings": embedding_sets.summary(name, root),
    }
