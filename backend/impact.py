"""Filter impact: what a Selection keeps of its base, group by group, before a GPU hour is spent.

A curation filter is judged against a *base* (the whole dataset, or another subset): retention
by concept (caption side from the ``concepts`` step's hits, image side where it ran), by map
cluster, by domain, by caption language and by bins of each score; the long tail before and
after (:mod:`backend.impact_tail`); and the groups whose removal rate exceeds the overall rate
by a factor (default 2x) — the disproportion the CommonPool studies found in CLIP filtering.

Data in, data out: a bounded connection and two predicates in (the kept rows are the Selection's
rows *within* the base), plain numbers and row dicts out; :mod:`ui.impact` draws them. Column
groups are counted in DuckDB (one GROUP BY per kind, the biggest ``top`` groups); concept groups
are numpy bincounts over the stored hits against the base's row ids, as ``backend.safety_rates``
does.
A row the Selection's predicate rates NULL (a range on a missing score) counts as removed, as
the Selection itself drops it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.browse import CARD_COLUMNS, columns
from backend.selection import IDS_IN, Selection, quote_ident

FACTOR = 2.0  # flag a group whose removal rate is at least this many times the overall rate
MIN_ROWS = 5  # smaller groups are shown but never flagged: a rate of 1 of 2 rows says little
ALPHA = 0.01  # ...nor a removal count the overall rate gives this often by chance (binomial)
TOP = {"cluster": 1000, "domain": 50, "language": 200}  # per column, its biggest groups
BINS = 10  # equal-width bins over each score's range in the base
MAX_HIT_ROWS = 20_000_000  # concept retention reads the base's row ids into memory (8 B a row)
COLUMN_KINDS = (("cluster", "cluster"), ("domain", "domain"), ("language", "caption language"))
LANGUAGE_HINT = "python -m backend score {name} --scorers language"

Clause = tuple[str, list[Any]]  # a SQL predicate on ``samples`` and its parameters


@dataclass
class Group:
    """One group of the base: its rows there and how many of them the Selection keeps."""

    kind: str  # "concept", "image concept", "cluster", "domain", "caption language", "score"
    key: Any  # concept id, column value, or (score column, bin index | None for no value)
    label: str
    base: int
    kept: int

    @property
    def removed(self) -> int:
        return self.base - self.kept

    @property
    def retention(self) -> float:
        return self.kept / self.base if self.base else 0.0

    @property
    def removal(self) -> float:
        return 1.0 - self.retention if self.base else 0.0


@dataclass
class Impact:
    """The comparison of a Selection with its base (see the module docstring)."""

    base_rows: int
    kept_rows: int
    groups: list[Group] = field(default_factory=list)
    bins: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # (lo, width, n)
    tail: dict[str, Any] | None = None  # backend.impact_tail.long_tail's result
    notes: list[str] = field(default_factory=list)  # what did not run, why, and the command
    provenance: dict[str, str] = field(default_factory=dict)  # score column -> where it came from
    vocab: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  # what the concepts, clusters came from

    def attach(self, inputs: dict[str, Any]) -> Impact:
        """Record which vocabulary and which map the groups came from (:func:`dataset_inputs`)."""
        self.vocab = inputs.get("vocab")
        self.sources = dict(inputs.get("sources") or {})
        return self

    @property
    def removal(self) -> float:
        return 1.0 - self.kept_rows / self.base_rows if self.base_rows else 0.0

    def flags(self, factor: float = FACTOR, min_rows: int = MIN_ROWS,
              alpha: float = ALPHA) -> list[Group]:  # fmt: skip
        """Groups of at least ``min_rows`` base rows whose removal rate is at least ``factor``
        times the overall one *and* unlikely by chance: removing that many of its rows at the
        overall rate has a one-sided binomial probability under ``alpha`` (with a 0.4% overall
        rate, 1 row of 17 is 15x the rate but happens 7% of the time: not flagged). Most
        disproportionate first (then most rows removed)."""
        overall = self.removal
        if overall <= 0:
            return []
        from scipy.stats import binom

        out = [g for g in self.groups
               if g.base >= min_rows and g.removal >= factor * overall and g.removed > 0
               and binom.sf(g.removed - 1, g.base, overall) < alpha]  # fmt: skip
        return sorted(out, key=lambda g: (-g.removal, -g.removed, g.kind, g.label))

    def by_kind(self, kind: str) -> list[Group]:
        return [g for g in self.groups if g.kind == kind]

    def summary(self, factor: float = FACTOR, min_rows: int = MIN_ROWS, most: int = 20,
                alpha: float = ALPHA) -> dict:  # fmt: skip
        """JSON-ready facts for an export manifest: totals, the flagged groups, the long tail's
        slopes and shares, and what did not run."""
        flagged = self.flags(factor, min_rows, alpha)
        out: dict[str, Any] = {
            "base_rows": self.base_rows, "kept_rows": self.kept_rows,
            "removal_rate": round(self.removal, 6), "factor": factor, "min_rows": min_rows,
            "alpha": alpha,
            "groups_measured": {k: len(self.by_kind(k)) for k in dict.fromkeys(
                g.kind for g in self.groups)},
            "flagged": len(flagged),
            "flags": [{"kind": g.kind, "group": g.label, "base": g.base, "kept": g.kept,
                       "removal_rate": round(g.removal, 6),
                       "ratio": round(g.removal / self.removal, 3)} for g in flagged[:most]],
            "notes": list(self.notes), "score_provenance": dict(self.provenance),
            "vocab": self.vocab, "sources": dict(self.sources),
        }  # fmt: skip
        if self.tail is not None:
            from backend.impact_tail import tail_summary

            out["long_tail"] = tail_summary(self.tail, most)
        return out


def clause(x: Selection | Clause, cols: dict[str, str]) -> Clause:
    """A (resolved) Selection or a ready (where, params) pair as a (where, params) pair; a
    Selection's ``limit`` (its first N rows by its sort) holds, as in Export."""
    if isinstance(x, Selection):
        where, params = x.where(cols)
        if x.limit is not None:
            where = f"row_id IN (SELECT row_id FROM samples WHERE {where} {x.order_limit(cols)})"
        return where, params
    return x[0], list(x[1])


