"""The filter widgets of Browse: they read the stored Selection and return the edited one.

A range equal to the column's full span is no filter at all, so an untouched slider never
narrows the selection (nor hides rows whose value is missing).
"""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from typing import Any

import streamlit as st

from backend import browse, keyword, paths
from backend.selection import Selection
from ui import fmt, state

K_TEXT = state.FILTER_PREFIX + "text"
K_SHARDS = state.FILTER_PREFIX + "shards"
K_KEYWORDS = state.FILTER_PREFIX + "keywords"
K_EXTRA = state.FILTER_PREFIX + "extra"
K_SQL = state.FILTER_PREFIX + "sql"
K_DOMAINS = state.FILTER_PREFIX + "domains"
K_LANGUAGES = state.FILTER_PREFIX + "languages"
DOMAIN = "domain"
LANGUAGE = "language"
TOP_DOMAINS = 50
TOP_LANGUAGES = 50
OWN_CONTROLS = ("width", "height")  # numeric columns with their own slider


def _range_key(col: str) -> str:
    return f"{state.FILTER_PREFIX}range::{col}"


def _num(v: Any) -> int | float | None:
    if v is None:
        return None
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _seed(key: str, value: Any) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def _range_slider(
    col: str, label: str, bounds: tuple[Any, Any], current: tuple[Any, Any] | None
) -> tuple[Any, Any] | None:
    """A slider over the column's [min, max]; returns a range, or None for "everything"."""
    lo, hi = _num(bounds[0]), _num(bounds[1])
    if lo is None or hi is None:
        st.caption(f"**{label}**: no values")
        return None
    if lo == hi:
        st.caption(f"**{label}**: every row has {fmt.num(lo)}")
        return None
    is_int = isinstance(lo, int) and isinstance(hi, int)
    if not is_int:
        lo, hi = float(lo), float(hi)
    cur_lo = lo if current is None or current[0] is None else _num(current[0])
    cur_hi = hi if current is None or current[1] is None else _num(current[1])
    cast = int if is_int else float
    value = (cast(min(max(cur_lo, lo), hi)), cast(max(min(cur_hi, hi), lo)))
    key = _range_key(col)
    _seed(key, value)
    step = 1 if is_int else (hi - lo) / 200
    picked = st.slider(
        label,
        min_value=lo,
        max_value=hi,
        step=step,
        key=key,
        format="%d" if is_int else "%.4g",
    )
    if tuple(picked) == (lo, hi):
        return None
    return (picked[0], picked[1])


def sidebar(name: str) -> Selection:
    """Draw the filters in the sidebar and return the Selection they describe."""
    sel = state.selection(name)
    facts = state.facts(name)
    ranges_info: dict[str, tuple[Any, Any]] = facts["ranges"]
    ranges: dict[str, tuple[Any, Any]] = {}
    with st.sidebar:
        st.markdown("#### Filters")
        text, keywords = _text_inputs(name, sel)
        for col, label in (("width", "Width (px)"), ("height", "Height (px)")):
            if col in ranges_info:
                r = _range_slider(col, label, ranges_info[col], sel.ranges.get(col))
                if r:
                    ranges[col] = r

        shards = _shards_input(sel, dict(facts["shards"]))
        domains = _domain_facet(name, sel) if DOMAIN in facts["columns"] else None
        languages = _language_facet(name, sel) if LANGUAGE in facts["columns"] else None
        ranges.update(_extra_ranges(sel, facts["numeric"], ranges_info))
    # Ranges on columns this dataset does not have (set by another page) are kept, so that
    # the backend can say what is wrong with them instead of the filter silently vanishing.
    for col, r in sel.ranges.items():
        if col not in ranges_info:
            ranges[col] = r
    out = replace(
        sel,
        values=_values(sel, domains, languages),
        text=text.strip(),
        ranges=ranges,
        shards=list(shards),
        keywords=keywords.strip(),
        keyword_ids=None,
        sql=_sql_box(name, sel.sql),
    )
    return _with_subsets(name, out)


