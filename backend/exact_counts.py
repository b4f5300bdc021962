"""Exact counts that run in the background while a page shows an estimate.

At 10^8 rows the count of a caption filter scans every caption (7.5 s) while the page of its
rows takes 0.05 s: a page that waited for the count would answer a filter in 8 s. With a row
sample (:mod:`backend.row_sample`) the page shows an estimate at once and the exact count runs
here, one at a time, on its own bounded cursor (its time limit interrupts only itself); the page
asks again until it is done. A newer request cancels the ones still waiting, so a user who
changes a filter three times does not queue three scans. No Streamlit here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exact-count")
_JOBS: OrderedDict[str, Future] = OrderedDict()
_LOCK = threading.Lock()
KEEP = 512  # finished counts remembered (each is one int)


@dataclass(frozen=True)
class Count:
    """A row count shown to a user: exact, or an estimate with why it is one."""

    n: int
    exact: bool = True
    note: str = ""  # for an estimate: where it came from and what happens next
    pending: bool = False  # the exact count is still running: ask again
    job: str = ""  # the key of the exact count's job (for an estimate)


def known(key: str) -> Future | None:
    """The job of ``key`` (running, waiting or finished), or None when never asked for."""
    with _LOCK:
        return _JOBS.get(key)


def submit(key: str, count: Callable[[], int]) -> Future:
    """Run ``count()`` in the background under ``key`` (once); waiting jobs of other keys are
    cancelled, since the user has moved on."""
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and not job.cancelled():
            return job
        for other in _JOBS.values():
            other.cancel()  # (a no-op for a running or finished job)
        job = _JOBS[key] = _POOL.submit(count)
        _JOBS.move_to_end(key)
        while len(_JOBS) > KEEP:
            _JOBS.popitem(last=False)
        return job


def settled(key: str, estimate: int, source: str) -> Count:
    """What to show for ``key`` now: the exact count when its job finished, else ``estimate``
    (from ``source``) with a note on the job (running, or stopped by its time limit)."""
    job = known(key)
    if job is not None and job.done() and not job.cancelled():
        err = job.exception()
        if err is None:
            return Count(int(job.result()))
        return Count(estimate, False, f"estimated from {source}; the exact count stopped: {err}",
                     job=key)  # fmt: skip
    return Count(estimate, False, f"estimated from {source}; counting all rows…", True, key)


def finished(key: str) -> bool:
    """Whether the job of ``key`` is over (done, failed or cancelled) or was never asked for."""
    job = known(key)
    return job is None or job.done()