def measure(
    con: Any, base: Selection | Clause, sel: Selection | Clause, *,
    hits: tuple[np.ndarray, np.ndarray, list[str]] | None = None,
    image_hits: tuple[np.ndarray, np.ndarray] | None = None,
    labels: dict[int, str] | None = None, scores: dict[str, str] | None = None,
    bins: int = BINS, top: dict[str, int] | None = None, min_count: int = 5, name: str = "NAME",
) -> Impact:  # fmt: skip
    """The impact of keeping ``sel``'s rows of ``base`` (both resolved).

    ``hits``: a vocabulary's caption hits (row ids, concept ids, concept names); ``image_hits``
    its image side (row ids, concept ids), when it ran. ``labels``: cluster id -> label.
    ``scores``: score column -> provenance words (bins are made for each numeric one present).
    ``min_count``: a concept "falls below" when its count drops under it."""
    cols = columns(con)
    bw, bp = clause(base, cols)
    sw, sp = clause(sel, cols)
    kept = f"coalesce(({sw}), FALSE)"
    n, k = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {kept}) FROM samples "
                       f"WHERE {bw}", [*sp, *bp]).fetchone()  # fmt: skip
    out = Impact(int(n), int(k), provenance=dict(scores or {}))
    for col, kind in COLUMN_KINDS:
        if col not in cols:
            if col == "language":
                out.notes.append("caption language: not run — the dataset has no `language` "
                                 f"column (`{LANGUAGE_HINT.format(name=name)}`)")  # fmt: skip
            elif col == "cluster":
                out.notes.append(f"clusters: not run — no map (`python -m backend map {name}`)")
            continue
        most = (top or TOP).get(col, 50)
        out.groups += _column_groups(con, col, kind, bw, bp, kept, sp, most, labels or {})
    for col in scores or {}:
        if col in cols and _numeric(cols[col]):
            out.groups += _score_groups(con, col, bw, bp, kept, sp, bins, out.bins)
    if hits is None:
        out.notes.append("concepts: not run — no concept counts "
                         f"(`python -m backend concepts {name} --vocab …`)")  # fmt: skip
        return out
    if out.base_rows > MAX_HIT_ROWS:
        out.notes.append(f"concepts: not run — the base has {out.base_rows:,} rows, more than "
                         f"the {MAX_HIT_ROWS:,} concept retention reads into memory; narrow it")
        return out
    in_base, in_kept = _base_flags(con, bw, bp, kept, sp)
    names = hits[2]
    before, after = _concept_counts(hits[0], hits[1], len(names), in_base, in_kept)
    out.groups += _concept_groups("concept", names, before, after)
    if image_hits is None:
        out.notes.append("image concepts: not run — count again with the image side "
                         f"(`python -m backend concepts {name} --vocab … --images`)")  # fmt: skip
    else:
        ib, ia = _concept_counts(image_hits[0], image_hits[1], len(names), in_base, in_kept)
        out.groups += _concept_groups("image concept", names, ib, ia)
    from backend.impact_tail import long_tail

    out.tail = long_tail(names, before, after, min_count)
    return out


