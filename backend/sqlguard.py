"""The advanced "SQL WHERE" box: a user's predicate, checked before it joins the Selection.

Defence in depth. (1) The store connection is read-only, has external access off and its
configuration locked (:func:`backend.store.connect`): files, extensions and settings are out of
reach even if a predicate got past this module. (2) The text is parsed by DuckDB itself as
``SELECT * FROM samples WHERE (<text>)`` and refused unless that is exactly one plain SELECT whose
WHERE holds only ``samples`` columns, constants, operators and scalar functions: no table
functions, subqueries, parameters, comments or a second statement. (3) A query run through
:func:`run_timed` is interrupted after a few seconds ("query took too long").
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from functools import lru_cache
from typing import Any

import duckdb

from backend.selection import BadSelection

PREFIX = "SELECT * FROM samples WHERE ("
MAX_LEN = 4000
TIMEOUT_S = 5.0
# Scalar functions that read the environment or the session, or change state.
DENIED_FUNCTIONS = frozenset({
    "getenv", "current_setting", "getvariable", "nextval", "currval", "setseed",
    "current_database", "current_catalog", "current_schema", "current_schemas", "current_query",
    "txid_current", "pg_typeof_setting", "query", "query_table", "read_text", "read_blob",
})  # fmt: skip
# Expression classes a predicate may hold; everything else (SUBQUERY, STAR, PARAMETER, WINDOW,
# LAMBDA, ...) is refused.
ALLOWED_CLASSES = frozenset({
    "COLUMN_REF", "CONSTANT", "COMPARISON", "CONJUNCTION", "OPERATOR", "FUNCTION", "CAST",
    "CASE", "BETWEEN",
})  # fmt: skip


REFUSED_NAMES = {"SUBQUERY": "subqueries", "STAR": "*", "PARAMETER": "parameters",
                 "WINDOW": "window functions", "LAMBDA": "lambdas"}  # fmt: skip


class UnsafeSQL(BadSelection):
    """A predicate that tries to do more than filter the rows of ``samples``."""


class QueryTimeout(BadSelection):
    """A query interrupted because it ran past its time limit."""


@lru_cache(maxsize=1)
def _scalar_functions() -> frozenset[str]:
    """Names of DuckDB's built-in scalar functions and operators (not table/aggregate ones)."""
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        rows = con.execute(
            "SELECT DISTINCT function_name, function_type FROM duckdb_functions()"
        ).fetchall()
    finally:
        con.close()
    scalar = {n.lower() for n, t in rows if t in ("scalar", "macro")}
    other = {n.lower() for n, t in rows if t not in ("scalar", "macro")}
    return frozenset(scalar - other - DENIED_FUNCTIONS)


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


def _walk(node: Any, columns: dict[str, str], scalar: frozenset[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, columns, scalar)
        return
    if not isinstance(node, dict):
        return
    cls = node.get("class")
    if cls is not None:
        if cls not in ALLOWED_CLASSES:
            what = REFUSED_NAMES.get(cls, cls.lower())
            raise UnsafeSQL(f"{what} are not allowed in the WHERE box")
        if cls == "COLUMN_REF":
            _check_column(node.get("column_names") or [], columns)
        if cls == "FUNCTION":
            fname = str(node.get("function_name", "")).lower()
            if node.get("schema") or node.get("catalog"):
                raise UnsafeSQL(f"qualified function names are not allowed: {fname}")
            if fname in DENIED_FUNCTIONS:
                raise UnsafeSQL(f"function {fname}() is not allowed")
            if fname not in scalar:
                raise UnsafeSQL(
                    f"{fname}() is not a plain scalar function (table functions and aggregates "
                    "are not allowed)"
                )
            if node.get("filter") or (node.get("order_bys") or {}).get("orders"):
                raise UnsafeSQL("FILTER and ORDER BY inside a function are not allowed")
    for key, value in node.items():
        if key not in ("class", "type", "column_names", "function_name", "literal"):
            _walk(value, columns, scalar)


def _check_column(names: list[str], columns: dict[str, str]) -> None:
    if len(names) == 2 and names[0].lower() == "samples":
        names = names[1:]
    lower = {c.lower(): c for c in columns}
    if len(names) != 1:
        raise UnsafeSQL(f"only columns of samples may be used, not {'.'.join(names)}")
    if names[0].lower() not in lower:
        near = difflib.get_close_matches(names[0].lower(), list(lower), n=1)
        hint = f" — did you mean {lower[near[0]]!r}?" if near else ""
        raise BadSelection(f"no column named {names[0]!r}{hint}")


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
    _walk(node["where_clause"], columns, _scalar_functions())
    return f"({sql})"


def check_where(
    sql: str,
    columns: dict[str, str],
    con: duckdb.DuckDBPyConnection | None = None,
    timeout: float = TIMEOUT_S,
) -> str:
    """A safe predicate for ``samples`` from the user's text, or :class:`BadSelection` /
    :class:`UnsafeSQL` saying what is wrong. With ``con`` it is also run once (a count, under
    ``timeout``) so that type errors and slow conditions are reported now, not on every page."""
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
            raise BadSelection(f"SQL error: {_short(str(e))}") from None
    return predicate


def run_timed(
    con: duckdb.DuckDBPyConnection, query: str, params: list[Any], timeout: float = TIMEOUT_S
) -> list[tuple]:
    """Rows of ``query``; interrupted (:class:`QueryTimeout`) when it runs past ``timeout`` s."""
    done = threading.Event()

    def stop() -> None:
        if not done.is_set():
            con.interrupt()

    timer = threading.Timer(timeout, stop)
    timer.start()
    try:
        return con.execute(query, params).fetchall()
    except duckdb.InterruptException:
        raise QueryTimeout(
            f"query took too long (over {timeout:g} s): narrow the condition"
        ) from None
    finally:
        done.set()
        timer.cancel()
