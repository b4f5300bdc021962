"""Zero-shot trend: the fit recovers a planted log-linear slope; the frequency each class needs
for a target follows from it exactly; bad accuracy files lose nothing silently."""

from __future__ import annotations

import numpy as np
import pytest

from backend.concepts import trend


def test_fit_recovers_planted_slope() -> None:
    rng = np.random.default_rng(0)
    count = np.round(10 ** rng.uniform(1, 5, 200))
    acc = 0.1 + 0.12 * np.log10(count) + rng.normal(0, 0.01, 200)
    got = trend.fit(np.append(count, 0), np.append(acc, 0.5))  # a class never seen: not fitted
    assert got["slope"] == pytest.approx(0.12, abs=0.003)
    assert got["intercept"] == pytest.approx(0.1, abs=0.01)
    assert got["r2"] > 0.98 and (got["classes"], got["unseen"]) == (200, 1)


def test_needed_frequency_per_class() -> None:
    rows = [{"concept": "owl", "accuracy": 0.4, "count": 100},
            {"concept": "dog", "accuracy": 0.7, "count": 10_000},
            {"concept": "yak", "accuracy": 0.2, "count": None}]  # fmt: skip
    f = {"slope": 0.12, "intercept": 0.16}
    got = {d["concept"]: d for d in trend.needs(rows, f, target=0.64)}
    assert got["owl"]["needed"] == pytest.approx(10_000)  # +0.24 = two decades at 0.12
    assert got["owl"]["factor"] == pytest.approx(100) and got["owl"]["add"] == pytest.approx(9_900)
    assert got["dog"]["needed"] == pytest.approx(10_000 * 10 ** (-0.5)) and got["dog"]["add"] == 0
    assert "yak" not in got and [d["concept"] for d in trend.needs(rows, f, 0.64)][0] == "owl"
    assert trend.pooled_need(f, 0.64) == pytest.approx(10_000)
    assert trend.needs(rows, {"slope": -0.1, "intercept": 0}, 0.9)[0]["needed"] is None


def test_parse_accuracies_and_join() -> None:
    data = b"concept,accuracy\nOwl,40%\ndog,70\nbad,abc\n,0.3\nyak\ncat,55\n"
    rows, skipped, note = trend.parse_accuracies(data)
    assert rows == [("Owl", 0.4), ("dog", 0.7), ("cat", 0.55)]
    assert [s["line"] for s in skipped] == [4, 5, 6] and "percentages" in note
    joined = trend.join_counts(rows, {"owl": 12, "dog": 900})
    assert [r["count"] for r in joined] == [12, 900, None]
    with pytest.raises(trend.TrendError, match="0–1"):
        trend.parse_accuracies(b"a,150\n")
    with pytest.raises(trend.TrendError, match="at least 3"):
        trend.fit(np.array([10, 10, 0]), np.array([0.1, 0.2, 0.3]))