def _numeric(duck_type: str) -> bool:
    from backend.selection import is_numeric

    return is_numeric(duck_type)


def _column_groups(con, col, kind, bw, bp, kept, sp, top, labels) -> list[Group]:
    q = quote_ident(col)
    got = con.execute(
        f"SELECT {q} AS g, count(*) AS n, count(*) FILTER (WHERE {kept}) FROM samples "
        f"WHERE ({bw}) AND {q} IS NOT NULL GROUP BY g ORDER BY n DESC, g LIMIT ?",
        [*sp, *bp, int(top)],
    ).fetchall()
    out = []
    for g, n, k in got:
        label = str(g)
        if col == "cluster":
            label = f"{labels.get(int(g)) or 'cluster'} (#{int(g)})"
        out.append(Group(kind, g, label, int(n), int(k)))
    return out


def _bin_expr(col: str) -> str:
    """The bin index of a score value (three parameters: lo, width, last bin)."""
    return f"least(greatest(floor(({quote_ident(col)}::DOUBLE - ?) / ?), 0), ?)::BIGINT"


def _score_groups(con, col, bw, bp, kept, sp, bins, edges) -> list[Group]:
    """Equal-width bins over the base's range of ``col``, plus a "no value" group (a range on
    the score drops those rows: the gap the threshold view's footnote mentions)."""
    q = quote_ident(col)
    lo, hi = con.execute(f"SELECT min({q}::DOUBLE), max({q}::DOUBLE) FROM samples WHERE ({bw}) "
                         f"AND isfinite({q}::DOUBLE)", bp).fetchone()  # fmt: skip
    out: list[Group] = []
    if lo is not None:
        width = (hi - lo) / bins if hi > lo else 1.0
        edges[col] = (float(lo), float(width), int(bins))
        got = con.execute(
            f"SELECT {_bin_expr(col)} AS b, count(*), count(*) FILTER (WHERE {kept}) "
            f"FROM samples WHERE ({bw}) AND isfinite({q}::DOUBLE) GROUP BY b ORDER BY b",
            [lo, width, bins - 1, *sp, *bp],
        ).fetchall()
        for b, n, k in got:
            a = lo + b * width
            out.append(Group("score", (col, int(b)), f"{col} {a:.3g}–{a + width:.3g}", n, k))
    n, k = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {kept}) FROM samples "
                       f"WHERE ({bw}) AND NOT coalesce(isfinite({q}::DOUBLE), FALSE)",
                       [*sp, *bp]).fetchone()  # fmt: skip
    if n:
        out.append(Group("score", (col, None), f"{col}: no value", int(n), int(k)))
    return out


