"""The Selection: what the user is looking at, compiled to one parameterised DuckDB predicate.

Every page reads and writes a Selection, so filters set on one page hold on the others and an
export writes exactly what was shown. Column names are checked against the table's schema and
quoted; values are always bound parameters, never spliced into SQL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
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
    polygon: tuple[tuple[float, float], ...] = ()  # a lasso or box on the map, in map_x/map_y

    def is_empty(self) -> bool:
        return not (
            self.text.strip() or self.ranges or self.shards or self.keywords.strip() or self.polygon
        )

    def to_dict(self) -> dict[str, Any]:
        """The recipe form (JSON-ready): only the parts that are set; resolved ids left out."""
        out = asdict(self)
        out.pop("keyword_ids", None)
        default = Selection()
        return {k: v for k, v in out.items() if v != getattr(default, k)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        """Inverse of :meth:`to_dict`; unknown keys are refused (a recipe from a newer version
        must not be silently half-applied)."""
        known = {f.name for f in fields(cls) if f.name != "keyword_ids"}
        extra = set(data) - known
        if extra:
            raise BadSelection(f"unknown selection part(s): {', '.join(sorted(extra))}")
        kw = dict(data)
        if "ranges" in kw:
            kw["ranges"] = {str(c): (lo, hi) for c, (lo, hi) in kw["ranges"].items()}
        if "polygon" in kw:
            kw["polygon"] = tuple((float(x), float(y)) for x, y in kw["polygon"])
        if "shards" in kw:
            kw["shards"] = [str(s) for s in kw["shards"]]
        return cls(**kw)

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
        if self.polygon:
            clause, more = polygon_where(self.polygon, columns)
            parts.append(clause)
            params.extend(more)
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
        if self.polygon:
            out.append(f"map region ({len(self.polygon)} points)" if len(self.polygon) != 4
                       else "map box")
        return out


MAP_X, MAP_Y = "map_x", "map_y"
MAX_VERTICES = 256


def polygon_area(poly: tuple[tuple[float, float], ...]) -> float:
    """Absolute area by the shoelace formula (zero for a line or a point)."""
    n = len(poly)
    twice = sum(poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1]
                for i in range(n))  # fmt: skip
    return abs(twice) / 2


def polygon_where(
    poly: tuple[tuple[float, float], ...], columns: dict[str, str]
) -> tuple[str, list[Any]]:
    """Point-in-polygon over the map columns of every row (even-odd ray casting), behind a
    bounding-box test so DuckDB's zone maps and a cheap comparison discard most rows first."""
    if MAP_X not in columns or MAP_Y not in columns:
        raise BadSelection("this dataset has no map yet: run `python -m backend map NAME`")
    pts = [(float(x), float(y)) for x, y in poly]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    if len(pts) < 3 or not all(map(lambda p: all(v == v and abs(v) != float("inf") for v in p),
                                    pts)):
        raise BadSelection("a map region needs at least three finite points")
    if polygon_area(tuple(pts)) <= 1e-12:
        raise BadSelection("the map region has no area: drag a box or draw a lasso around points")
    if len(pts) > MAX_VERTICES:  # a long lasso path: keep every k-th vertex
        step = -(-len(pts) // MAX_VERTICES)
        pts = pts[::step]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x, y = quote_ident(MAP_X), quote_ident(MAP_Y)
    params: list[Any] = [min(xs), max(xs), min(ys), max(ys)]
    edges: list[str] = []
    for i, (xi, yi) in enumerate(pts):
        xj, yj = pts[i - 1]
        if yi == yj:  # a horizontal edge never crosses a horizontal ray
            continue
        # crosses when y is between the ends and the ray from (x, y) to +inf meets the edge
        edges.append(f"(({y} > ?) <> ({y} > ?) AND {x} < (? * ({y} - ?) + ?))::INT")
        params += [yi, yj, (xj - xi) / (yj - yi), yi, xi]
    bbox = f"{x} BETWEEN ? AND ? AND {y} BETWEEN ? AND ?"
    return f"({bbox} AND ({' + '.join(edges)}) % 2 = 1)", params
