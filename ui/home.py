"""The home page's pieces: one card per dataset, the rejects table, and the empty state that
can build the demo dataset from the browser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import streamlit as st

from backend import browse, catalog, paths
from backend.store import StoreMissing
from ui import fmt, shared, state
from ui.style import esc, icon

DEMO_ROWS = 5000
REJECTS_SHOWN = 200  # rejected items a page


def _browse(name: str) -> None:
    state.set_active(name)
    state.go_to(state.BROWSE_PAGE)


def _steps_html(info: dict[str, Any]) -> str:
    done = set(info["steps"])
    chips = "".join(
        f'<span class="ts-step{" done" if s in done else ""}" '
        f'title="{"done" if s in done else "not run yet"}">{"✓ " if s in done else "○ "}{s}</span>'
        for s in catalog.PIPELINE
    )
    return f'<div class="ts-steps">{chips}</div>'


def _kv_html(info: dict[str, Any]) -> str:
    models = info.get("models") or {}
    model_txt = (
        "<br>".join(f"{esc(k)}: <code>{esc(v)}</code>" for k, v in models.items())
        if models
        else '<span style="color:var(--ts-muted)">none yet (embed has not run)</span>'
    )
    items = [
        ("Source", f"<code>{esc(shared.show_path(info.get('source')))}</code>"),
        ("Format", esc(info.get("format") or "—")),
        *([("Profile", _profile_html(info))] if info.get("profile") else []),
        ("Models", model_txt),
        ("Built", esc(fmt.when(info.get("built_at")))),
        ("Stored at", f"<code>{esc(shared.show_path(info.get('path')))}</code>"),
    ]
    return (
        '<div class="ts-kv">'
        + "".join(f"<div>{k}</div><div>{v}</div>" for k, v in items)
        + ("</div>")
    )


def _profile_html(info: dict[str, Any]) -> str:
    """The known pool the source was read as, and the scores it shipped with their columns."""
    p = info.get("profile") or {}
    how = "forced with --profile" if p.get("forced") else "detected from the columns"
    head = f"<b>{esc(p.get('name') or 'none')}</b> · {esc(p.get('title'))} ({how})"
    shipped = [f"<code>{esc(k)}</code> ← {esc(v.get('origin'))}"
               for k, v in (info.get("scores") or {}).items() if v.get("source") == "shipped"]
    if shipped:
        head += "<br>shipped scores: " + ", ".join(shipped)
    return head


def _reasons_html(info: dict[str, Any], top: int = 5) -> str:
    reasons: dict[str, int] = info.get("reasons") or {}
    if not reasons:
        return '<div class="ts-meta">No item was rejected.</div>'
    biggest = max(reasons.values())
    out = []
    for reason, n in list(reasons.items())[:top]:
        width = max(3, round(100 * n / biggest))
        out.append(
            f'<div class="ts-reason"><span>{esc(reason)}</span><b>{fmt.num(n)}</b>'
            f'<div class="ts-bar"><i style="width:{width}%"></i></div></div>'
        )
    if len(reasons) > top:
        out.append(f'<div class="ts-meta">and {len(reasons) - top} more reasons</div>')
    return "".join(out)


def _rejects_table(name: str, total: int) -> None:
    """One page of the rejected items, all reasons or one (a dataset may reject millions)."""
    con = state.connection(name)
    reasons = browse.reject_reasons(con)
    pick, pager = st.columns([3, 1], vertical_alignment="bottom")
    reason = pick.selectbox(
        "Reason",
        ["", *reasons],
        format_func=lambda r: f"{r} ({reasons[r]:,})" if r else f"All reasons ({total:,})",
        key=f"rejects-reason-{name}",
    )
    n = reasons.get(reason, 0) if reason else total
    pages = max(1, -(-n // REJECTS_SHOWN))
    page = pager.number_input(
        f"Page (of {pages:,})", 1, pages, 1, key=f"rejects-page-{name}-{reason}"
    )
    start = (int(page) - 1) * REJECTS_SHOWN
    rows = browse.rejects(con, REJECTS_SHOWN, reason or None, start)
    what = f"rejected as “{reason}”" if reason else "rejected items, by reason"
    st.caption(f"Items {start + 1:,}–{start + len(rows):,} of {n:,} {what}.")
    st.dataframe(
        pd.DataFrame(rows, columns=["reason", "key", "shard", "detail"]),
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(rows), 380),
        column_config={
            "reason": st.column_config.TextColumn("Reason", width="medium"),
            "key": st.column_config.TextColumn("Key", width="small"),
            "shard": st.column_config.TextColumn("Shard", width="small"),
            "detail": st.column_config.TextColumn("Detail", width="large"),
        },
    )


def workspace_line(names: list[str]) -> None:
    """'3 datasets · 5,853 rows · 47 rejected' above the cards."""
    rows = rejects = 0
    for name in names:
        try:
            info = state.summary(name)
        except (StoreMissing, OSError, ValueError):
            continue
        rows, rejects = rows + info["rows"], rejects + info["rejects"]
    plural = "s" if len(names) != 1 else ""
    st.markdown(
        f'<div class="ts-count" style="margin:.2rem 0 .4rem 0"><b>{len(names)}</b> '
        f"<span>dataset{plural} · {fmt.num(rows)} rows · {fmt.num(rejects)} rejected at "
        f"ingest</span></div>",
        unsafe_allow_html=True,
    )


def dataset_card(name: str, active: bool) -> None:
    with st.container(border=True, key=f"ds-{name}"):
        try:
            info = state.summary(name)
        except (StoreMissing, OSError, ValueError) as e:
            st.markdown(f"### {esc(name)}")
            st.error(f"Cannot read this dataset: {e}", icon=":material/error:")
            return
        title, actions = st.columns([3, 2], vertical_alignment="center")
        with title:
            st.markdown(
                f"### {name}" + (" &nbsp;:green-badge[:material/check: active]" if active else "")
            )
        with actions, st.container(horizontal=True, horizontal_alignment="right"):
            st.button(
                "Browse",
                key=f"browse-{name}",
                icon=":material/grid_view:",
                type="primary" if active else "secondary",
                on_click=_browse,
                args=(name,),
            )
        seen = info["rows"] + info["rejects"]
        m = st.columns(4)
        m[0].metric("Rows", fmt.num(info["rows"]), border=False)
        m[1].metric(
            "Rejected",
            fmt.num(info["rejects"]),
            help="Items dropped at ingest; the reasons are listed below.",
        )
        m[2].metric("Reject rate", fmt.pct(info["rejects"], seen))
        m[3].metric("Shards", fmt.num(len(state.facts(name)["shards"])))
        st.markdown(
            '<div class="ts-meta" style="margin-bottom:.15rem">PIPELINE</div>' + _steps_html(info),
            unsafe_allow_html=True,
        )
        left, right = st.columns([3, 2], gap="large")
        left.markdown(_kv_html(info), unsafe_allow_html=True)
        with right:
            st.markdown(
                '<div class="ts-meta" style="margin-bottom:.3rem">TOP REJECT REASONS'
                "</div>" + _reasons_html(info),
                unsafe_allow_html=True,
            )
        if info["rejects"]:
            with st.expander(
                f"Rejected items ({fmt.num(info['rejects'])})", icon=":material/block:"
            ):
                _rejects_table(name, info["rejects"])


# -- the empty workspace -----------------------------------------------------------------------


def _demo_generator():
    try:
        from backend.demo import generate
    except ImportError:
        return None
    return generate


def _throttled(bar, label: str):
    """A progress callback that redraws only when the whole percent changes."""
    last = {"p": -1}

    def update(done: int, total: int, *extra: int) -> None:
        p = int(100 * done / total) if total else 0
        if p != last["p"]:
            last["p"] = p
            tail = f" · {extra[0]:,} rows read" if extra else ""
            bar.progress(min(p, 100) / 100, text=f"{label} {done:,} / {total:,}{tail}")

    return update


class _PageReporter:
    """The demo pipeline drawn on the page: the step's line, then a bar per part of it."""

    @contextmanager
    def stage(self, step: str, text: str) -> Iterator[Any]:
        st.write(text)
        bars: dict = {}

        def update(part: str, done: int, total: int, *rows: int) -> None:
            if part not in bars:
                bars[part] = _throttled(st.progress(0.0), part)
            bars[part](done, total, *rows)

        yield update

    def done(self, step: str, record: Any) -> None:
        pass

    def note(self, text: str) -> None:
        pass  # which model embedded is on the dataset's card


