"""The errors the keyword search shows to users (index, build and query modules share them).

Kept apart so the query parser and the index can both raise them without importing each other.
"""

from __future__ import annotations


class KeywordError(Exception):
    """Base of the errors this module shows to users."""


class KeywordQueryError(KeywordError, ValueError):
    """The search text cannot be run; the message says why in plain words."""


class KeywordIndexMissing(KeywordError, FileNotFoundError):
    """No usable index (never built, corrupt, or built by an older format): say how to build."""


class KeywordIndexStale(KeywordIndexMissing):
    """The index was built from an earlier build of the store: its row ids would be wrong."""
