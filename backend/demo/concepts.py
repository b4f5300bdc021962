"""The demo's concept vocabulary, its Zipf law, and the one rule for finding a concept in text.

Synthetic captions are built from these words only, so the exact number of captions that
mention each concept is known and a concept search can be checked against it.
"""

from __future__ import annotations

import re
from functools import cache

# Shapes in Zipf rank order: the first is the most frequent.
SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "heart",
    "ring",
    "cross",
    "hexagon",
    "diamond",
    "arrow",
    "crescent",
    "pentagon",
)
ZIPF_EXPONENT = 1.1

# Colour names and the RGB used to draw them (also in rough frequency order).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 35, 40),
    "blue": (35, 80, 215),
    "green": (40, 150, 60),
    "yellow": (245, 205, 30),
    "black": (25, 25, 25),
    "white": (248, 248, 248),
    "orange": (245, 125, 20),
    "purple": (125, 50, 170),
    "pink": (240, 120, 175),
    "brown": (125, 75, 35),
}
COLOUR_EXPONENT = 0.8

BACKGROUNDS: tuple[str, ...] = (
    "plain",
    "grass",
    "sky",
    "paper",
    "gravel",
    "brick",
    "checkerboard",
)
BACKGROUND_EXPONENT = 0.6


def vocabulary() -> dict[str, list[str]]:
    return {"shape": list(SHAPES), "colour": list(COLOURS), "background": list(BACKGROUNDS)}


def plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x", "sh", "ch")) else "s")


@cache
def concept_pattern(concept: str) -> re.Pattern[str]:
    """Whole word, case-insensitive, singular or plural: ``circles`` counts for ``circle``."""
    return re.compile(rf"\b{re.escape(concept)}(?:es|s)?\b", re.IGNORECASE)


def find_concepts(caption: str) -> list[str]:
    """Every vocabulary concept the caption mentions, in vocabulary order."""
    words = [w for group in vocabulary().values() for w in group]
    return [w for w in words if concept_pattern(w).search(caption)]


def zipf_weights(n: int, s: float) -> list[float]:
    raw = [1.0 / (k**s) for k in range(1, n + 1)]
    total = sum(raw)
    return [w / total for w in raw]


def zipf_counts(total: int, n: int, s: float) -> list[int]:
    """Split ``total`` into ``n`` integer counts proportional to 1/k^s (largest remainder).

    The counts never increase with rank: a higher quota never gets a smaller share.
    """
    quotas = [total * w for w in zipf_weights(n, s)]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(n), key=lambda i: (counts[i] - quotas[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts
