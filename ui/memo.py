"""Query results kept across reruns and sessions while the build and the Selection stay the same.

Streamlit reruns the whole page script on every click, so a count or a page of rows over every
row would run again for a click that changed nothing it depends on. Each result here is cached
under the dataset's build stamp (store file and version, manifest version: a build step that
writes columns changes one of them) and a digest of the resolved Selection (its recipe plus the
row ids its keywords and subsets resolved to), so a changed filter, subset or build misses the
cache and nothing stale is shown. Errors (a filter past its time limit) are not cached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np
import streamlit as st

from backend import browse, exact_counts, paths
from backend.query_errors import QueryTimeout
from backend.selection import Selection
from ui import state

T = TypeVar("T")


def build_stamp(name: str) -> str:
    """Which build of ``name`` is on disk: the store file, its version and the manifest's."""
    return f"{state.store_file(name)}|{state.store_mtime(name)}|{state.manifest_mtime(name)}"


def _ids_digest(h: Any, ids: Any) -> None:
    h.update(b"|" if ids is None else np.asarray(ids, dtype=np.int64).tobytes() + b";")


def selection_key(sel: Selection) -> str:
    """A digest of everything that decides which rows ``sel`` matches (and their order)."""
    h = hashlib.sha1(json.dumps(sel.to_dict(), sort_keys=True, default=str).encode())
    _ids_digest(h, sel.keyword_ids)
    for subset, ids in sorted((sel.subset_ids or {}).items()):
        h.update(subset.encode())
        _ids_digest(h, ids)
    return h.hexdigest()


@st.cache_data(max_entries=512, show_spinner=False)
def _memo(stamp: str, what: str, key: str, _compute: Callable[[], Any]) -> Any:
    return _compute()


def memo(name: str, what: str, key: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per (build of ``name``, ``what``, ``key``); ``what`` names the query
    and ``key`` must hold everything else its result depends on."""
    return _memo(build_stamp(name), what, key, compute)


def count(name: str, con: Any, sel: Selection) -> int:
    """How many rows match ``sel`` (cached)."""
    return memo(name, "count", selection_key(sel), lambda: browse.count(con, sel))


QUICK_SECONDS = 0.25  # an exact count that takes longer is shown as an estimate first


def quick_count(name: str, con: Any, sel: Selection) -> exact_counts.Count:
    """The count to show now: exact when it takes under ``QUICK_SECONDS`` (or the store is
    small enough to have no row sample), else an estimate from the row sample while the exact
    count runs in the background; not even tried when the sample's own time × its 1-in-m says
    it will be slow. An estimate of 0 is counted at once: "none" is never a guess."""
    key = selection_key(sel)
    est = memo(name, "estimate", key, lambda: browse.estimate(con, sel))
    if est is None or est[0] == 0 or sel.is_empty():
        return exact_counts.Count(count(name, con, sel))
    job_key, root = f"{build_stamp(name)}|{key}", paths.workspace()
    job = exact_counts.known(job_key)
    if job is None or job.cancelled():  # (once it has a job, a rerun runs no count again)
        if est[2] < 4 * QUICK_SECONDS:  # the sample's time × m: it may be quick, try
            try:
                with con.deadline(QUICK_SECONDS):  # (a bounded connection: backend.bounded)
                    return exact_counts.Count(count(name, con, sel))
            except QueryTimeout:
                pass
        cur = _background_cursor(name, root)
        exact_counts.submit(job_key, lambda: _exact_count(cur, sel), _session(), cur.interrupt,
                            _connected)  # fmt: skip
    return exact_counts.settled(job_key, est[0], f"a sample of 1 row in {est[1]:,}")


BACKGROUND_TIMES = 3  # a background count may run this many times the page's time limit


def _background_cursor(name: str, root: Any) -> Any:
    """A cursor of its own for a background count, bounded like any query but with
    ``BACKGROUND_TIMES`` the time (nobody waits on it; 10^8 captions take ~8 s idle)."""
    from backend import bounded, store

    lim = bounded.limits()
    longer = replace(lim, seconds=lim.seconds * BACKGROUND_TIMES)
    return bounded.wrap(store.cursor(name, root), longer)


def _exact_count(cur: Any, sel: Selection) -> int:
    """(in the background) ``sel``'s count on ``cur``, which it closes."""
    try:
        return browse.count(cur, sel)
    finally:
        cur.close()


def _connected(session: str) -> bool:
    """Whether a session's browser tab is still connected (a closed one's counts can stop)."""
    from streamlit import runtime

    return not runtime.exists() or runtime.get_instance().is_active_session(session)


def _session() -> str:
    """This user's session (a newer count of theirs stops their older one), "" outside one."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return "" if ctx is None else str(ctx.session_id)


def page(
    name: str,
    con: Any,
    sel: Selection,
    after: int = -1,
    before: int | None = None,
    limit: int = 48,
    value: Any = None,
) -> list[dict[str, Any]]:
    """One page of ``sel``'s rows (cached per cursor and page size); ``value``: the cursor
    row's value of the sort column (:func:`backend.browse.page`)."""
    key = f"{selection_key(sel)}|{after}|{before}|{limit}|{value!r}"
    return memo(name, "page", key, lambda: browse.page(con, sel, after=after, before=before,
                                                       limit=limit, value=value))  # fmt: skip
