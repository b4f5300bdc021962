"""The Selection: what the user is looking at, compiled to one parameterised DuckDB predicate.

Every page reads and writes a Selection, so filters set on one page hold on the others and an
export writes exactly what was shown. Column names are checked against the table's schema and
quoted; values are always bound parameters, never spliced into SQL.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from backend.polygon import polygon_where
from backend.query_errors import BadSelection
from backend.sqlguard import check_where

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL")  # fmt: skip


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_numeric(duck_type: str) -> bool:
    return duck_type.upper().startswith(NUMERIC_TYPES) or duck_type.upper().startswith("DECIMAL")


NOT_WORD = r"[^\pL\pN_]"  # a character that ends a word, in any script (RE2 syntax)


def caption_word(word: str) -> tuple[str, list[Any]]:
    """SQL for one word of the caption filter: the word as a whole word, case-insensitive
    ("cat" does not match "catalog", as the keyword box does not); a ``*`` at either end lets
    it run on inside a word ("cat*" matches "catalog", "*cat*" any caption containing "cat").
    The plain ``contains`` runs first: it is cheap and leaves the regex few rows."""
    core = word.strip("*").lower()
    if not core:
        return "TRUE", []
    head, tail = word.startswith("*"), word.endswith("*")
    if head and tail:
        return "contains(lower(caption), ?)", [core]
    pattern = ("" if head else f"(^|{NOT_WORD})") + re.escape(core) + (
        "" if tail else f"({NOT_WORD}|$)")  # fmt: skip
    return "(contains(lower(caption), ?) AND regexp_matches(lower(caption), ?))", [core, pattern]


RESOLVED = ("keyword_ids", "subset_ids", "concept_dirs")  # filled by resolvers, not in recipes
MAX_LIMIT = 10_000_000


@dataclass
class Selection:
    """Everything that narrows, orders or caps the rows the user is looking at.

    Parts (all optional, combined with AND): caption words (all must appear as whole words,
    case-insensitive; ``cat*`` for a word's start, ``*cat*`` inside words),
    numeric ``ranges``, source ``shards``, a ``keywords`` query over the full-text index,
    ``values`` (column IN list: clusters, licences…), ``concepts`` (a stored concept result set's
    vocabulary → concept names: rows whose caption names any), membership in saved subsets
    (``subsets_all`` / ``subsets_any`` / ``subsets_none``), a map ``polygon``, an explicit
    ``row_ids`` set (a kNN result), and the advanced ``sql`` WHERE text. ``sort`` and ``limit``
    order and cap the rows (:meth:`order_limit`); they are not filters.

    ``keywords`` and the subset names are resolved to row ids (``keyword_ids``,
    ``subset_ids``) before compiling — by :func:`backend.search.resolve_keywords` and
    :func:`backend.subsets.resolve` — because they come from files, not from SQL. ``concepts``
    is resolved to its result sets' folders (``concept_dirs``, :func:`backend.concepts.resolve`)
    and compiled to a semi-join on their hits file, so a concept naming 10^7 rows is never a
    list of ids.
    """

    text: str = ""
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    shards: list[str] = field(default_factory=list)
    keywords: str = ""
    keyword_ids: tuple[int, ...] | None = field(default=None, repr=False, compare=False)
    polygon: tuple[tuple[float, float], ...] = ()  # a lasso or box on the map, in map_x/map_y
    values: dict[str, list] = field(default_factory=dict)
    subsets_all: list[str] = field(default_factory=list)
    subsets_any: list[str] = field(default_factory=list)
    subsets_none: list[str] = field(default_factory=list)
    subset_ids: dict[str, tuple[int, ...]] | None = field(default=None, repr=False, compare=False)
    concepts: dict[str, list[str]] = field(default_factory=dict)
    concept_dirs: dict[str, str] | None = field(default=None, repr=False, compare=False)
    row_ids: tuple[int, ...] | None = None
    row_ids_label: str = ""  # what the ids are, for people: 'caption names "hexagon"'
    sql: str = ""
    sort: str = ""
    limit: int | None = None

    def subset_names(self) -> list[str]:
        """Every saved subset this Selection refers to, once each, in order."""
        return list(dict.fromkeys(self.subsets_all + self.subsets_any + self.subsets_none))

    def is_empty(self) -> bool:
        """True when no part narrows the rows (``sort`` and ``limit`` do not count)."""
        return not (
            self.text.strip() or self.ranges or self.shards or self.keywords.strip() or self.polygon
            or self.values or self.subset_names() or self.row_ids is not None or self.sql.strip()
            or any(self.concepts.values())
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The recipe form (JSON-ready): only the parts that are set; resolved ids left out."""
        out = asdict(self)
        for key in RESOLVED:
            out.pop(key, None)
        if out.get("row_ids") is not None:
            out["row_ids"] = list(out["row_ids"])
        default = Selection()
        return {k: v for k, v in out.items() if v != getattr(default, k)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        """Inverse of :meth:`to_dict`; unknown keys are refused (a recipe from a newer version
        must not be silently half-applied)."""
        if not isinstance(data, dict):
            raise BadSelection("a selection recipe must be a JSON object")
        known = {f.name for f in fields(cls) if f.name not in RESOLVED}
        extra = set(data) - known
        if extra:
            raise BadSelection(f"unknown selection part(s): {', '.join(sorted(extra))}")
        kw = dict(data)
        try:
            if "ranges" in kw:
                kw["ranges"] = {str(c): (lo, hi) for c, (lo, hi) in kw["ranges"].items()}
            if "polygon" in kw:
                kw["polygon"] = tuple((float(x), float(y)) for x, y in kw["polygon"])
            if "shards" in kw:
                kw["shards"] = [str(s) for s in kw["shards"]]
            if "values" in kw:
                kw["values"] = {str(c): list(v) for c, v in kw["values"].items()}
            if "concepts" in kw:
                kw["concepts"] = {str(v): [str(c) for c in cs] for v, cs in kw["concepts"].items()}
            for key in ("subsets_all", "subsets_any", "subsets_none"):
                if key in kw:
                    kw[key] = [str(s) for s in kw[key]]
            if kw.get("row_ids") is not None:
                kw["row_ids"] = tuple(int(i) for i in kw["row_ids"])
            if kw.get("limit") is not None:
                kw["limit"] = int(kw["limit"])
            for key in ("text", "keywords", "sql", "sort"):
                if key in kw and not isinstance(kw[key], str):
                    raise TypeError(f"{key} must be text")
        except (TypeError, ValueError, AttributeError) as e:
            raise BadSelection(f"malformed selection recipe: {e}") from None
        return cls(**kw)

    def where(self, columns: dict[str, str]) -> tuple[str, list[Any]]:
        """SQL predicate and its parameters; ``columns`` maps column name to DuckDB type."""
        parts: list[str] = []
        params: list[Any] = []
        for word in self.text.lower().split():
            clause, more = caption_word(word)
            parts.append(clause)
            params.extend(more)
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
        for col, vals in sorted(self.values.items()):
            clause, more = values_where(col, vals, columns)
            parts.append(clause)
            params.extend(more)
        if self.keywords.strip():
            if self.keyword_ids is None:
                raise BadSelection("the keyword filter was not resolved against the index")
            parts.append(IDS_IN)
            params.append(list(self.keyword_ids))
        if self.subset_names():
            clauses, more = self._subset_where()
            parts.extend(clauses)
            params.extend(more)
        for vocab, names in sorted(self.concepts.items()):
            if not names:  # nothing named: the part is unset (as is_empty says)
                continue
            clause, more = concept_where(vocab, names, self.concept_dirs)
            parts.append(clause)
            params.extend(more)
        if self.row_ids is not None:
            parts.append(IDS_IN)
            params.append(list(self.row_ids))
        if self.polygon:
            clause, more = polygon_where(self.polygon, columns)
            parts.append(clause)
            params.extend(more)
        if self.sql.strip():
            parts.append(check_where(self.sql, columns))
        return (" AND ".join(parts) or "TRUE"), params

    def _subset_where(self) -> tuple[list[str], list[Any]]:
        ids = self.subset_ids
        if ids is None or any(n not in ids for n in self.subset_names()):
            raise BadSelection("the subset filter was not resolved: call backend.subsets.resolve")
        parts: list[str] = []
        params: list[Any] = []
        for n in self.subsets_all:
            parts.append(IDS_IN)
            params.append(list(ids[n]))
        if self.subsets_any:
            parts.append(IDS_IN)
            params.append(sorted(set().union(*(ids[n] for n in self.subsets_any))))
        if self.subsets_none:
            parts.append(f"NOT {IDS_IN}")
            params.append(sorted(set().union(*(ids[n] for n in self.subsets_none))))
        return parts, params

    def sort_key(self, columns: dict[str, str]) -> tuple[str, bool] | None:
        """(sort column, descending?), checked against ``columns``; None when unsorted."""
        if not self.sort.strip():
            return None
        col, desc = sort_parts(self.sort)
        if col not in columns:
            raise BadSelection(f"cannot sort: no column named {col!r}")
        return col, desc

    def order_limit(self, columns: dict[str, str]) -> str:
        """The ``ORDER BY … LIMIT …`` tail: ``sort`` (a column, optionally " DESC"), then row id
        for a stable order; ``limit`` when set. Column checked and quoted, limit an int."""
        order = "ORDER BY row_id"
        if key := self.sort_key(columns):
            col, desc = key
            order = f"ORDER BY {quote_ident(col)} {'DESC' if desc else 'ASC'} NULLS LAST, row_id"
        if self.limit is None:
            return order
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise BadSelection(f"limit must be a whole number, not {self.limit!r}")
        if not 0 <= self.limit <= MAX_LIMIT:
            raise BadSelection(f"limit must be between 0 and {MAX_LIMIT:,}")
        return f"{order} LIMIT {int(self.limit)}"

    def parts(self) -> list[tuple[str, Selection]]:
        """(label, this Selection without that part) for every part: the removable chips."""
        return self._column_parts() + self._row_set_parts()

    def _column_parts(self) -> list[tuple[str, Selection]]:
        """Chips of the caption words, column ranges and values, shards and keywords."""
        out: list[tuple[str, Selection]] = []
        words = self.text.split()
        for i, w in enumerate(words):
            out.append(
                (f'caption has "{w}"', replace(self, text=" ".join(words[:i] + words[i + 1 :])))
            )
        for col, (lo, hi) in sorted(self.ranges.items()):
            lo_s = "" if lo is None else f"{lo:g} ≤ "
            hi_s = "" if hi is None else f" ≤ {hi:g}"
            rest = {c: v for c, v in self.ranges.items() if c != col}
            out.append((f"{lo_s}{col}{hi_s}", replace(self, ranges=rest)))
        if self.shards:
            more = "…" if len(self.shards) > 3 else ""
            out.append(("shard in " + ", ".join(self.shards[:3]) + more, replace(self, shards=[])))
        for col, vals in sorted(self.values.items()):
            shown = ", ".join(str(v) for v in vals[:3]) + ("…" if len(vals) > 3 else "")
            rest = {c: v for c, v in self.values.items() if c != col}
            label = f"{col} in {shown}"
            if vals in ([True], [False]):  # a flag: "is_dup_rep", "not is_dup_rep"
                label = col if vals[0] else f"not {col}"
            out.append((label, replace(self, values=rest)))
        if self.keywords.strip():
            out.append((f"keywords: {self.keywords.strip()}",
                        replace(self, keywords="", keyword_ids=None)))  # fmt: skip
        return out

    def _row_set_parts(self) -> list[tuple[str, Selection]]:
        """Chips of the subsets, concepts, chosen rows, map region, SQL, sort and limit."""
        out: list[tuple[str, Selection]] = []
        for n in self.subsets_all:
            rest = [s for s in self.subsets_all if s != n]
            out.append((f"in subset {n}", replace(self, subsets_all=rest)))
        if self.subsets_any:
            label = "in any of " + ", ".join(self.subsets_any)
            if len(self.subsets_any) == 1:
                label = f"in subset {self.subsets_any[0]}"
            out.append((label, replace(self, subsets_any=[])))
        for n in self.subsets_none:
            rest = [s for s in self.subsets_none if s != n]
            out.append((f"not in subset {n}", replace(self, subsets_none=rest)))
        for vocab, names in sorted(self.concepts.items()):
            if not names:
                continue
            rest = {v: c for v, c in self.concepts.items() if v != vocab}
            named = " or ".join(f"“{c}”" for c in names[:3]) + (" …" if len(names) > 3 else "")
            out.append((f"caption names {named} ({vocab})",
                        replace(self, concepts=rest, concept_dirs=None)))  # fmt: skip
        if self.row_ids is not None:
            what = f"{len(self.row_ids):,} chosen rows"
            if self.row_ids_label:
                what = f"{self.row_ids_label} ({len(self.row_ids):,} rows)"
            out.append((what, replace(self, row_ids=None, row_ids_label="")))
        if self.polygon:
            label = (
                "map box" if len(self.polygon) == 4 else f"map region ({len(self.polygon)} points)"
            )
            out.append((label, replace(self, polygon=())))
        if self.sql.strip():
            short = " ".join(self.sql.split())
            out.append(
                (f"SQL: {short[:40]}{'…' if len(short) > 40 else ''}", replace(self, sql=""))
            )
        if self.sort.strip():
            col, desc = sort_parts(self.sort)
            out.append((f"sorted by {col} {'↓' if desc else '↑'}", replace(self, sort="")))
        if self.limit is not None:
            out.append((f"first {self.limit:,} rows", replace(self, limit=None)))
        return out

    def describe(self) -> list[str]:
        """Short human labels, one per part, for the selection bar."""
        return [label for label, _ in self.parts()]


IDS_IN = "row_id IN (SELECT unnest(?::BIGINT[]))"


def concept_where(vocab: str, names: list[str],
                  dirs: dict[str, str] | None) -> tuple[str, list[Any]]:  # fmt: skip
    """Rows whose caption names any of ``names`` of result set ``vocab``: a hash join on its
    ``hits.parquet`` (row_id, concept_id), the ids looked up in its ``counts.parquet``. The
    folder comes from the resolver (the dataset's own files, quoted); names are parameters.
    ``(… IN …) IS TRUE`` (same rows: the hits hold no NULL) makes it a MARK join, whose hash
    table is always the concept's hits: as a plain IN, DuckDB built it from every row of
    ``samples`` under a page's ``row_id > ?`` (a page's ids of “dog” at 10^8: 24.5 → 1.3 s; a
    bare count of it pays for the hash table: 1.5 → 3.3 s, docs/scaling.md)."""
    if dirs is None or vocab not in dirs:
        raise BadSelection("the concept filter was not resolved: call backend.concepts.resolve")
    if not names:
        return "FALSE", []
    base = dirs[vocab].replace("'", "''")
    marks = ", ".join("?" for _ in names)
    return (f"(row_id IN (SELECT row_id FROM read_parquet('{base}/hits.parquet') WHERE concept_id "
            f"IN (SELECT concept_id FROM read_parquet('{base}/counts.parquet') "
            f"WHERE concept IN ({marks})))) IS TRUE", list(names))  # fmt: skip


def sort_parts(sort: str) -> tuple[str, bool]:
    """("column", descending?) from "column" or "column DESC" / "column ASC"."""
    words = sort.strip().rsplit(None, 1)
    if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
        return words[0].strip(), words[1].upper() == "DESC"
    return sort.strip(), False


def values_where(col: str, vals: list, columns: dict[str, str]) -> tuple[str, list[Any]]:
    """``column IN (?, …)``; numbers for numeric columns, text for text ones, True/False for
    boolean ones (``is_dup_rep``, concept flags); an empty list matches nothing."""
    if col not in columns:
        raise BadSelection(f"no column named {col!r}")
    if not vals:
        return "FALSE", []
    if columns[col].upper() == "BOOLEAN":
        if not all(isinstance(v, bool) for v in vals):
            bad = next(v for v in vals if not isinstance(v, bool))
            raise BadSelection(f"{col} is true/false: {bad!r} is neither")
        return f"{quote_ident(col)} IN ({', '.join('?' for _ in vals)})", list(vals)
    numeric = is_numeric(columns[col])
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise BadSelection(f"{col}: {v!r} is not a number or text")
        if numeric and isinstance(v, str):
            raise BadSelection(f"{col} is numeric: {v!r} is not a number")
        if columns[col].upper().startswith("VARCHAR") and not isinstance(v, str):
            raise BadSelection(f"{col} holds text: quote {v!r}")
    return f"{quote_ident(col)} IN ({', '.join('?' for _ in vals)})", list(vals)
