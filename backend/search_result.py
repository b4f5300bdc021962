"""What a search returns (:class:`Result`: hits, which vectors and model answered, notes) and
the error of a query that cannot run.

Its own module so that the searches beside :mod:`backend.search` (the shipped-vector ones of
:mod:`backend.shipped_search`) return the same thing without importing the searcher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SearchError(ValueError):
    """A query that cannot run: empty, unknown row, missing step. The message says what to do."""


@dataclass
class Result:
    hits: list[dict[str, Any]]
    space: str  # which vectors were searched, in words
    seconds: float
    notes: list[str] = field(default_factory=list)
    vectors: str | None = None  # the embedding kind searched ("img", "text"); None: keywords
    model: str | None = None  # the model of those vectors (or the keyword ranker)
