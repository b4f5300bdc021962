"""Which vectors and which model an analysis used, in the words every page and verb shares.

Every analysis must say what it ran on: the map's layout, a search, the concepts' image side.
The build steps record it in the manifest (the map step's ``vectors``, the embed step's
``kinds``); this module reads those records and phrases them, and names the demo CLIP with
its note wherever it is the model (it knows generated scenes and nothing else).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend import paths
from backend.democlip import DEMO_CLIP_NOTE, is_demo_clip
from backend.manifest import read_manifest

KIND_WORDS = {"img": "image vectors", "text": "caption vectors"}
SYNTHETIC_SPACE = "synthetic vectors (bench only)"
SYNTHETIC_NOTE = (
    "synthetic vectors (bench only): seeded random clusters written by `python -m backend "
    "synth-vectors`, not embeddings of these rows' images, so which rows a query returns means "
    "nothing; only its speed does"
)


def demo_note(model: str | None) -> str | None:
    """The demo CLIP's note when ``model`` is the demo CLIP and its label does not already say
    it (load_clip labels it so), else None: a line names it once."""
    return DEMO_CLIP_NOTE if is_demo_clip(model) and DEMO_CLIP_NOTE not in str(model) else None


def search_notes(info: dict[str, Any]) -> list[str]:
    """The notes every search result from vectors of embed record ``info`` carries: the demo
    CLIP's, and that synthetic vectors (``backend.synth_vectors``) are synthetic."""
    demo = [f"Searched with the {DEMO_CLIP_NOTE}."] if is_demo_clip(info.get("model")) else []
    return demo + ([SYNTHETIC_NOTE] if info.get("synthetic") else [])


def synthetic_mark(info: dict[str, Any]) -> dict[str, Any]:
    """What an index built from the vectors of embed record ``info`` adds to its sidecar and
    record: that the vectors are synthetic (empty for real ones)."""
    return {"synthetic": True, "vectors_note": SYNTHETIC_NOTE} if info.get("synthetic") else {}


def synthetic_models(model: str) -> dict[str, str]:
    """The manifest's ``models`` entry of synthetic vectors (the Home page lists it)."""
    return {"image": f"{SYNTHETIC_SPACE}, in the space of {model}"}


def synthetic_phrase(model: str | None) -> str:
    """What a search of synthetic vectors searched, in words (the Search page's provenance)."""
    return (f"**{SYNTHETIC_SPACE}** in the space of {model}: seeded random clusters, not "
            "embeddings of these rows' images")  # fmt: skip


def vectors_phrase(kind: str | None, model: str | None) -> str:
    """E.g. "image vectors of open_clip:ViT-B-32/laion2b_s34b_b79k"."""
    what = KIND_WORDS.get(str(kind), f"{kind} vectors" if kind else "vectors")
    return f"{what} of {model}" if model else what


def map_layout(name: str, root: Path | None = None) -> dict[str, Any] | None:
    """What laid the map out: kind, model, method, rows and clusters from the map step's record
    (None before the map step ran). ``line`` says it in one sentence."""
    rec = read_manifest(paths.manifest_path(name, root)).get("steps", {}).get("map")
    if not rec:
        return None
    vec = rec.get("vectors") or {}
    kind = vec.get("kind") or rec.get("params", {}).get("vectors")
    model = vec.get("model")
    method = rec.get("method") or "?"
    rows, k = rec.get("mapped", rec.get("n")), rec.get("k")
    line = (f"Laid out by {vectors_phrase(kind, model)} ({method}"
            + (f" of {rows:,} rows" if isinstance(rows, int) else "")
            + (f"; {k} clusters" if k else "")
            + (f", {rec['clustering']}" if k and rec.get("clustering") else "") + ")")  # fmt: skip
    if rec.get("method_note"):
        line += f". {rec['method_note']}"
    return {"kind": kind, "model": model, "method": method, "rows": rows, "clusters": k,
            "line": line, "demo_note": demo_note(model)}  # fmt: skip
