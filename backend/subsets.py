"""Saved subsets: a Selection frozen to its row ids, kept beside the dataset.

A subset stores both the recipe (the Selection as JSON) and the ids it matched when saved, so it
stays exactly the same rows even after the filters that made it would match differently; the
store build it was saved on is recorded, so a rebuilt dataset (whose row ids may mean other rows)
is flagged as stale instead of silently reused. Files: ``<dataset>/subsets/<subset>.json`` (the
record) and ``<subset>.npy`` (sorted int64 row ids), each written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from backend import paths
from backend.build_id import build_fingerprint
from backend.manifest import now, write_json_atomic
from backend.selection import BadSelection, Selection, quote_ident
from backend.store import connect

OPS = ("union", "intersection", "difference")
HIST_BINS = 20
PLUMBING = ("row_id", "src_row", "byte_offset", "byte_size", "map_x", "map_y")


class SubsetError(ValueError):
    """A subset that does not exist, already exists, or cannot be made: the message says why."""


@dataclass
class Subset:
    """One saved subset: its recipe, the row ids it held when saved, and where it came from."""

    name: str
    selection: Selection
    row_ids: np.ndarray = field(repr=False)
    count: int
    note: str = ""
    created: str = ""
    build: str = ""
    stale: bool = False  # saved on another build of the dataset than the current one

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts (no ids) for listings and the CLI."""
        return {
            "name": self.name,
            "count": self.count,
            "note": self.note,
            "created": self.created,
            "build": self.build,
            "stale": self.stale,
            "recipe": self.selection.to_dict(),
        }


