"""The advanced "SQL WHERE" box: a user's predicate, checked before it joins the Selection.

Defence in depth. (1) The store connection is read-only, has external access off and its
configuration locked (:func:`backend.store.connect`): files, extensions and settings are out of
reach even if a predicate got past this module. (2) The text is parsed by DuckDB itself as
``SELECT * FROM samples WHERE (<text>)`` and refused unless that is exactly one plain SELECT whose
WHERE holds only ``samples`` columns, constants, operators and scalar functions: no table
functions, subqueries, parameters, comments or a second statement; every function is on the
allowlist of :mod:`backend.sqlallow` (no macros, nothing that reads the catalog, settings, files
or the session), casts name plain types only, and the values the condition builds per row stay
within a size budget (``repeat('x', 2000000000)`` is refused: no interrupt could stop it).
(3) Every query run for a user goes through :mod:`backend.bounded`: a time limit (interrupt)
and DuckDB's ``memory_limit``.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from functools import lru_cache
from typing import Any

import duckdb

from backend import sqlallow
from backend.bounded import run, scrub
from backend.query_errors import BadSelection, QueryTimeout, UnsafeSQL

PREFIX = "SELECT * FROM samples WHERE ("
MAX_LEN = 4000
# The per-row budget. DuckDB evaluates a condition on chunks of 2,048 rows and checks for an
# interrupt only between chunks, and values built inside a function (a 2 GB ``repeat``, a
# 3e8-item ``range``) are not counted by its memory_limit: one such call could neither be
# stopped nor capped. So every value the condition builds counts its estimated size in bytes
# (a column value counting COLUMN_SIZE, a list item 8 bytes), and edit distances count the
# product of their inputs' sizes as steps: over MAX_WORK bytes or MAX_STEPS steps per row, the
# condition is refused before it runs (100 kB x 2,048 rows: at most ~200 MB per chunk).
COLUMN_SIZE = 300
MAX_WORK = 100_000
MAX_STEPS = 200_000
ITEM_BYTES = 8
MAX_FORMAT_WIDTH = 1_000
# Expression classes a predicate may hold; everything else (SUBQUERY, STAR, PARAMETER, WINDOW,
# LAMBDA, ...) is refused.
REFUSED_NAMES = {"SUBQUERY": "subqueries", "STAR": "*", "PARAMETER": "parameters",
                 "WINDOW": "window functions", "LAMBDA": "lambdas (x -> …)"}  # fmt: skip
OPERATOR_TYPES = frozenset({
    "OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL", "COMPARE_IN", "COMPARE_NOT_IN",
    "OPERATOR_COALESCE", "ARRAY_EXTRACT", "ARRAY_SLICE", "STRUCT_EXTRACT", "OPERATOR_TRY",
})  # fmt: skip


_parse_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _serialize(query: str) -> dict[str, Any]:
    global _parser
    with _parse_lock:
        if _parser is None:
            _parser = duckdb.connect(config={"enable_external_access": False})
        return json.loads(_parser.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0])


def _no_comments(sql: str) -> None:
    try:
        tokens = duckdb.tokenize(sql)
    except Exception as e:  # noqa: BLE001 - an untokenisable text is a syntax error
        raise BadSelection(f"SQL syntax error: {_short(str(e))}") from None
    for pos, kind in tokens:
        if kind == duckdb.token_type.comment:
            raise UnsafeSQL(f"comments (-- or /* */) are not allowed (at character {pos + 1})")
    if ";" in re.sub(r"'(?:[^']|'')*'", "", sql):
        raise UnsafeSQL("only one condition is allowed: remove the ';'")


def _short(message: str) -> str:
    """DuckDB's message without its error-class prefix and the echoed wrapper query."""
    first = message.strip().splitlines()[0] if message.strip() else message
    return re.sub(r"^[A-Za-z ]*Error: ", "", first)