def _text_inputs(name: str, sel: Selection) -> tuple[str, str]:
    """(caption contains, caption keywords); the keywords box only once the index is built."""
    text = _text_box(
        K_TEXT, sel.text, "Caption contains", "words, e.g. red car", ":material/search:",
        "Every word must appear in the caption as a whole word (case-insensitive): "
        "cat finds “a cat” but not “catalog”. Add * to match part of a word: cat* (starts "
        "with), *cat* (anywhere).",
    )
    keywords = ""
    if keyword.index_dir(name, paths.workspace()).exists():
        keywords = _text_box(
            K_KEYWORDS, sel.keywords, "Caption keywords", 'e.g. "red circle" -star',
            ":material/manage_search:",
            'Full-text index (BM25): whole words with stemming, "exact phrase", '
            "+must, -not, prefix*. Any word may match unless you use + or quotes.",
        )
    return text, keywords


def _text_box(key: str, value: str, label: str, placeholder: str, icon: str, why: str) -> str:
    """A text box seeded from the Selection (widget state is dropped on other pages)."""
    _seed(key, value)
    return st.text_input(label, key=key, placeholder=placeholder, help=why, icon=icon)


def _shards_input(sel: Selection, shard_counts: dict[str, int]) -> list[str]:
    """The chosen source shards; drawn only when there is more than one (or some are chosen)."""
    if not (len(shard_counts) > 1 or sel.shards):
        return []
    _seed(K_SHARDS, [s for s in sel.shards if s in shard_counts])
    return st.multiselect(
        "Source shards",
        list(shard_counts),
        key=K_SHARDS,
        format_func=lambda s: f"{s}  ({fmt.num(shard_counts.get(s))})",
        placeholder=f"all {len(shard_counts)} shards",
    )


def _extra_ranges(
    sel: Selection, numeric: list[str], ranges_info: dict[str, tuple[Any, Any]]
) -> dict[str, tuple[Any, Any]]:
    """Ranges on the other numeric columns the user adds to the filters."""
    ranges: dict[str, tuple[Any, Any]] = {}
    extra_cols = [c for c in numeric if c not in OWN_CONTROLS]
    if extra_cols:
        _seed(K_EXTRA, [c for c in sel.ranges if c in extra_cols])
        chosen = st.multiselect(
            "Numeric column ranges",
            extra_cols,
            key=K_EXTRA,
            placeholder="add a column to filter on",
            help="Any numeric column of the dataset: pick one, then narrow its range.",
        )
        for col in chosen:
            r = _range_slider(col, col, ranges_info[col], sel.ranges.get(col))
            if r:
                ranges[col] = r
    return ranges


def _values(sel: Selection, domains: list[str] | None,
            languages: list[str] | None) -> dict[str, Any]:  # fmt: skip
    """The Selection's value filters with the drawn facets' choices; the rest pass through."""
    # Parts these widgets do not draw (a map region, …) pass through unchanged.
    values = dict(sel.values)
    if domains is not None:
        values.pop(DOMAIN, None)
        if domains:
            values[DOMAIN] = domains
    if languages is not None:
        values.pop(LANGUAGE, None)
        if languages:
            values[LANGUAGE] = languages
    return values


@st.cache_data(max_entries=32, show_spinner=False)
def _top_values(name: str, column: str, limit: int, store: str, mtime_ns: int
                ) -> list[tuple[str, int]]:  # fmt: skip
    """A facet's commonest values of the dataset with their rows, once per store version."""
    return browse.top_values(state.connection(name), column, limit)


def _domain_facet(name: str, sel: Selection) -> list[str] | None:
    """The "Domain" facet: the dataset's commonest registered domains with their row counts;
    the picked ones become ``domain IN (…)`` in the Selection. None (no facet) when every row
    has the same domain and none is picked."""
    top = _top_values(name, DOMAIN, TOP_DOMAINS, str(state.store_file(name)),
                      state.store_mtime(name))  # fmt: skip
    n = len(dict(top))
    return _facet(
        top, [str(d) for d in sel.values.get(DOMAIN, [])], K_DOMAINS, "Domain",
        f"any of {n}{'+' if n >= TOP_DOMAINS else ''} domains",
        f"The registered domain of each row's URL (derived at ingest); the "
        f"{TOP_DOMAINS} commonest are listed with their rows in the whole dataset.",
    )


