"""The Selection: what the user is looking at, compiled to one parameterised DuckDB predicate.

Every page reads and writes a Selection, so filters set on one page hold on the others and an
export writes exactly what was shown. Column names are checked against the table's schema and
quoted; values are always bound parameters, never spliced into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL")  # fmt: skip


class BadSelection(ValueError):
    """A filter that names an unknown column or holds an impossible value."""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_numeric(duck_type: str) -> bool:
    return duck_type.upper().startswith(NUMERIC_TYPES) or duck_type.upper().startswith("DECIMAL")


@dataclass
class Selection:
    """Caption words (all must appear, case-insensitive), numeric ranges, source shards, and
    a keyword query over the full-text index.

    ``keywords`` is resolved to the matching row ids (``keyword_ids``) by
    :func:`backend.search.resolve_keywords` before the Selection is compiled: the match comes
    from the tantivy index, not from SQL.
    """

    text: str = ""
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    shards: list[str] = field(default_factory=list)
    keywords: str = ""
    keyword_ids: tuple[int, ...] | None = field(default=None, repr=False, compare=False)

    def is_empty(self) -> bool:
        return not (self.text.strip() or self.ranges or self.shards or self.keywords.strip())

    def where(self, columns: dict[str, str]) -> tuple[str, list[Any]]:
        """SQL predicate and its parameters; ``columns`` maps column name to DuckDB type."""
        parts: list[str] = []
        params: list[Any] = []
        for word in self.text.lower().split():
            parts.append("contains(lower(caption), ?)")
            params.append(word)
        for col, (lo, hi) in sorted(self.ranges.items()):
            if col not in columns:
                raise BadSelection(f"no column named {col!r}")
            if not is_numeric(columns[col]):
                raise BadSelection(f"column {col!r} is {columns[col]}, not numeric")
            if lo is not None and hi is not None and lo > hi:
                raise BadSelection(f"{col}: minimum {lo} is above maximum {hi}")
            if lo is not None:
                parts.append(f"{quote_ident(col)} >= ?")
                params.append(lo)
            if hi is not None:
                parts.append(f"{quote_ident(col)} <= ?")
                params.append(hi)
        if self.shards:
            parts.append(f"shard IN ({', '.join('?' for _ in self.shards)})")
            params.extend(self.shards)
        if self.keywords.strip():
            if self.keyword_ids is None:
                raise BadSelection("the keyword filter was not resolved against the index")
            parts.append("row_id IN (SELECT unnest(?::BIGINT[]))")
            params.append(list(self.keyword_ids))
        return (" AND ".join(parts) or "TRUE"), params

    def describe(self) -> list[str]:
        """Short human labels, one per part, for the selection bar."""
        out = [f'caption has "{w}"' for w in self.text.split()]
        for col, (lo, hi) in sorted(self.ranges.items()):
            lo_s = "" if lo is None else f"{lo:g} ≤ "
            hi_s = "" if hi is None else f" ≤ {hi:g}"
            out.append(f"{lo_s}{col}{hi_s}")
        if self.shards:
            out.append(
                "shard in " + ", ".join(self.shards[:3]) + ("…" if len(self.shards) > 3 else "")
            )
        if self.keywords.strip():
            out.append(f"keywords: {self.keywords.strip()}")
        return out