def _syntax_error(info: dict[str, Any], sql: str) -> BadSelection:
    msg = info.get("error_message") or "syntax error"
    pos = info.get("position")
    if pos is not None and str(pos).isdigit():
        at = int(pos) - len(PREFIX)
        if 0 <= at <= len(sql):
            snippet = sql[max(0, at - 15) : at + 15]
            return BadSelection(f"SQL syntax error: {msg} at character {at + 1}: …{snippet}…")
    return BadSelection(f"SQL syntax error: {msg}")


class _Walk:
    """One check of one predicate tree: refuses what is not allowed, adds up the per-row size."""

    def __init__(self, sql: str, columns: dict[str, str]) -> None:
        self.sql, self.columns, self.work, self.steps = sql, columns, 0, 0

    def refuse(self, node: dict[str, Any], what: str, cls: type = UnsafeSQL) -> BadSelection:
        """``what``, pointing at the node's place in the user's text when DuckDB knows it."""
        at = node.get("query_location")
        if isinstance(at, int) and 0 <= at - len(PREFIX) < len(self.sql):
            at -= len(PREFIX)
            return cls(f"{what} (at character {at + 1}: …{self.sql[at : at + 25]}…)")
        return cls(what)

    def size(self, node: Any) -> int:
        """The estimated size of the node's value per row (characters or items), checked; the
        values read and built (leaves, function results) add up to ``self.work``."""
        if not isinstance(node, dict):
            return 0
        cls = node.get("class")
        if cls == "CONSTANT":
            return max(1, len((node.get("literal") or {}).get("text") or ""))
        elif cls == "COLUMN_REF":  # read, not built: no work
            _check_column(self, node)
            return COLUMN_SIZE
        elif cls == "FUNCTION":
            n = self.function(node)
        elif cls == "CAST":
            self.cast_type(node, node.get("type_expr") or {})
            return self.size(node.get("child"))
        elif cls == "COMPARISON":  # a boolean: its operands were counted as they were built
            self.size(node.get("left"))
            self.size(node.get("right"))
            return 1
        elif cls == "CONJUNCTION":
            for c in node.get("children") or []:
                self.size(c)
            return 1
        elif cls == "OPERATOR" and node.get("type") in OPERATOR_TYPES:
            return max([1] + [self.size(c) for c in node.get("children") or []])
        elif cls == "BETWEEN":
            for k in ("input", "lower", "upper"):
                self.size(node.get(k))
            return 1
        elif cls == "CASE":
            n = self.size(node.get("else_expr"))
            for check in node.get("case_checks") or []:
                n += self.size(check.get("when_expr")) + self.size(check.get("then_expr"))
        elif cls == "COLLATE":
            if str(node.get("collation", "")).lower() not in sqlallow.COLLATIONS:
                raise self.refuse(node, f"COLLATE {node.get('collation')} is not allowed")
            return self.size(node.get("child"))
        else:
            what = REFUSED_NAMES.get(str(cls), f"{str(cls).lower()} expressions")
            if cls == "OPERATOR":
                what = f"the operator {str(node.get('type', '')).lower()}"
            raise self.refuse(node, f"{what} are not allowed in the WHERE box")
        self.work += n
        if self.work > MAX_WORK:
            raise self.refuse(node, "this condition would build values too large for a filter "
                              f"(about {self.work:,} bytes per row; at most {MAX_WORK:,}): use "
                              "smaller constants")  # fmt: skip
        return n

    def function(self, node: dict[str, Any]) -> int:
        fname = str(node.get("function_name", ""))
        if node.get("schema") or node.get("catalog"):
            raise self.refuse(node, f"qualified function names are not allowed: {fname}")
        kind = sqlallow.ALLOWED.get(fname) or sqlallow.ALLOWED.get(fname.lower())
        if kind is None:
            why = sqlallow.WHY_NOT.get(fname.lower(), "it is not on the list of functions a "
                                       "filter may use (docs/operations.md)")  # fmt: skip
            raise self.refuse(node, f"function {fname}() is not allowed: {why}")
        if node.get("filter") or (node.get("order_bys") or {}).get("orders"):
            raise self.refuse(node, "FILTER and ORDER BY inside a function are not allowed")
        if node.get("distinct") or node.get("export_state"):
            raise self.refuse(node, f"{fname}(DISTINCT …) is not allowed")
        args = [a.get("expression") for a in node.get("arguments") or []]
        sizes = [self.size(a) for a in args]
        if kind == "plain":
            return max(1, sum(sizes)) * sqlallow.EXPANDS.get(fname.lower(), 1)
        if kind == "pairwise":
            self.steps += sizes[0] * sizes[1] if len(sizes) >= 2 else 0
            if self.steps > MAX_STEPS:
                raise self.refuse(node, f"{fname}() on values this long is too slow for a "
                                  f"filter (about {self.steps:,} steps per row; at most "
                                  f"{MAX_STEPS:,}): compare shorter texts")  # fmt: skip
            return 1
        return growth(self, node, fname.lower(), kind, args, sizes)

    def cast_type(self, node: dict[str, Any], t: dict[str, Any]) -> None:
        name = str(t.get("type_name", "")).upper()
        if t.get("schema") or t.get("catalog") or name not in sqlallow.CAST_TYPES:
            raise self.refuse(node, f"casts to {t.get('type_name')} are not allowed (plain types "
                              "only: numbers, text, dates and times, booleans, lists)")  # fmt: skip
        for child in t.get("children") or []:
            if child.get("class") == "TYPE":
                self.cast_type(node, child)
            elif child.get("class") != "CONSTANT":
                raise self.refuse(node, "type modifiers must be constants")