def _language_facet(name: str, sel: Selection) -> list[str] | None:
    """The "Caption language" facet (the ``language`` scorer's fastText codes, with rows);
    the picked ones become ``language IN (…)``. None when there is nothing to choose."""
    top = _top_values(name, LANGUAGE, TOP_LANGUAGES, str(state.store_file(name)),
                      state.store_mtime(name))  # fmt: skip
    return _facet(
        top, [str(v) for v in sel.values.get(LANGUAGE, [])], K_LANGUAGES, "Caption language",
        f"any of {len(dict(top))} languages",
        "Each caption's language by fastText lid.176 (ISO code), from "
        f"`python -m backend score {name} --scorers language`; rows in the whole dataset.",
    )


def _facet(top: list[tuple[str, int]], current: list[str], key: str, label: str,
           placeholder: str, why: str) -> list[str] | None:  # fmt: skip
    """A multiselect of values with their row counts, the picked ones kept even when rare;
    None (no facet) when there is one value or none and nothing is picked."""
    counts = dict(top)
    if len(counts) < 2 and not current:
        return None
    _seed(key, current)
    return st.multiselect(
        label,
        list(dict.fromkeys([*counts, *current])),
        key=key,
        format_func=lambda v: f"{v}  ({fmt.num(counts[v])})" if v in counts else v,
        placeholder=placeholder,
        help=why,
    )


def _sql_box(name: str, current: str) -> str:
    """The "Advanced: SQL WHERE" box; returns the condition when it is valid, else "" (the
    text stays in the box, with the error under it)."""
    _seed(K_SQL, current)
    with st.sidebar.expander("Advanced: SQL WHERE", expanded=bool(current.strip())):
        text = st.text_area(
            "SQL WHERE",
            key=K_SQL,
            placeholder="width > 200 AND caption ILIKE '%cat%'",
            help="One condition on this dataset's columns, as after WHERE. Plain functions "
            "only: no other tables, files or statements. Ctrl+Enter applies.",
            height=90,
        ).strip()
        if not text:
            return ""
        from backend.sqlguard import QueryTimeout

        # A timeout is remembered by this session only (a busy moment must not refuse the
        # condition for every session, nor make each rerun of this one wait for it again).
        slow = st.session_state.setdefault("ts.sql_timeouts", {})
        key = (name, text, state.store_mtime(name))
        try:
            err = slow.get(key) or _sql_error(name, text, str(state.store_file(name)), key[2])
        except QueryTimeout as e:
            err = slow[key] = str(e)
        if err:
            st.error(err, icon=":material/error:")
            return ""
        st.caption(":material/check: applied")
    return text


@st.cache_data(max_entries=64, show_spinner="Checking the condition…")
def _sql_error(name: str, text: str, store: str, mtime_ns: int) -> str | None:
    """Why the condition cannot run (parse check, then a timed count), or None; per store."""
    from backend import browse
    from backend.selection import BadSelection
    from backend.sqlguard import QueryTimeout, check_where

    con = state.connection(name)
    try:
        check_where(text, browse.columns(con), con)
    except QueryTimeout:
        raise  # st.cache_data keeps no exception: the next run tries again
    except BadSelection as e:
        return str(e)
    return None


def _with_subsets(name: str, sel: Selection) -> Selection:
    """Subset membership resolved to the saved row ids; a missing subset is reported and
    dropped from this run's Selection."""
    if not sel.subset_names():
        return sel
    from backend import subsets

    ids: dict[str, tuple[int, ...]] = {}
    missing: list[str] = []
    for n in sel.subset_names():
        try:
            ids[n] = tuple(subsets.get(name, n, paths.workspace()).row_ids.tolist())
        except subsets.SubsetError as e:
            st.sidebar.error(str(e), icon=":material/error:")
            missing.append(n)
    if missing:
        sel = replace(
            sel,
            subsets_all=[n for n in sel.subsets_all if n not in missing],
            subsets_any=[n for n in sel.subsets_any if n not in missing],
            subsets_none=[n for n in sel.subsets_none if n not in missing],
        )
    return replace(sel, subset_ids=ids)