def _base_flags(con, bw, bp, kept, sp) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row ids of the base, and whether the Selection keeps each."""
    got = con.execute(f"SELECT row_id, {kept} AS k FROM samples WHERE {bw} ORDER BY row_id",
                      [*sp, *bp]).fetchnumpy()  # fmt: skip
    return np.asarray(got["row_id"], np.int64), np.asarray(got["k"], bool)


def _concept_counts(rows, ids, n, base_ids, kept) -> tuple[np.ndarray, np.ndarray]:
    """Per concept: hit rows in the base, and of those kept (a row counts once per concept)."""
    rows = np.asarray(rows, np.int64)
    pos = np.searchsorted(base_ids, rows)
    inside = pos < len(base_ids)
    inside[inside] = base_ids[pos[inside]] == rows[inside]
    cid = np.asarray(ids, np.int64)[inside]
    before = np.bincount(cid, minlength=n)
    after = np.bincount(cid[kept[pos[inside]]], minlength=n)
    return before, after


def _concept_groups(kind, names, before, after) -> list[Group]:
    return [Group(kind, int(c), names[c], int(before[c]), int(after[c]))
            for c in np.flatnonzero(before)]  # fmt: skip


def group_clause(group: Group, impact: Impact,
                 hits: tuple[np.ndarray, np.ndarray] | None = None) -> Clause:  # fmt: skip
    """The rows of ``group`` as a predicate (``hits``: the concept hits its kind counts)."""
    if group.kind in ("concept", "image concept"):
        if hits is None:
            raise ValueError("a concept group's rows need its hits")
        ids = np.unique(np.asarray(hits[0])[np.asarray(hits[1]) == group.key])
        return IDS_IN, [ids.tolist()]
    if group.kind == "score":
        col, b = group.key
        if b is None:
            return f"NOT coalesce(isfinite({quote_ident(col)}::DOUBLE), FALSE)", []
        lo, width, n = impact.bins[col]
        return (f"isfinite({quote_ident(col)}::DOUBLE) AND {_bin_expr(col)} = ?",
                [lo, width, n - 1, b])  # fmt: skip
    col = next(c for c, kind in COLUMN_KINDS if kind == group.kind)
    return f"{quote_ident(col)} = ?", [group.key]


def gallery(
    con: Any, base: Selection | Clause, sel: Selection | Clause, group: Clause,
    removed: bool, limit: int = 6,
) -> list[dict[str, Any]]:  # fmt: skip
    """Card rows of one group of the base: those the Selection removes (``removed``) or keeps,
    lowest row id first."""
    cols = columns(con)
    bw, bp = clause(base, cols)
    sw, sp = clause(sel, cols)
    picked = [c for c in CARD_COLUMNS if c in cols] + (["nsfw"] if "nsfw" in cols else [])
    side = f"{'NOT ' if removed else ''}coalesce(({sw}), FALSE)"
    cur = con.execute(
        f"SELECT {', '.join(quote_ident(c) for c in picked)} FROM samples "
        f"WHERE ({bw}) AND ({group[0]}) AND {side} ORDER BY row_id LIMIT ?",
        [*bp, *group[1], *sp, int(limit)],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def dataset_inputs(con: Any, name: str, root: Any = None, vocab: str | None = None) -> dict:
    """What :func:`measure` groups by, read from a dataset's stored steps: the concept hits of
    ``vocab`` (the first counted one by default) and its image side, the map's cluster labels,
    and the score columns with their provenance. Missing steps are left out (measure says so)."""
    import pyarrow.parquet as pq

    from backend import paths
    from backend.concepts.run import list_vocabs, load
    from backend.manifest import read_manifest
    from backend.map_files import describe_map, load_clusters
    from backend.scores import catalog

    cols = columns(con)
    cat = catalog(read_manifest(paths.manifest_path(name, root)), list(cols))
    out: dict[str, Any] = {
        "labels": {int(c["cluster"]): str(c.get("label") or "") for c in load_clusters(name, root)},
        "scores": {c: str(v.get("label") or v.get("source") or "") for c, v in cat.items()},
        "hits": None, "image_hits": None, "vocab": None, "sources": {},
    }  # fmt: skip
    m = describe_map(name, root)
    if m.get("vectors"):
        v = m["vectors"]
        out["sources"]["clusters"] = (f"map step: {m.get('method')} of {v.get('kind')} vectors of "
                                      f"{v.get('model')}, {m.get('clustering') or 'k-means'} "
                                      f"({m.get('k')})")  # fmt: skip
    vocabs = list_vocabs(name, root)
    pick = vocab if vocab in vocabs else (vocabs[0] if vocabs else None)
    if pick is None:
        return out
    result = load(name, pick, root)
    out.update(hits=(result.rows, result.ids, list(result.vocab.concepts)), vocab=pick)
    out["sources"]["concepts"] = (f"vocabulary {pick!r} ({result.vocab.source}), caption "
                                  "matching")  # fmt: skip
    img = result.folder / "image_hits.parquet"
    if img.is_file():
        t = pq.read_table(img)
        out["image_hits"] = (t["row_id"].to_numpy(), t["concept_id"].to_numpy())
    return out


def for_export(con: Any, name: str, root: Any, where: str, params: list[Any]) -> dict:
    """The impact summary an export manifest records beside its recipe: the exported rows
    against the whole dataset. A failure (a time or memory limit) is recorded, not raised."""
    try:
        got = dataset_inputs(con, name, root)
        imp = measure(con, Selection(), (where, params), hits=got["hits"],
                      image_hits=got["image_hits"], labels=got["labels"], scores=got["scores"],
                      name=name)  # fmt: skip
        imp.attach(got)
        return {"base": "whole dataset", **imp.summary()}
    except Exception as e:  # noqa: BLE001 - the export itself must not fail on its audit
        return {"not_run": f"{type(e).__name__}: {e}".splitlines()[0]}
