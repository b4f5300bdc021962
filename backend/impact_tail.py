"""The long tail before and after a filter: both rank–frequency curves, both power-law slopes,
head/torso/tail shares, and the concepts that vanish or fall below a count the user sets.

"No 'Zero-Shot' Without Exponential Data" finds zero-shot accuracy on a concept grows about
log-linearly with its pretraining frequency: a filter that thins the tail costs exactly the rare
concepts, so those are listed by name. Slopes and shares are :mod:`backend.concepts.stats`'s,
fitted the same way for both curves (ranks with count ≥ its ``min_count``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.concepts import stats


def long_tail(names: list[str], before: np.ndarray, after: np.ndarray,
              min_count: int = 5) -> dict[str, Any]:  # fmt: skip
    """Both curves and what changed between them. ``vanished``: concepts the base has and the
    Selection keeps none of; ``below``: concepts at or above ``min_count`` in the base and
    under it (but not gone) after; both as (name, before, after), most frequent first."""
    before = np.asarray(before, np.int64)
    after = np.asarray(after, np.int64)
    order = np.argsort(-before, kind="stable")
    gone = [int(c) for c in order if before[c] > 0 and after[c] == 0]
    low = [int(c) for c in order if before[c] >= min_count and 0 < after[c] < min_count]
    return {
        "before": stats.rank_frequency(before), "after": stats.rank_frequency(after),
        "slope_before": stats.fit_slope(before), "slope_after": stats.fit_slope(after),
        "shares_before": stats.shares(before), "shares_after": stats.shares(after),
        "seen_before": int((before > 0).sum()), "seen_after": int((after > 0).sum()),
        "vanished": [(names[c], int(before[c]), 0) for c in gone],
        "below": [(names[c], int(before[c]), int(after[c])) for c in low],
        "min_count": int(min_count),
    }  # fmt: skip


def share_line(shares: dict[str, Any]) -> str:
    """'head 61% · torso 33% · tail 6%' of all concept hits."""
    return " · ".join(f"{p} {shares[p]['share']:.0%}" for p in ("head", "torso", "tail"))


def tail_summary(tail: dict[str, Any], most: int = 20) -> dict[str, Any]:
    """The JSON-ready part of :func:`long_tail` (no per-rank arrays) for a manifest."""
    def slope(fit: dict) -> float | None:
        return None if fit.get("slope") is None else round(float(fit["slope"]), 4)

    return {
        "slope_before": slope(tail["slope_before"]), "slope_after": slope(tail["slope_after"]),
        "shares_before": {p: round(tail["shares_before"][p]["share"], 4)
                          for p in ("head", "torso", "tail")},
        "shares_after": {p: round(tail["shares_after"][p]["share"], 4)
                         for p in ("head", "torso", "tail")},
        "concepts_seen_before": tail["seen_before"], "concepts_seen_after": tail["seen_after"],
        "vanished": len(tail["vanished"]),
        "vanished_first": [v[0] for v in tail["vanished"][:most]],
        "below_min_count": len(tail["below"]), "min_count": tail["min_count"],
        "below_first": [b[0] for b in tail["below"][:most]],
    }  # fmt: skip
