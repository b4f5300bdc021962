"""Cluster mixtures (CLIMB-style): choose how much of each map cluster a training set holds.

CLIMB clusters a pool by embedding and searches for mixture weights per cluster; here the user
sets them (a table, "flatten" = equal weight per cluster, or "match" another subset's cluster
shares), previews the cluster and concept distributions that result, and takes either a
resampled subset or a per-row sampling-weight column.

Two outputs, two semantics:
- a **resample** allocates ``rows`` to clusters by the weights (largest remainder, so per-cluster
  counts are exact to one row) and draws each cluster's rows uniformly, seeded, with or without
  replacement (without: a cluster gives at most all its rows; the shortfall is reported);
- a **weight column** gives each row ``w_c / n_c × N`` (mean 1 over the rows), so a loader that
  samples rows in proportion to it draws cluster ``c`` with probability ``w_c``.
Rows without a cluster (no map, or NULL) take no part; they are counted and reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backend.browse import columns
from backend.selection import Selection

CLUSTER = "cluster"


class MixtureError(ValueError):
    """Weights that cannot make a mixture (all zero, negative, unknown clusters): says why."""


@dataclass
class Pool:
    """The rows a mixture draws from: sorted row ids and each one's cluster."""

    row_ids: np.ndarray
    clusters: np.ndarray
    without_cluster: int = 0

    def counts(self) -> dict[int, int]:
        ids, n = np.unique(self.clusters, return_counts=True)
        return {int(c): int(k) for c, k in zip(ids, n, strict=True)}


def pool(con: Any, sel: Selection, name: str = "NAME") -> Pool:
    """The (resolved) Selection's rows with a cluster, in row-id order (reproducible draws)."""
    cols = columns(con)
    if CLUSTER not in cols:
        raise MixtureError(f"no clusters yet: run `python -m backend map {name}` first")
    from backend.impact import clause  # the Selection's limit holds, as in Export

    where, params = clause(sel, cols)
    got = con.execute(f"SELECT row_id, cluster FROM samples WHERE ({where}) AND cluster IS NOT "
                      "NULL ORDER BY row_id", params).fetchnumpy()  # fmt: skip
    (missing,) = con.execute(f"SELECT count(*) FROM samples WHERE ({where}) AND cluster IS NULL",
                             params).fetchone()  # fmt: skip
    return Pool(np.asarray(got["row_id"], np.int64), np.asarray(got["cluster"], np.int64),
                int(missing))  # fmt: skip


def flatten(counts: dict[int, int]) -> dict[int, float]:
    """Equal weight for every cluster that has rows."""
    present = [c for c, n in counts.items() if n > 0]
    return {c: 1 / len(present) for c in sorted(present)} if present else {}


def shares(counts: dict[int, int]) -> dict[int, float]:
    """Each cluster's share of the rows: the weights that "match" a subset's mixture."""
    total = sum(counts.values())
    return {c: n / total for c, n in sorted(counts.items())} if total else {}


def normalise(weights: dict[int, float], counts: dict[int, int]) -> dict[int, float]:
    """Weights summing to 1 over the clusters that have rows; a weight on a cluster the pool
    lacks is dropped (it cannot be drawn), a negative or all-zero set is refused."""
    bad = {c: w for c, w in weights.items() if not (w >= 0 and np.isfinite(w))}
    if bad:
        raise MixtureError(f"weights must be finite and ≥ 0: {bad}")
    kept = {int(c): float(w) for c, w in weights.items() if counts.get(int(c), 0) > 0 and w > 0}
    total = sum(kept.values())
    if total <= 0:
        raise MixtureError("every weight is zero (or on clusters with no rows in the selection)")
    return {c: w / total for c, w in sorted(kept.items())}


def allocate(weights: dict[int, float], rows: int) -> dict[int, int]:
    """``rows`` split by normalised ``weights``, by largest remainder: exact to one row per
    cluster, summing to ``rows`` (ties go to the lower cluster id)."""
    if rows < 0:
        raise MixtureError("the number of rows must be ≥ 0")
    ideal = {c: w * rows for c, w in weights.items()}
    out = {c: int(np.floor(v)) for c, v in ideal.items()}
    left = rows - sum(out.values())
    for c in sorted(ideal, key=lambda c: (-(ideal[c] - out[c]), c))[:left]:
        out[c] += 1
    return out


@dataclass
class Sample:
    """A resample: the drawn row ids (with repeats when drawn with replacement), per cluster
    the target and the rows drawn, and what could not be met."""

    row_ids: np.ndarray
    target: dict[int, int]
    drawn: dict[int, int]
    weights: dict[int, float]
    recipe: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def copies(self) -> tuple[np.ndarray, np.ndarray]:
        """(unique row ids, how many times each was drawn)."""
        ids, n = np.unique(self.row_ids, return_counts=True)
        return ids, n


