"""Progress bars for the CLI: a tqdm bar on a terminal, a few plain lines anywhere else.

Verb modules take their bars from here (:func:`shard_bar`, :func:`step_bars`), never from
``backend.cli``: the CLI imports the verbs, the verbs do not import the CLI.

Off a terminal (CI, ``docker logs``, a redirect to a file) tqdm's carriage-return redraws
become hundreds of updates on one log line; there a :class:`LineBar` writes a line when it has
moved on by ``STEP`` percent and ``INTERVAL`` seconds since the last one, and one when it
closes: a quick step is one line, a long one a line per 10 % or so.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

STEP = 10  # percent between two lines off a terminal
INTERVAL = 5.0  # and seconds


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


class LineBar:
    """The part of tqdm's interface the CLI uses (``n``, ``total``, ``refresh``,
    ``set_postfix``, ``update``, ``close``), written as plain lines: ``desc: 3/12 unit (25%)``."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it",
                 file: IO[str] | None = None, step: int = STEP, interval: float = INTERVAL,
                 silent: bool = False) -> None:  # fmt: skip
        self.desc, self.total, self.unit, self.step = desc, total, unit, step
        self.interval, self._since = interval, time.monotonic()
        self.silent = silent
        self.file = file or sys.stderr
        self.n = 0
        self._postfix = ""
        self._last: int | None = None  # the last percent step written
        self._closed = False

    def set_postfix(self, refresh: bool = True, **kw: Any) -> None:
        self._postfix = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}"
                                  for k, v in kw.items())  # fmt: skip
        if refresh:
            self.refresh()

    def update(self, n: int = 1) -> None:
        self.n += n
        self.refresh()

    def refresh(self) -> None:
        """Write a line when the bar crossed into a new ``step`` percent (not at 0) at least
        ``interval`` seconds after the last line (or the start)."""
        if not self.total or self._closed:
            return
        pct = min(100, int(100 * self.n / self.total))
        bucket = pct // self.step * self.step
        if bucket > (self._last or 0) and time.monotonic() - self._since >= self.interval:
            self._last = bucket
            self._write()

    def _write(self) -> None:
        if self.silent:
            return
        total = f"/{self.total:,}" if self.total else ""
        pct = f" ({min(100, int(100 * self.n / self.total))}%)" if self.total else ""
        tail = f" [{self._postfix}]" if self._postfix else ""
        unit = self.unit if self.n == 1 or self.unit == "it" else self.unit + "s"
        print(f"{self.desc}: {self.n:,}{total} {unit}{pct}{tail}", file=self.file,
              flush=True)  # fmt: skip
        self._since = time.monotonic()

    def close(self) -> None:
        """A last line, unless the last one written already said where it ended."""
        if self._closed:
            return
        if self.n and (self._last != 100 or self.n != self.total):
            self._write()
        self._closed = True

    def __enter__(self) -> LineBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bar(desc: str, total: int | None = None, unit: str = "it", leave: bool = True,
        file: IO[str] | None = None) -> Any:  # fmt: skip
    """A progress bar on ``file`` (stderr): tqdm when it is a terminal, a :class:`LineBar`
    when it is not."""
    file = file or sys.stderr
    if _is_tty(file):
        from tqdm import tqdm

        return tqdm(desc=desc, total=total, unit=unit, leave=leave, file=file,
                    dynamic_ncols=True)  # fmt: skip
    if not leave:  # a transient bar: nothing to keep in a log
        return LineBar(desc, total, unit, file, silent=True)
    return LineBar(desc, total, unit, file)


def shard_bar(desc: str) -> tuple[Any, Any]:
    """A bar over shards that also shows how many rows were read, and its
    ``update(done, total, rows)`` callback (ingest's progress)."""
    b = bar(desc, unit="shard")

    def update(done: int, total: int, rows: int) -> None:
        b.total = total
        b.n = done
        b.set_postfix(rows=rows)
        b.refresh()

    return b, update


def step_bars(step: str = "") -> tuple[dict[str, Any], Any]:
    """One progress bar per named part of a step (embedding kinds, indexes), named
    ``"<step> <part>"`` so that a log says which step an ``img`` bar belongs to; returns the
    bars (close them when the step ends) and the step's ``update(part, done, total)``."""
    bars: dict[str, Any] = {}

    def update(part: str, done: int, total: int) -> None:
        b = bars.get(part) or bars.setdefault(part, bar(f"{step} {part}".strip(), total=total))
        b.total = total
        b.n = done
        b.refresh()

    return bars, update


@contextmanager
def step_progress(step: str = "") -> Iterator[Any]:
    """:func:`step_bars` as a block: yields ``update``, closes every bar when the step ends."""
    bars, update = step_bars(step)
    try:
        yield update
    finally:
        for b in bars.values():
            b.close()