def build_demo() -> None:
    from backend.pipeline import DemoPlan
    from backend.pipeline import build_demo as run_pipeline

    plan = DemoPlan(rows=DEMO_ROWS, root=paths.workspace(), workers=1, embed_workers=0)
    with st.status("Building the demo dataset…", expanded=True) as status:
        try:
            result = run_pipeline(plan, _PageReporter())["ingest"]
        except Exception as e:  # show any failure in the page, not as a traceback
            status.update(label=f"Building the demo failed: {e}", state="error")
            return
        status.update(
            label=f"Built demo: {result.rows:,} rows, {result.rejects:,} rejected "
            f"in {result.seconds:.1f} s",
            state="complete",
            expanded=False,
        )
    state.set_active("demo")
    st.rerun()


def empty_state() -> None:
    with st.container(border=True, key="empty"):
        st.markdown(
            f'<div class="ts-empty"><div class="ts-empty-icon">{icon("dataset")}</div>'
            "<h3>No datasets yet</h3>"
            f"<p>The workspace <code>{esc(shared.show_path(paths.workspace()))}</code> holds no "
            "built dataset. "
            "Build the demo (about 5,000 captioned images, real photos and synthetic scenes, "
            "with a few broken items on purpose), "
            "or ingest your own folder, WebDataset tars or parquet.</p></div>",
            unsafe_allow_html=True,
        )
        _, mid, _ = st.columns([1, 2, 1])
        with mid:
            st.code("python -m backend demo", language="bash")
            st.code("python -m backend build NAME --source PATH", language="bash")
            generate = _demo_generator()
            if not shared.builds_allowed():
                shared.cli_instead(None)
                return
            clicked = st.button(
                "Build the demo dataset here",
                type="primary",
                icon=":material/rocket_launch:",
                width="stretch",
                disabled=generate is None,
                help=None if generate else "backend.demo is not available in this install",
                key="build-demo",
            )
    if clicked:
        build_demo()