def _check_column(walk: _Walk, node: dict[str, Any]) -> None:
    names = list(node.get("column_names") or [])
    columns = walk.columns
    if len(names) == 2 and names[0].lower() == "samples":
        names = names[1:]
    lower = {c.lower(): c for c in columns}
    if len(names) != 1:
        raise walk.refuse(node, f"only columns of samples may be used, not {'.'.join(names)}")
    if names[0].lower() not in lower:
        near = difflib.get_close_matches(names[0].lower(), list(lower), n=1)
        hint = f" — did you mean {lower[near[0]]!r}?" if near else ""
        raise walk.refuse(node, f"no column named {names[0]!r}{hint}", BadSelection)


def _const_int(walk: _Walk, fname: str, node: Any) -> int:
    """A whole-number constant argument (a count or a size), or a refusal saying so."""
    lit = (node or {}).get("literal") or {} if isinstance(node, dict) else {}
    if node is None or node.get("class") != "CONSTANT" or lit.get("kind") not in (
        "INTEGER", "BIGINT", "HUGEINT", "UBIGINT", "UHUGEINT"):  # fmt: skip
        raise walk.refuse(node or {}, f"{fname}() needs whole-number constants for its sizes "
                          "here (a column or an expression could make it unbounded)")  # fmt: skip
    return int(lit.get("text") or 0)


