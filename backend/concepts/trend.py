"""Zero-shot accuracy against concept frequency, on the user's own numbers.

"No 'Zero-Shot' Without Exponential Data" (Udandarao et al., 2024) finds a model's zero-shot
accuracy on a concept grows about linearly in the *logarithm* of the concept's pretraining
frequency. Given per-class accuracies of a model trained on this dataset (CSV
``concept,accuracy``) and the dataset's concept counts, :func:`fit` fits
``accuracy = a + b · log10(count)`` by least squares over the classes with a count above zero,
as the paper plots it; ``b`` is the gain per tenfold more data.

For a target accuracy, :func:`needs` gives each class the count it would need, moving along a
line of the fitted slope through the class's own point: ``count · 10^((target − acc) / b)``, and
how far that is (×, and rows to add). The pooled line's own answer, ``10^((target − a) / b)``,
is reported beside it. Classes with count 0 have no logarithm: listed, not fitted.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from backend.concepts.vocab import normalise


class TrendError(ValueError):
    """An accuracy file or a fit that cannot be used: the message says why."""


def parse_accuracies(data: bytes) -> tuple[list[tuple[str, float]], list[dict], str | None]:
    """(class, accuracy) pairs of a ``concept,accuracy`` CSV (a header row is optional), the
    rows skipped with their reason, and a note when accuracies were read as percentages (all
    in 0–100, some above 1). Accuracy must be in [0, 1] (or 0–100 as percentages)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TrendError("the accuracy file is not UTF-8 text") from None
    rows, skipped = [], []
    for n, rec in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not rec or not "".join(rec).strip():
            continue
        if len(rec) < 2:
            skipped.append({"line": n, "row": ",".join(rec), "reason": "needs concept,accuracy"})
            continue
        name, raw = rec[0].strip(), rec[1].strip().rstrip("%")
        try:
            acc = float(raw)
        except ValueError:
            if n == 1:  # a header
                continue
            skipped.append({"line": n, "row": ",".join(rec), "reason": f"{raw!r} is not a number"})
            continue
        if not name or not math.isfinite(acc) or acc < 0:
            skipped.append({"line": n, "row": ",".join(rec), "reason": "empty name or bad value"})
            continue
        rows.append((name, acc))
    note = None
    if rows and max(a for _, a in rows) > 1:
        if max(a for _, a in rows) > 100:
            raise TrendError("accuracies must be in 0–1 (or 0–100 as percentages)")
        rows = [(c, a / 100) for c, a in rows]
        note = "accuracies above 1 were read as percentages (divided by 100)"
    if not rows:
        raise TrendError("no concept,accuracy rows in the file")
    return rows, skipped, note


def join_counts(accuracies: list[tuple[str, float]], counts: dict[str, int]) -> list[dict]:
    """Each class with its count in the dataset (looked up by its matching form, as the
    coverage check does); ``count`` is None for a class the vocabulary lacks."""
    by_key = {normalise(k): v for k, v in counts.items()}
    return [{"concept": c, "accuracy": a, "count": by_key.get(normalise(c))}
            for c, a in accuracies]  # fmt: skip


def fit(count: np.ndarray, accuracy: np.ndarray) -> dict[str, Any]:
    """Least squares of accuracy on log10(count) over classes with count > 0: slope ``b``
    (accuracy per tenfold count), intercept ``a``, r², and how many classes it used."""
    count = np.asarray(count, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
    ok = count > 0
    if ok.sum() < 3 or len(np.unique(count[ok])) < 2:
        raise TrendError("a fit needs at least 3 classes seen in the data, at 2 different counts")
    x, y = np.log10(count[ok]), acc[ok]
    b, a = np.polyfit(x, y, 1)
    ss = ((y - y.mean()) ** 2).sum()
    r2 = 1 - ((y - (a + b * x)) ** 2).sum() / ss if ss > 0 else 1.0
    return {"slope": float(b), "intercept": float(a), "r2": float(r2), "classes": int(ok.sum()),
            "unseen": int((~ok).sum())}  # fmt: skip


def needs(rows: list[dict], f: dict[str, Any], target: float) -> list[dict]:
    """Per class with a count: the count it would need for ``target`` along the fitted slope
    through its own point, the factor (needed / now) and the rows to add; furthest first.
    A slope ≤ 0 says more data does not help on these numbers: no answer is made up."""
    b = f["slope"]
    out = []
    for r in rows:
        if not r["count"]:
            continue
        if b <= 0:
            need = None
        else:
            need = r["count"] * 10 ** ((target - r["accuracy"]) / b)
        factor = None if need is None else need / r["count"]
        out.append({**r, "needed": need, "factor": factor,
                    "add": None if need is None else max(0.0, need - r["count"])})  # fmt: skip
    return sorted(out, key=lambda d: (-(d["factor"] or 0), d["concept"]))


def pooled_need(f: dict[str, Any], target: float) -> float | None:
    """The count at which the fitted line itself reaches ``target`` (None for a slope ≤ 0)."""
    return 10 ** ((target - f["intercept"]) / f["slope"]) if f["slope"] > 0 else None