def subsets_dir(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / "subsets"


def _files(name: str, subset: str, root: Path | None) -> tuple[Path, Path]:
    try:
        paths.check_name(subset)
    except paths.BadName:
        raise SubsetError(
            f"bad subset name {subset!r}: use 1-64 letters, digits, '_', '-' or '.', starting "
            "with a letter or digit"
        ) from None
    base = subsets_dir(name, root)
    return base / f"{subset}.json", base / f"{subset}.npy"


def resolve(name: str, sel: Selection, root: Path | None = None) -> Selection:
    """``sel`` with keywords and subset membership turned into row ids and concept parts
    pointed at their result sets, ready to compile."""
    from backend.concepts.parts import resolve as resolve_concepts
    from backend.search import resolve_keywords

    sel = resolve_concepts(name, resolve_keywords(name, sel, root), root)
    if not sel.subset_names():
        return sel
    ids = {n: tuple(int(i) for i in get(name, n, root).row_ids) for n in sel.subset_names()}
    return replace(sel, subset_ids=ids)


def select_ids(name: str, sel: Selection, root: Path | None = None) -> np.ndarray:
    """Sorted int64 row ids the (resolved) Selection matches, after its sort and limit."""
    from backend import bounded
    from backend.browse import columns

    con = bounded.wrap(connect(name, root))  # the user's filters: bounded (the CLI: no time limit)
    try:
        cols = columns(con)
        where, params = sel.where(cols)
        query = f"SELECT row_id FROM samples WHERE {where} {sel.order_limit(cols)}"
        ids = con.execute(query, params).fetchnumpy()["row_id"]
    finally:
        con.close()
    return np.sort(np.asarray(ids, dtype=np.int64))


def _write_npy_atomic(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        np.save(f, ids)
    os.replace(tmp, path)


def _store(
    name: str, subset: str, sel: Selection, ids: np.ndarray, note: str, root: Path | None,
    overwrite: bool,
) -> Subset:  # fmt: skip
    meta, npy = _files(name, subset, root)
    if meta.exists() and not overwrite:
        raise SubsetError(f"a subset named {subset!r} already exists: pick another name")
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    record = {
        "name": subset,
        "dataset": name,
        "recipe": sel.to_dict(),
        "count": int(ids.size),
        "note": note,
        "created": now(),
        "build": build_fingerprint(name, root),
    }
    _write_npy_atomic(npy, ids)  # the ids first: the record is what makes the subset exist
    write_json_atomic(meta, record)
    return Subset(subset, sel, ids, int(ids.size), note, record["created"], record["build"])


def save(
    name: str,
    subset: str,
    selection: Selection,
    root: Path | None = None,
    note: str = "",
    overwrite: bool = False,
) -> Subset:
    """Resolve ``selection`` to row ids now and keep recipe + ids as subset ``subset``."""
    _files(name, subset, root)  # a bad name fails before any work
    if subset in selection.subset_names():
        raise SubsetError(f"subset {subset!r} cannot be defined in terms of itself")
    sel = resolve(name, selection, root)
    return _store(name, subset, sel, select_ids(name, sel, root), note, root, overwrite)


def get(name: str, subset: str, root: Path | None = None) -> Subset:
    """The saved subset (raises :class:`SubsetError` when there is none by that name)."""
    meta, npy = _files(name, subset, root)
    if not meta.is_file():
        raise SubsetError(f"dataset {name!r} has no subset named {subset!r}")
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
        ids = np.load(npy, allow_pickle=False).astype(np.int64, copy=False)
        sel = Selection.from_dict(record.get("recipe") or {})
    except (OSError, ValueError, BadSelection) as e:
        raise SubsetError(f"subset {subset!r} is damaged: {e}") from None
    build = record.get("build", "")
    return Subset(
        subset, sel, ids, int(ids.size), record.get("note", ""), record.get("created", ""),
        build, stale=bool(build) and build != _current_build(name, root),
    )  # fmt: skip


def _current_build(name: str, root: Path | None) -> str:
    try:
        return build_fingerprint(name, root)
    except Exception:  # noqa: BLE001 - no store: nothing to compare with
        return ""


def list_subsets(name: str, root: Path | None = None) -> list[Subset]:
    """Every readable subset of the dataset, by name (damaged ones are skipped)."""
    base = subsets_dir(name, root)
    if not base.is_dir():
        return []
    out = []
    for meta in sorted(base.glob("*.json")):
        if meta.name.startswith("."):
            continue
        try:
            out.append(get(name, meta.stem, root))
        except SubsetError:
            continue
    return out


def replay(name: str, subset: str, root: Path | None = None) -> np.ndarray:
    """The row ids the subset's recipe matches now (equal to its saved ids on the same build)."""
    return select_ids(name, resolve(name, get(name, subset, root).selection, root), root)


def delete(name: str, subset: str, root: Path | None = None) -> None:
    meta, npy = _files(name, subset, root)
    if not meta.is_file():
        raise SubsetError(f"dataset {name!r} has no subset named {subset!r}")
    meta.unlink()
    npy.unlink(missing_ok=True)


def rename(name: str, subset: str, new: str, root: Path | None = None) -> Subset:
    """Give a subset a new name (refused when ``new`` is taken)."""
    meta, npy = _files(name, subset, root)
    new_meta, new_npy = _files(name, new, root)
    if not meta.is_file():
        raise SubsetError(f"dataset {name!r} has no subset named {subset!r}")
    if new_meta.exists():
        raise SubsetError(f"a subset named {new!r} already exists")
    record = json.loads(meta.read_text(encoding="utf-8"))
    record["name"] = new
    os.replace(npy, new_npy)
    write_json_atomic(new_meta, record)
    meta.unlink()
    return get(name, new, root)


def combine(
    name: str, a: str, b: str, op: str, new: str, root: Path | None = None, note: str = ""
) -> Subset:
    """Subset ``new`` = ``a`` union / intersection / difference ``b`` (of their saved ids).

    Its recipe says the same in Selection terms (membership of ``a`` and ``b``)."""
    if op not in OPS:
        raise SubsetError(f"unknown operation {op!r}: use one of {', '.join(OPS)}")
    sa, sb = get(name, a, root), get(name, b, root)
    if op == "union":
        ids, sel = np.union1d(sa.row_ids, sb.row_ids), Selection(subsets_any=[a, b])
    elif op == "intersection":
        ids, sel = np.intersect1d(sa.row_ids, sb.row_ids), Selection(subsets_all=[a, b])
    else:
        ids, sel = (
            np.setdiff1d(sa.row_ids, sb.row_ids),
            Selection(subsets_all=[a], subsets_none=[b]),
        )
    note = note or f"{a} {op} {b}"
    return _store(name, new, sel, ids, note, root, overwrite=False)


def compare(name: str, a: str, b: str, root: Path | None = None) -> dict[str, Any]:
    """Sizes, overlap, and how the two subsets differ: histograms of every numeric column on
    shared bins, and the top shards / clusters / concepts of each."""
    from backend.browse import columns

    sa, sb = get(name, a, root), get(name, b, root)
    both = np.intersect1d(sa.row_ids, sb.row_ids)
    union = np.union1d(sa.row_ids, sb.row_ids)
    out: dict[str, Any] = {
        "a": a, "b": b, "sizes": {a: sa.count, b: sb.count},
        "overlap": int(both.size), "only_a": sa.count - int(both.size),
        "only_b": sb.count - int(both.size),
        "jaccard": float(both.size / union.size) if union.size else 0.0,
        "histograms": {}, "top": {},
    }  # fmt: skip
    con = connect(name, root)
    try:
        cols = columns(con)
        from backend.selection import is_numeric

        numeric = [c for c, t in cols.items() if is_numeric(t) and c not in PLUMBING]
        for col in numeric:
            va, vb = (_column(con, col, s.row_ids) for s in (sa, sb))
            finite = np.concatenate([va, vb])
            if finite.size == 0:
                continue
            lo, hi = float(finite.min()), float(finite.max())
            edges = np.linspace(lo, hi if hi > lo else lo + 1, HIST_BINS + 1)
            out["histograms"][col] = {
                "edges": edges.tolist(),
                a: np.histogram(va, edges)[0].tolist(),
                b: np.histogram(vb, edges)[0].tolist(),
            }
        for col in ("shard", "cluster"):
            if col in cols:
                out["top"][col] = {s.name: _top(con, col, s.row_ids) for s in (sa, sb)}
        concepts = [c for c in cols if c.startswith("concept")]
        if concepts:
            out["top"]["concepts"] = {s.name: _top_concepts(con, concepts, cols, s.row_ids)
                                      for s in (sa, sb)}  # fmt: skip
    finally:
        con.close()
    for vocab, tops in _counted_concepts(name, (sa, sb), root).items():
        out["top"][f"concepts ({vocab})"] = tops
    return out


def _counted_concepts(
    name: str, subsets: tuple[Subset, ...], root: Path | None, k: int = 10
) -> dict[str, dict[str, list[tuple[str, int]]]]:
    """Each subset's most frequent concepts in every vocabulary the concepts step counted
    (its hits are (row, concept) pairs beside the store, not columns)."""
    from backend.concepts.run import list_vocabs, load

    out: dict[str, dict[str, list[tuple[str, int]]]] = {}
    for vocab in list_vocabs(name, root):
        res = load(name, vocab, root)
        per: dict[str, list[tuple[str, int]]] = {}
        for s in subsets:
            ids = res.ids[np.isin(res.rows, s.row_ids)]
            counts = np.bincount(ids, minlength=len(res.vocab.concepts))
            top = np.argsort(-counts, kind="stable")[:k]
            per[s.name] = [(res.vocab.concepts[i], int(counts[i])) for i in top if counts[i]]
        out[vocab] = per
    return out


def _column(con, col: str, ids: np.ndarray) -> np.ndarray:
    q = quote_ident(col)
    vals = con.execute(
        f"SELECT {q}::DOUBLE AS v FROM samples WHERE row_id IN (SELECT unnest(?::BIGINT[])) "
        f"AND {q} IS NOT NULL AND isfinite({q}::DOUBLE)",
        [ids.tolist()],
    ).fetchnumpy()["v"]
    return np.asarray(vals, dtype=np.float64)


def _top(con, col: str, ids: np.ndarray, k: int = 10) -> list[tuple[Any, int]]:
    q = quote_ident(col)
    rows = con.execute(
        f"SELECT {q}, count(*) FROM samples WHERE row_id IN (SELECT unnest(?::BIGINT[])) "
        f"GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {int(k)}",
        [ids.tolist()],
    ).fetchall()
    return [(v, int(n)) for v, n in rows]


def _top_concepts(con, concepts: list[str], cols: dict[str, str], ids: np.ndarray) -> list:
    """Share of rows flagged by each concept column (boolean or 0/1 score), highest first."""
    from backend.selection import is_numeric

    usable = [c for c in concepts if cols[c].upper() == "BOOLEAN" or is_numeric(cols[c])]
    if not usable or ids.size == 0:
        return []
    exprs = ", ".join(f"avg(({quote_ident(c)})::DOUBLE)" for c in usable)
    row = con.execute(
        f"SELECT {exprs} FROM samples WHERE row_id IN (SELECT unnest(?::BIGINT[]))",
        [ids.tolist()],
    ).fetchone()
    ranked = sorted(zip(usable, row, strict=True), key=lambda t: -(t[1] or 0))
    return [(c, round(float(v or 0), 4)) for c, v in ranked[:10]]
