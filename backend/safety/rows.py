"""The rows a scorer reads: their store columns, image bytes read once per chunk and shared by
every scorer that reads images, embeddings when asked; and scoring them so that one bad row
costs only its own values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backend.safety import Row, Scorer

ROW_COLUMNS = ("row_id, caption, width, height, file_size, storage, path, byte_offset, "
               "byte_size, src_row")  # fmt: skip


def _fetch_rows(con, lo: int, hi: int) -> list[Row]:
    cur = con.execute(
        f"SELECT {ROW_COLUMNS} FROM samples WHERE row_id >= ? AND row_id < ? ORDER BY row_id",
        [lo, hi],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _attach_images(rows: list[Row]) -> None:
    """Give each row its image bytes, or an ``_image_error`` reason."""
    from backend.media import image_bytes

    for r in rows:
        try:
            r["image"] = image_bytes(r)
            if not r["image"]:
                r["_image_error"] = "no image bytes (url-only row)"
        except Exception as e:  # a source that moved or changed since ingest
            r["image"], r["_image_error"] = None, f"image unreadable: {e}"


def _attach_embeddings(rows: list[Row], vectors: dict[str, np.ndarray]) -> None:
    for r in rows:
        r["embedding"] = {
            k: np.asarray(v[r["row_id"]], dtype=np.float32) for k, v in vectors.items()
        }


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:500]


def score_rows(scorer: Scorer, rows: list[Row]) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Values and error reasons for ``rows``; a failing batch is retried row by row so one bad
    row costs only its own values."""
    out: list[dict[str, Any]] = [{} for _ in rows]
    errors: list[str | None] = [None] * len(rows)
    ok = []
    for i, r in enumerate(rows):
        if "image" in scorer.reads and r.get("_image_error"):
            errors[i] = r["_image_error"]
        else:
            ok.append(i)
    if not ok:
        return out, errors
    try:
        got = scorer.score_batch([rows[i] for i in ok])
        if len(got) != len(ok):
            raise RuntimeError(f"scorer returned {len(got)} results for {len(ok)} rows")
        for i, g in zip(ok, got, strict=True):
            out[i] = g
    except Exception:
        for i in ok:
            try:
                out[i] = scorer.score_batch([rows[i]])[0]
            except Exception as e:
                errors[i] = _reason(e)
    return out, errors


def _vectors(name: str, root: Path | None, scorers: list[Scorer]) -> dict[str, np.ndarray]:
    """Memory-mapped embeddings, when some scorer reads them."""
    if not any("embedding" in s.reads for s in scorers):
        return {}
    from backend.embed import load_vectors

    return {k: load_vectors(name, k, root) for k in ("img", "text")}


def _rows_for(con, lo: int, hi: int, scorers: list[Scorer], vectors) -> list[Row]:
    """Rows ``[lo, hi)`` with what ``scorers`` read: image bytes, embeddings."""
    rows = _fetch_rows(con, lo, hi)
    if any("image" in s.reads for s in scorers):
        _attach_images(rows)
    if any("embedding" in s.reads for s in scorers):
        _attach_embeddings(rows, vectors)
    return rows
