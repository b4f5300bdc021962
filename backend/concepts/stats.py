"""The long tail in numbers: rank–frequency, its power-law slope, head/torso/tail shares,
misalignment between caption and image concepts, and a coverage check of a class list.

Slope: counts sorted descending follow count ≈ C · rank^(-s) on a Zipf-like tail; ``s`` is the
negated least-squares slope of log(count) on log(rank), fitted over the head and torso only —
the ranks whose count is at least ``min_count`` (default 5) — because the tail's small counts
are dominated by sampling noise (a count of 1 or 0 says little about its rate) and zero counts
have no logarithm. Head/torso/tail: the top ``head`` fraction of concepts by rank (default
10%), the next ones up to ``torso`` (default 50%), and the rest (never-seen concepts included).
"""

from __future__ import annotations

import numpy as np

HEAD, TORSO, MIN_COUNT = 0.10, 0.50, 5


def rank_frequency(counts: np.ndarray) -> np.ndarray:
    """Counts sorted from the most frequent concept down (rank 1 first), zeros kept."""
    return np.sort(np.asarray(counts, dtype=np.int64))[::-1]


def fit_slope(counts: np.ndarray, min_count: int = MIN_COUNT) -> dict:
    """Power-law exponent ``s`` (count ∝ rank^-s) by log-log least squares on ranks with
    count ≥ ``min_count``; ``s`` is None with a reason when fewer than 3 ranks qualify."""
    ranked = rank_frequency(counts)
    used = int((ranked >= max(min_count, 1)).sum())
    if used < 3:
        return {"slope": None, "intercept": None, "ranks_fitted": used,
                "reason": f"fewer than 3 concepts with count ≥ {min_count}"}  # fmt: skip
    x = np.log(np.arange(1, used + 1))
    y = np.log(ranked[:used].astype(float))
    b, a = np.polyfit(x, y, 1)
    r2 = 1 - ((y - (a + b * x)) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12)
    return {"slope": float(-b), "intercept": float(a), "ranks_fitted": used, "r2": float(r2),
            "min_count": min_count}  # fmt: skip


def shares(counts: np.ndarray, head: float = HEAD, torso: float = TORSO) -> dict:
    """How many concepts, and what share of all hits, sit in the head, torso and tail."""
    ranked = rank_frequency(counts)
    n, total = len(ranked), int(ranked.sum())
    h = max(1, int(round(n * head))) if n else 0
    t = max(h, int(round(n * torso)))
    out = {}
    for part, lo, hi in (("head", 0, h), ("torso", h, t), ("tail", t, n)):
        hits = int(ranked[lo:hi].sum())
        out[part] = {"concepts": hi - lo, "hits": hits, "share": hits / total if total else 0.0}
    out["unseen"] = int((ranked == 0).sum())
    return out


def misalignment(
    cap_rows: np.ndarray, cap_ids: np.ndarray, img_rows: np.ndarray, img_ids: np.ndarray,
    n_concepts: int, scored_rows: np.ndarray,
) -> dict:  # fmt: skip
    """Per concept, among rows whose image was scored: the share of rows whose caption names
    it but whose image does not show it (``caption_only``), and the reverse (``image_only``).
    Dataset level: of the scored rows whose caption names at least one concept, the share
    where the image shows none of them (the rate the long-tail paper reports)."""
    scored = np.isin(cap_rows, scored_rows)
    cap_rows, cap_ids = cap_rows[scored], cap_ids[scored]
    n = np.int64(n_concepts)
    ck = cap_rows * n + cap_ids
    ik = img_rows.astype(np.int64) * n + img_ids
    both = np.isin(ck, ik)
    cap_n = np.bincount(cap_ids, minlength=n_concepts)
    img_n = np.bincount(img_ids, minlength=n_concepts)
    both_n = np.bincount(cap_ids[both], minlength=n_concepts)
    with np.errstate(invalid="ignore", divide="ignore"):
        cap_only = np.where(cap_n > 0, (cap_n - both_n) / cap_n, np.nan)
        img_only = np.where(img_n > 0, (img_n - both_n) / img_n, np.nan)
    named = np.unique(cap_rows)
    aligned = np.unique(cap_rows[both])
    rate = 1 - len(aligned) / len(named) if len(named) else None
    return {"caption_only": cap_only, "image_only": img_only,
            "rows_named": int(len(named)), "rows_misaligned": int(len(named) - len(aligned)),
            "rate": rate}  # fmt: skip


def coverage(counts: dict[str, int], classes: list[str], rare_below: int = 10) -> list[dict]:
    """Each class of a benchmark's list with its count in this dataset and whether it is
    ``absent`` (0), ``rare`` (below ``rare_below``) or ``covered``; rarest first. Classes are
    looked up by their matching form; one the vocabulary lacks is ``not in vocabulary``."""
    from backend.concepts.vocab import normalise

    by_key = {normalise(k): v for k, v in counts.items()}
    rows = []
    for c in dict.fromkeys(x.strip() for x in classes if x.strip()):
        n = by_key.get(normalise(c))
        status = ("not in vocabulary" if n is None else "absent" if n == 0
                  else "rare" if n < rare_below else "covered")  # fmt: skip
        rows.append({"class": c, "count": n, "status": status})
    rows.sort(key=lambda r: (r["count"] is not None, r["count"] or 0, r["class"]))
    return rows