def growth(walk: _Walk, node: dict, fname: str, kind: str, args: list, sizes: list[int]) -> int:
    """Size of a function that can build a value much larger than its arguments (sqlallow.GROWTH):
    its sizes must be constants, and the result counts against :data:`MAX_WORK`."""
    if kind == "aggregate":
        name = args[1] if len(args) > 1 else None
        lit = (name or {}).get("literal") or {}
        known = sqlallow.LIST_AGGREGATES
        if (name or {}).get("class") != "CONSTANT" or lit.get("text") not in known:
            raise walk.refuse(node, f"{fname}() takes one of: "
                              f"{', '.join(sorted(sqlallow.LIST_AGGREGATES))}")  # fmt: skip
        return max(1, sum(sizes))
    if kind == "format":
        fmt = args[0] if args else None
        text = ((fmt or {}).get("literal") or {}).get("text")
        if (fmt or {}).get("class") != "CONSTANT" or text is None or "*" in text:
            raise walk.refuse(node, f"{fname}() needs a constant format without '*' widths")
        widths = [int(w) for w in re.findall(r"\d+", text)]
        nested = re.search(r"\{[^{}]*\{", text.replace("{{", ""))  # a width from an argument
        if nested or any(w > MAX_FORMAT_WIDTH for w in widths):
            raise walk.refuse(node, f"{fname}() widths are limited to {MAX_FORMAT_WIDTH:,}")
        return max(1, sum(sizes) + sum(widths))
    if kind == "replace":
        if len(args) < 3:
            return max(1, sum(sizes))
        return sizes[0] * (sizes[2] + 1) + sizes[2]
    second = args[1] if len(args) > 1 else None
    if kind == "repeat":
        return max(1, sizes[0]) * max(0, _const_int(walk, fname, second))
    if kind == "pad":
        return max(0, _const_int(walk, fname, second)) + sum(sizes)
    if kind == "resize":
        n = max(0, _const_int(walk, fname, second))
        return sizes[0] + n * max(ITEM_BYTES, sizes[2] if len(sizes) > 2 else 1)
    # series: range(a[, b[, step]]); every argument a whole-number constant
    vals = [_const_int(walk, fname, a) for a in args]
    lo, hi, step = (0, vals[0], 1) if len(vals) == 1 else (vals[0], vals[1], 1)
    if len(vals) >= 3:
        step = vals[2]
    if step == 0:
        raise walk.refuse(node, f"{fname}() needs a step other than 0")
    return max(1, (hi - lo) // step + 1) * ITEM_BYTES


@lru_cache(maxsize=256)
def _check(sql: str, cols: tuple[tuple[str, str], ...]) -> str:
    columns = dict(cols)
    if len(sql) > MAX_LEN:
        raise BadSelection(f"the condition is too long ({len(sql)} characters; at most {MAX_LEN})")
    _no_comments(sql)
    tree = _serialize(PREFIX + sql + ")")
    if tree.get("error"):
        raise _syntax_error(tree, sql)
    stmts = tree.get("statements") or []
    if len(stmts) != 1:
        raise UnsafeSQL("only one condition is allowed")
    node = stmts[0].get("node") or {}
    template = _serialize(PREFIX + "TRUE)")["statements"][0]["node"]
    if node.get("type") != "SELECT_NODE" or node.get("where_clause") is None:
        raise UnsafeSQL("the text must be a single condition, as after WHERE")
    shape = {k: v for k, v in node.items() if k != "where_clause"}
    if shape != {k: v for k, v in template.items() if k != "where_clause"}:
        raise UnsafeSQL("the text must be a single condition, as after WHERE")
    _Walk(sql, columns).size(node["where_clause"])
    return f"({sql})"


def check_where(
    sql: str,
    columns: dict[str, str],
    con: duckdb.DuckDBPyConnection | Any | None = None,
    timeout: float | None = None,
) -> str:
    """A safe predicate for ``samples`` from the user's text, or :class:`BadSelection` /
    :class:`UnsafeSQL` saying what is wrong. With ``con`` it is also run once (a count, under
    the limits of :mod:`backend.bounded`) so that type errors and slow conditions are reported
    now, not on every page."""
    sql = (sql or "").strip()
    if not sql:
        return "TRUE"
    predicate = _check(sql, tuple(sorted(columns.items())))
    if con is not None:
        try:
            run_timed(con, f"SELECT count(*) FROM samples WHERE {predicate}", [], timeout)
        except QueryTimeout:
            raise
        except duckdb.Error as e:
            raise BadSelection(f"SQL error: {_short(scrub(str(e)))}") from None
    return predicate


def run_timed(
    con: duckdb.DuckDBPyConnection | Any, query: str, params: list[Any],
    timeout: float | None = None,
) -> list[tuple]:  # fmt: skip
    """Rows of ``query`` under the limits of :mod:`backend.bounded` (``timeout`` overrides its
    time limit); :class:`QueryTimeout` when it runs past them."""
    return run(con, query, params, timeout)
