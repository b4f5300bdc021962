"""Every query the app runs for a user, bounded in time and memory: one wrapper for all pages.

:func:`wrap` turns a store connection into a :class:`Bounded` one whose ``execute`` is
interrupted after ``TAILSCOPE_QUERY_SECONDS`` (default 10) and whose database runs under
DuckDB's ``memory_limit`` ``TAILSCOPE_QUERY_MEMORY`` (default 2GB, set when the store is opened:
:func:`backend.store.connect`). Either limit becomes a :class:`QueryTimeout` with a message a
user can act on; the connection stays usable and other sessions' cursors are not touched
(``interrupt`` stops one cursor). DuckDB checks for an interrupt between chunks of rows, so a
single call that builds a huge value would run on: :mod:`backend.sqlguard` refuses those before
they run (its per-row size budget), which is what makes the time limit hold.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb

from backend import paths
from backend.query_errors import QueryTimeout

SECONDS_ENV, MEMORY_ENV = "TAILSCOPE_QUERY_SECONDS", "TAILSCOPE_QUERY_MEMORY"
DEFAULT_SECONDS, DEFAULT_MEMORY = 10.0, "2GB"
SUBSET_HINT = "`python -m backend subset NAME save SUBSET --where …`"


@dataclass(frozen=True)
class Limits:
    seconds: float
    memory: str  # DuckDB's memory_limit syntax: "2GB", "512MB"


_TRUSTED = threading.Event()


@contextmanager
def trust_local_user(trust: bool = True) -> Iterator[None]:
    """No time limit in this process while the block runs (the memory limit stays): the CLI's
    verbs other than ``count`` run for the local user, who may save a slow filter as a subset."""
    if not trust or _TRUSTED.is_set():
        yield
        return
    _TRUSTED.set()
    try:
        yield
    finally:
        _TRUSTED.clear()


def limits() -> Limits:
    """The limits in force, from the environment (docs/operations.md); bad values are refused
    with a message rather than silently replaced."""
    if _TRUSTED.is_set():
        return Limits(float("inf"), _memory())
    raw = os.environ.get(SECONDS_ENV, "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_SECONDS
    except ValueError:
        raise ValueError(f"{SECONDS_ENV}={raw!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"{SECONDS_ENV} must be above 0, not {raw}")
    return Limits(seconds, _memory())


def _memory() -> str:
    memory = os.environ.get(MEMORY_ENV, "").strip() or DEFAULT_MEMORY
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", memory, re.I):
        raise ValueError(f"{MEMORY_ENV}={memory!r}: write a size such as 2GB or 512MB")
    return memory


def too_slow(seconds: float) -> str:
    return (f"this filter took longer than {seconds:g} s; narrow it or save it as a subset "
            f"from the CLI ({SUBSET_HINT})")  # fmt: skip


def too_big(memory: str) -> str:
    return (f"this filter needed more than the {memory} of memory a query may use; narrow it "
            f"or save it as a subset from the CLI ({SUBSET_HINT})")  # fmt: skip


def scrub(message: str) -> str:
    """``message`` without the workspace's absolute path (shown relative to it) and without the
    SQL DuckDB echoes after its first line (it can hold a view's definition)."""
    first = message.strip().splitlines()[0] if message.strip() else message
    home = str(paths.workspace())
    return first.replace(home + os.sep, "").replace(home, ".")


class Bounded:
    """A store connection (or cursor) whose queries are bounded; anything else is delegated.

    ``execute`` runs under the time limit and returns this object, so ``con.execute(q,
    p).fetchall()`` reads as before. Work that runs lazily (a relation's ``to_arrow_table``)
    goes inside :meth:`deadline`. Cursors made from it are bounded too and share its deadline.
    """

    def __init__(self, con: Any, lim: Limits | None = None, family: list | None = None) -> None:
        self._con = con
        self._limits = lim or limits()
        self._family: list[Any] = family if family is not None else []
        self._family.append(con)
        self._armed = threading.local()

    @property
    def limits(self) -> Limits:
        return self._limits

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def __enter__(self) -> Bounded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    def cursor(self) -> Bounded:
        return Bounded(self._con.cursor(), self._limits, self._family)

    def execute(self, query: str, parameters: Any = None) -> Bounded:
        with self.deadline():
            if parameters is None:
                self._con.execute(query)
            else:
                self._con.execute(query, parameters)
        return self

    @contextmanager
    def deadline(self, seconds: float | None = None) -> Iterator[Bounded]:
        """Everything in the block, across this connection and its cursors, stops after
        ``seconds`` (default: the limit) with :class:`QueryTimeout`; nested blocks share the
        outer one's deadline."""
        if getattr(self._armed, "on", False):
            yield self
            return
        limit = self._limits.seconds if seconds is None else seconds
        if limit == float("inf"):  # trust_local_user(): only the memory limit
            try:
                yield self
            except duckdb.OutOfMemoryException:
                raise QueryTimeout(too_big(self._limits.memory)) from None
            return
        fired = threading.Event()
        done = threading.Event()

        def stop() -> None:
            if not done.is_set():
                fired.set()
                for con in list(self._family):
                    try:
                        con.interrupt()
                    except duckdb.Error:  # closed meanwhile
                        pass

        timer = threading.Timer(limit, stop)
        timer.daemon = True
        self._armed.on = True
        timer.start()
        try:
            yield self
        except duckdb.InterruptException:
            raise QueryTimeout(too_slow(limit)) from None
        except duckdb.OutOfMemoryException:
            raise QueryTimeout(too_big(self._limits.memory)) from None
        finally:
            done.set()
            timer.cancel()
            self._armed.on = False
            if fired.is_set():
                self._clear_interrupts()

    def _clear_interrupts(self) -> None:
        """An interrupt that arrived as a query was finishing stays pending on the connection
        and would stop its next query: spend it on a no-op."""
        for con in list(self._family):
            try:
                con.execute("SELECT 1").fetchall()
            except duckdb.Error:
                pass


def wrap(con: Any, lim: Limits | None = None) -> Bounded:
    """``con`` bounded (an already bounded connection is returned as it is)."""
    return con if isinstance(con, Bounded) else Bounded(con, lim)


def run(con: Any, query: str, params: list[Any] | None = None, seconds: float | None = None
        ) -> list[tuple]:  # fmt: skip
    """Rows of ``query`` on ``con`` under the limits (``seconds`` overrides the time limit)."""
    b = wrap(con)
    with b.deadline(seconds):
        return b._con.execute(query, params or []).fetchall()
