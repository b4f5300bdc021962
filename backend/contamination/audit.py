"""One contamination audit: an eval set against a pool, stored beside the dataset.

Results live in ``<dataset>/audits/contamination/``: ``<eval>.pairs.parquet`` (eval, eval_idx,
row_id, kind, score: joinable by ``row_id``), ``<eval>.eval.parquet`` (each eval image's key,
caption and where its bytes are, for side-by-side views) and ``<eval>.json`` (counts, how each
kind ran or why not, thresholds, margin gallery). The matched rows are also saved as the subset
``contaminated-<eval>``: putting it under "none of" in any Selection excludes them everywhere,
exports included.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from backend import paths
from backend.contamination import embedmatch, matchers
from backend.contamination.evalset import EvalSet, EvalSetError, read_eval
from backend.manifest import now, read_manifest, write_json_atomic
from backend.sources import SourceError, detect_format

KINDS = ("exact", "phash", "embedding", "caption")
SUBSET_PREFIX = "contaminated-"


def audits_dir(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / "audits" / "contamination"


def eval_name_for(path: Path, given: str | None) -> str:
    """The eval set's name (``--eval-name``, else the path's stem), checked as a file name."""
    name = given or Path(path).stem or "eval"
    try:
        return paths.check_name(name)
    except paths.BadName:
        raise ValueError(f"bad eval name {name!r}: pass --eval-name with 1-64 letters, digits, "
                         "'_', '-' or '.'") from None  # fmt: skip


def _read(name: str, path: Path, eval_name: str, fmt: str, root: Path | None,
          progress) -> EvalSet:  # fmt: skip
    try:
        fmt = detect_format(path) if fmt == "auto" else fmt
    except SourceError as e:
        raise EvalSetError(f"eval set {path}: {e}") from None
    if fmt == "embeddings":
        ev = read_eval(path, eval_name, fmt)
        info = embedmatch.pool_image_model(name, root)
        embedmatch.same_model(ev, info["model"] if info else None)  # refuses before matching
        return ev
    embed, why = embedmatch.pool_embedder(name, root)
    ev = read_eval(path, eval_name, fmt, embed, progress)
    if embed is None:
        ev.vector_source = why or ""
    else:
        ev.vector_model = embedmatch.pool_image_model(name, root)["model"]
    return ev


def run(
    name: str, eval_path: Path, eval_name: str | None = None, fmt: str = "auto",
    prompts: list[str] | None = None, phash_threshold: int = matchers.PHASH_THRESHOLD,
    embed_threshold: float | None = None, root: Path | None = None, progress=None,
) -> dict[str, Any]:  # fmt: skip
    """Audit eval set ``eval_path`` against dataset ``name``: match, store, save the subset;
    return the report (the CLI's JSON)."""
    from backend import subsets
    from backend.selection import Selection

    if not paths.store_path(name, root).is_file():
        raise FileNotFoundError(f"no dataset {name!r}: run `python -m backend build {name} ...`")
    t0, started = time.perf_counter(), now()
    eval_name = eval_name_for(eval_path, eval_name)
    ev = _read(name, Path(eval_path), eval_name, fmt, root, progress)
    found = [matchers.exact(name, ev, root), matchers.phash(name, ev, phash_threshold, root),
             embedmatch.embedding(name, ev, embed_threshold, root)]  # fmt: skip
    cap, texts = matchers.caption(name, ev, prompts, root)
    found.append(cap)
    labels = list(ev.keys) + [f"prompt: {p}" for p in (prompts or [])]
    pairs = _pairs_table(found, labels)
    rows = np.unique(pairs["row_id"].to_numpy()) if pairs.num_rows else np.zeros(0, np.int64)
    eval_idx = pairs["eval_idx"].to_numpy() if pairs.num_rows else np.zeros(0, np.int64)
    subset = SUBSET_PREFIX + eval_name
    subsets.save(name, subset, Selection(row_ids=tuple(int(r) for r in rows),
                 row_ids_label=f"pool rows matching eval set {eval_name}"), root,
                 note=f"contamination audit of {eval_path} ({started})", overwrite=True)
    report = {
        "eval_images": len(ev),
        "matched_eval_images": int(len(np.unique(eval_idx[eval_idx < len(ev)]))),
        "pairs": [{"eval": e, "row_id": int(r), "kind": k, "score": round(float(s), 4)}
                  for e, r, k, s in zip(*(pairs[c].to_pylist() for c in
                                          ("eval", "row_id", "kind", "score")), strict=True)],
        "eval_name": eval_name, "eval_path": str(eval_path), "eval_format": ev.fmt,
        "matched_rows": int(len(rows)), "prompts": len(prompts or []),
        "by_kind": {f.kind: _kind_counts(f, len(ev)) for f in found},
        "methods": {f.kind: f.info for f in found},
        "rejects": dict(ev.rejects), "subset": subset, "created": started,
        "seconds": round(time.perf_counter() - t0, 2),
    }  # fmt: skip
    _store(name, ev, pairs, report, texts, root)
    return report


def _kind_counts(f: matchers.Found, n_eval: int) -> dict[str, int]:
    e = f.eval_idx
    return {"eval_images": int(len(np.unique(e[e < n_eval]))), "pairs": int(len(e)),
            "rows": int(len(np.unique(f.row_id)))}  # fmt: skip


def _pairs_table(found: list[matchers.Found], labels: list[str]) -> pa.Table:
    e = np.concatenate([f.eval_idx for f in found]).astype(np.int64)
    return pa.table({
        "eval": pa.array([labels[i] for i in e], pa.string()),
        "eval_idx": pa.array(e, pa.int64()),
        "row_id": pa.array(np.concatenate([f.row_id for f in found]).astype(np.int64)),
        "kind": pa.array([f.kind for f in found for _ in range(len(f.eval_idx))], pa.string()),
        "score": pa.array(np.concatenate([f.score for f in found]).astype(np.float64)),
    })  # fmt: skip


def _store(name: str, ev: EvalSet, pairs: pa.Table, report: dict[str, Any], texts: list[str],
           root: Path | None) -> None:  # fmt: skip
    out = audits_dir(name, root)
    out.mkdir(parents=True, exist_ok=True)
    base = out / report["eval_name"]
    pq.write_table(pairs, f"{base}.pairs.parquet")
    where = {k: [w[k] for w in ev.where] for k in ("storage", "path", "byte_offset",
                                                   "byte_size", "src_row")}  # fmt: skip
    pq.write_table(pa.table({"eval_idx": np.arange(len(ev)), "key": ev.keys,
                             "caption": texts[: len(ev)], **where}), f"{base}.eval.parquet")
    write_json_atomic(Path(f"{base}.json"), {k: v for k, v in report.items() if k != "pairs"})


def list_audits(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The stored audits of ``name``, newest first (their summaries, no pairs)."""
    out = audits_dir(name, root)
    found = [read_manifest(p) for p in sorted(out.glob("*.json"))] if out.is_dir() else []
    return sorted((f for f in found if f), key=lambda f: f.get("created", ""), reverse=True)


def load_pairs(name: str, eval_name: str, root: Path | None = None) -> tuple[pa.Table, pa.Table]:
    """(pairs, eval images) of a stored audit."""
    base = audits_dir(name, root) / paths.check_name(eval_name)
    if not Path(f"{base}.json").is_file():
        raise FileNotFoundError(f"no contamination audit {eval_name!r} of {name!r}: run "
                                f"`python -m backend contamination {name} --eval PATH`")
    return pq.read_table(f"{base}.pairs.parquet"), pq.read_table(f"{base}.eval.parquet")
