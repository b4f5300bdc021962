"""What a user's query can fail with: a bad Selection, an unsafe SQL condition, a query past
its time or memory limit.

The Selection (:mod:`backend.selection`), the SQL guard (:mod:`backend.sqlguard`) and the
limits (:mod:`backend.bounded`) all raise these; keeping them here lets the dependency run
one way (selection -> sqlguard -> bounded) instead of each module importing the others.
"""

from __future__ import annotations


class BadSelection(ValueError):
    """A filter that names an unknown column or holds an impossible value."""


class UnsafeSQL(BadSelection):
    """A predicate that tries to do more than filter the rows of ``samples``."""


class QueryTimeout(BadSelection):
    """A query stopped because it ran past its time or memory limit (backend.bounded)."""