def resample(p: Pool, weights: dict[int, float], rows: int, seed: int,
             replace: bool = False) -> Sample:  # fmt: skip
    """Draw ``rows`` rows by cluster ``weights`` (see the module docstring), seeded."""
    counts = p.counts()
    w = normalise(weights, counts)
    target = allocate(w, rows)
    rng = np.random.default_rng(seed)
    order = np.argsort(p.clusters, kind="stable")
    sorted_clusters = p.clusters[order]
    out, drawn, notes = [], {}, []
    for c in sorted(target):
        lo, hi = np.searchsorted(sorted_clusters, [c, c + 1])
        members = p.row_ids[order[lo:hi]]  # row-id order within the cluster
        want = target[c]
        if not replace and want > len(members):
            notes.append(f"cluster {c}: {want:,} rows asked, it has {len(members):,} (all taken; "
                         "draw with replacement to reach the weight)")  # fmt: skip
            want = len(members)
        pick = rng.choice(len(members), size=want, replace=replace) if want else []
        out.append(members[np.asarray(pick, dtype=np.int64)])
        drawn[c] = int(want)
    if p.without_cluster:
        notes.append(f"{p.without_cluster:,} rows without a cluster take no part")
    ids = np.concatenate(out) if out else np.zeros(0, np.int64)
    recipe = {"weights": {str(c): v for c, v in w.items()}, "rows": int(rows), "seed": int(seed),
              "replace": bool(replace)}  # fmt: skip
    return Sample(np.sort(ids), target, drawn, w, recipe, notes)


def row_weights(p: Pool, weights: dict[int, float]) -> np.ndarray:
    """Per row of ``p``: ``w_c / n_c × N``, the sampling weight that draws cluster ``c`` with
    probability ``w_c`` (0 for clusters without weight); mean 1 over the pool's rows."""
    counts = p.counts()
    w = normalise(weights, counts)
    per = {c: w.get(c, 0.0) / n for c, n in counts.items()}
    lookup = np.vectorize(per.__getitem__, otypes=[np.float64])
    return lookup(p.clusters) * len(p.row_ids) if len(p.row_ids) else np.zeros(0)


def concept_preview(p: Pool, weights: dict[int, float], rows: int,
                    hits: tuple[np.ndarray, np.ndarray, list[str]]) -> list[dict]:  # fmt: skip
    """Per concept with hits in the pool: its rows now, and the rows it is expected to have
    in a ``rows``-row draw by these weights (each row's probability × rows), biggest first."""
    r, ids, names = hits
    pos = np.searchsorted(p.row_ids, r)
    inside = pos < len(p.row_ids)
    inside[inside] = p.row_ids[pos[inside]] == r[inside]
    prob = row_weights(p, weights) / max(len(p.row_ids), 1)
    cid = np.asarray(ids, np.int64)[inside]
    now = np.bincount(cid, minlength=len(names))
    expected = np.bincount(cid, weights=prob[pos[inside]] * rows, minlength=len(names))
    out = [{"concept": names[c], "now": int(now[c]), "expected": float(expected[c])}
           for c in np.flatnonzero(now)]  # fmt: skip
    return sorted(out, key=lambda d: (-d["expected"], d["concept"]))


def mixtures_dir(name: str, root: Path | None = None) -> Path:
    from backend import paths

    return paths.dataset_dir(name, root) / "mixtures"


def save(name: str, subset: str, sample: Sample, base: Selection, root: Path | None = None,
         overwrite: bool = False) -> dict:  # fmt: skip
    """Save the drawn rows as subset ``subset`` (each row once) and the draw itself — its
    recipe and ``row_id, copies`` — under ``mixtures/<subset>.json/.parquet``; an export of
    the subset records the recipe (``backend.export.run``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from backend import subsets
    from backend.manifest import now, write_json_atomic

    ids, copies = sample.copies()
    r = sample.recipe
    note = (f"cluster mixture: {len(sample.row_ids):,} draws, seed {r['seed']}, "
            f"{'with' if r['replace'] else 'without'} replacement")  # fmt: skip
    sub = subsets.save(name, subset, Selection(row_ids=tuple(int(i) for i in ids)), root,
                       note=note, overwrite=overwrite)  # fmt: skip
    folder = mixtures_dir(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"row_id": ids, "copies": copies.astype(np.int32)}),
                   folder / f"{subset}.parquet")  # fmt: skip
    record = {"subset": subset, "base": base.to_dict(), **r, "target": _keys(sample.target),
              "drawn": _keys(sample.drawn), "draws": int(len(sample.row_ids)),
              "unique_rows": int(len(ids)), "notes": sample.notes, "created": now(),
              "copies_file": f"mixtures/{subset}.parquet"}  # fmt: skip
    write_json_atomic(folder / f"{subset}.json", record)
    return {**record, "count": sub.count}


def _keys(d: dict[int, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in d.items()}


def record_of(name: str, subset: str | None, root: Path | None = None) -> dict | None:
    """The mixture record of a subset saved by :func:`save` (None for any other subset)."""
    if not subset:
        return None
    path = mixtures_dir(name, root) / f"{subset}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_weights(name: str, label: str, p: Pool, weights: dict[int, float],
                  base: Selection, root: Path | None = None) -> Path:  # fmt: skip
    """The per-row sampling weight column as ``mixtures/<label>.weights.parquet`` (``row_id,
    cluster, weight``) with its recipe beside it (``<label>.weights.json``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from backend import paths
    from backend.manifest import now, write_json_atomic

    paths.check_name(label)
    w = normalise(weights, p.counts())
    folder = mixtures_dir(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{label}.weights.parquet"
    pq.write_table(pa.table({"row_id": p.row_ids, "cluster": p.clusters,
                             "weight": row_weights(p, w)}), out)  # fmt: skip
    write_json_atomic(folder / f"{label}.weights.json", {
        "label": label, "base": base.to_dict(), "weights": _keys(w), "rows": len(p.row_ids),
        "without_cluster": p.without_cluster, "created": now(),
        "meaning": "sample rows in proportion to `weight` to draw cluster c with probability "
                   "weights[c]; mean weight 1"})  # fmt: skip
    return out
