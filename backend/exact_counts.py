"""Exact counts that run in the background while a page shows an estimate.

At 10^8 rows the count of a caption filter scans every caption (7.5 s) while the page of its
rows takes 0.05 s: a page that waited for the count would answer a filter in 8 s. With a row
sample (:mod:`backend.row_sample`) the page shows an estimate at once and the exact count runs
here, one at a time, on its own bounded cursor (its time limit interrupts only itself); the page
asks again until it is done. A user's newer request cancels that user's waiting count and
stops the running one, so a user who changes a filter three times does not leave three scans
taking the cores from the pages they look at next. No Streamlit here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exact-count")
_JOBS: OrderedDict[str, Future] = OrderedDict()
_OWNERS: dict[str, tuple[str, Callable[[], None] | None]] = {}  # key -> (owner, stop)
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


def submit(key: str, count: Callable[[], int], owner: str = "",
           stop: Callable[[], None] | None = None,
           alive: Callable[[str], bool] = lambda owner: True) -> Future:  # fmt: skip
    """Run ``count()`` in the background under ``key`` (once). The same ``owner`` (a user's
    session) has moved on, and owners no longer ``alive`` (a closed tab) have gone: their
    waiting jobs are cancelled and their running one stopped with ``stop`` (then forgotten, so
    asking for it again counts again); other users' jobs stay."""
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and not job.cancelled():
            return job
        for old_key, (old_owner, old_stop) in list(_OWNERS.items()):
            old = _JOBS.get(old_key)
            if old is None or old.done() or (old_owner != owner and alive(old_owner)):
                continue
            if not old.cancel() and old_stop is not None:  # running: stop its query
                old_stop()
            del _JOBS[old_key]
        job = _JOBS[key] = _POOL.submit(count)
        _OWNERS[key] = (owner, stop)
        _JOBS.move_to_end(key)
        while len(_JOBS) > KEEP:
            _OWNERS.pop(_JOBS.popitem(last=False)[0], None)
        for gone in [k for k in _OWNERS if k not in _JOBS]:
            del _OWNERS[gone]
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
