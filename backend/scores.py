"""Which score columns a dataset has and where each came from: shipped by the pool (mapped by
its profile at ingest) or computed here (by the ``score`` step).

One canonical name per score (``nsfw``, ``watermark``, ``clip_similarity`` …). When a pool ships
a score and the ``score`` step is asked to compute it too (``--recompute``), both are kept: the
shipped one under the canonical name, the computed one as ``<name>_computed``, so filters,
thresholds and exports keep meaning what the pool meant, and the two can be compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from backend.profiles import MEANING

COMPUTED_SUFFIX = "_computed"
NOT_SCORES = {"phash", "ocr_text", "language"}  # scorer columns that are not a number to threshold


def shipped(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Canonical score name -> its profile field record, for the scores the pool shipped."""
    fields = (manifest.get("profile") or {}).get("fields") or {}
    return {k: v for k, v in fields.items() if v.get("score")}


def given(manifest: dict[str, Any], columns: Iterable[str]) -> dict[str, str]:
    """Score columns the source gave (mapped by its profile, or carried under a canonical
    name) -> their provenance words: what the ``score`` step must not overwrite."""
    cat = catalog(manifest, columns)
    return {k: str(v["label"]) for k, v in cat.items() if v["source"] != "computed"}


def computed_name(column: str, given_columns: Iterable[str]) -> str:
    """Where a scorer's ``column`` is stored: its own name, or ``<name>_computed`` when the
    source gave a score of that name (:func:`given`)."""
    return f"{column}{COMPUTED_SUFFIX}" if column in set(given_columns) else column


def catalog(manifest: dict[str, Any], columns: Iterable[str] | None = None) -> dict[str, dict]:
    """Every score column -> ``{"column", "canonical", "source": "shipped"|"computed",
    "origin", "model", "label"}`` (``origin``: the pool's column, or the scorer that computed
    it). ``columns``: keep only those the store really has."""
    out: dict[str, dict] = {}
    for canonical, f in shipped(manifest).items():
        out[canonical] = {
            "column": canonical, "canonical": canonical, "source": "shipped",
            "origin": f.get("shipped_column"), "model": f.get("model", "unknown"),
            "label": f.get("label"), "units": f.get("units", ""),
        }  # fmt: skip
    step = (manifest.get("steps") or {}).get("score") or {}
    for scorer, rec in (step.get("scorers") or {}).items():
        for col in rec.get("columns") or ():
            if col in NOT_SCORES or col in out:
                continue
            model = str(rec.get("model") or scorer)
            out[col] = {
                "column": col, "canonical": col.removesuffix(COMPUTED_SUFFIX),
                "source": "computed", "origin": f"scorer {scorer}", "model": model,
                "label": f"computed here: {model}", "units": "",
            }  # fmt: skip
    if columns is not None:
        have = {c.lower() for c in columns}
        out = {k: v for k, v in out.items() if k.lower() in have}
        for col in columns:  # a canonical score that came in as a column of that name
            if col in MEANING and col not in out:
                out[col] = _own_column(col, manifest)
    return out


def _own_column(col: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """A score column the source carried under its canonical name, with no profile field:
    shipped by the source, or synthetic when the source is the generated demo (its folder
    holds the generator's ``ground_truth.json``)."""
    source = manifest.get("source")
    synthetic = bool(source) and (Path(source) / "ground_truth.json").is_file()
    label = ("synthetic: planted by the demo generator" if synthetic
             else f"shipped: the source's own column ({col})")  # fmt: skip
    return {"column": col, "canonical": col, "source": "synthetic" if synthetic else "shipped",
            "origin": col, "model": "unknown", "label": label, "units": ""}  # fmt: skip


def pairs(cat: dict[str, dict]) -> list[tuple[str, str]]:
    """(shipped column, computed column) of each score the dataset holds both ways."""
    return [(v["canonical"], k) for k, v in cat.items()
            if v["source"] == "computed" and k.endswith(COMPUTED_SUFFIX)
            and cat.get(v["canonical"], {}).get("source") == "shipped"]  # fmt: skip


def label(cat: dict[str, dict], column: str, default: str = "") -> str:
    """The provenance words of ``column`` ("shipped: LAION's … (punsafe)"), or ``default``."""
    return str((cat.get(column) or {}).get("label") or default)
