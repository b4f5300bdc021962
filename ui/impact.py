"""The filter-impact view: what a Selection keeps of its base (:mod:`backend.impact`), drawn.

Totals, the groups removed disproportionately (each with a gallery of its removed and kept
rows), retention per group (concept, cluster, domain, caption language, score bin) and the long
tail before and after on one log–log rank–frequency plot. Used by the Impact page (the current
Selection or a saved subset against the whole dataset or another subset) and under the Safety
page's threshold slider (the selection against itself with the threshold applied).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import impact, paths
from backend.concepts.run import concepts_dir, list_vocabs
from backend.impact_tail import share_line
from backend.selection import Selection
from backend.sqlguard import QueryTimeout
from ui import cards, fmt, state

BEFORE, AFTER = "#4f46e5", "#c0462f"


def _concepts_version(name: str) -> str:
    root = paths.workspace()
    parts = []
    for v in list_vocabs(name, root):
        try:
            summary = concepts_dir(name, root) / v / "summary.json"
            parts.append(f"{v}:{summary.stat().st_mtime_ns}")
        except OSError:
            pass
    return "|".join(parts)


@st.cache_resource(max_entries=8, show_spinner="Reading concept hits, clusters and scores…")
def _inputs(name: str, root: str, store_mtime: int, manifest_mtime: int, concepts: str,
            vocab: str | None) -> dict[str, Any]:  # fmt: skip
    con = state.connection(name)
    try:
        return impact.dataset_inputs(con, name, Path(root), vocab)
    finally:
        con.close()


def inputs(name: str, vocab: str | None = None) -> dict[str, Any]:
    """What the impact groups by, read once per version of the store, manifest and concepts."""
    return _inputs(name, str(paths.workspace()), state.store_mtime(name),
                   state.manifest_mtime(name), _concepts_version(name), vocab)  # fmt: skip


def measure(name: str, con, base: Selection, sel: Selection, min_count: int,
            omit: tuple[str, ...] = ()) -> tuple:  # fmt: skip
    """The impact and its inputs; ``omit``: score columns not to bin (the one a threshold
    is on: its own bins say only that the threshold removes what it removes)."""
    from ui import memo

    got = inputs(name)
    scores = {c: p for c, p in got["scores"].items() if c not in omit}

    def compute() -> impact.Impact:
        return impact.measure(con, base, sel, hits=got["hits"], image_hits=got["image_hits"],
                              labels=got["labels"], scores=scores, min_count=min_count,
                              name=name).attach(got)  # fmt: skip

    key = (f"{memo.selection_key(base)}|{memo.selection_key(sel)}|{min_count}|{sorted(omit)}|"
           f"{_concepts_version(name)}")  # a rerun that changed none of these: no query
    return memo.memo(name, "impact", key, compute), got


def tail_figure(tail: dict[str, Any]) -> go.Figure:
    """Both rank–frequency curves on log–log axes, each with its fitted power law."""
    fig = go.Figure()
    for key, label, colour in (("before", "base", BEFORE), ("after", "kept", AFTER)):
        ranked = np.asarray(tail[key])
        keep = ranked > 0
        rank = np.arange(1, len(ranked) + 1)
        fit = tail[f"slope_{key}"]
        words = f"slope {fit['slope']:.2f}" if fit.get("slope") is not None else "no slope"
        fig.add_trace(go.Scatter(x=rank[keep], y=ranked[keep], mode="lines+markers",
                                 name=f"{label} ({words})", marker={"size": 4, "color": colour},
                                 line={"color": colour},
                                 hovertemplate="rank %{x}: %{y:,} rows<extra></extra>"))
        if fit.get("slope") is not None:
            x = np.array([1, fit["ranks_fitted"]])
            fig.add_trace(go.Scatter(x=x, y=np.exp(fit["intercept"]) * x ** -fit["slope"],
                                     mode="lines", showlegend=False, hoverinfo="skip",
                                     line={"color": colour, "dash": "dash", "width": 1}))
    fig.update_xaxes(type="log", title="concept rank")
    fig.update_yaxes(type="log", title="rows naming it")
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      legend={"orientation": "h", "y": 1.12})  # fmt: skip
    return fig


def _frame(groups: list[impact.Group], overall: float) -> pd.DataFrame:
    return pd.DataFrame([{
        "kind": g.kind, "group": g.label, "base rows": g.base, "kept": g.kept,
        "removed": g.removal, "× overall": (g.removal / overall) if overall else None,
    } for g in groups], columns=["kind", "group", "base rows", "kept", "removed", "× overall"])


def _table(df: pd.DataFrame, key: str) -> None:
    config = {"removed": st.column_config.ProgressColumn("removed", format="percent",
                                                         min_value=0.0, max_value=1.0),
              "× overall": st.column_config.NumberColumn("× overall", format="%.1f×")}
    st.dataframe(df, hide_index=True, width="stretch", column_config=config, key=key,
                 height=min(38 + 35 * max(len(df), 1), 420))  # fmt: skip


def _gallery(name: str, con, base, sel, imp, group, hits, shown: set[int], key: str) -> None:
    """Removed and kept rows of one group side by side (rows drawn elsewhere on the page
    are skipped: one card per row and run)."""
    src = None
    if group.kind in ("concept", "image concept"):
        src = hits["hits"] if group.kind == "concept" else hits["image_hits"]
    from ui import memo

    where = impact.group_clause(group, imp, src)
    digest = hashlib.sha1(json.dumps(where, default=str).encode()).hexdigest()
    for removed, title in ((True, "removed"), (False, "kept")):
        key = (f"{memo.selection_key(base)}|{memo.selection_key(sel)}|{digest}|{removed}|"
               f"{6 + len(shown)}")

        def fetch(removed: bool = removed) -> list[dict[str, Any]]:
            return impact.gallery(con, base, sel, where, removed, limit=6 + len(shown))

        rows = memo.memo(name, "impact-gallery", key, fetch)
        rows = [r for r in rows if int(r["row_id"]) not in shown][:6]
        shown.update(int(r["row_id"]) for r in rows)
        n = group.removed if removed else group.kept
        st.markdown(f"**{title.capitalize()}** · {n:,} of {group.base:,} rows")
        if rows:
            cards.grid(name, rows, 6, ranked=False, key=f"{key}-{title}")
        elif n:
            st.caption(f"The {title} rows of this group are the cards shown above.")
        else:
            st.caption(f"No {title} row in this group.")


def draw(name: str, con, base: Selection, sel: Selection, *, key: str = "impact",
         what: str = "the selection", against: str = "the whole dataset",
         shown: set[int] | None = None, omit: tuple[str, ...] = ()) -> None:  # fmt: skip
    """The whole view for ``sel``'s rows within ``base`` (both resolved)."""
    c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="bottom")
    factor = c1.number_input("Flag at × overall rate", min_value=1.0, max_value=20.0,
                             value=impact.FACTOR, step=0.5, key=f"w.{key}.factor",
                             help="A group is flagged when its removal rate is at least this "
                             "many times the overall one (groups under "
                             f"{impact.MIN_ROWS} rows are not flagged)")  # fmt: skip
    min_count = int(c2.number_input("Concept falls below", min_value=1, value=5, step=1,
                                    key=f"w.{key}.min", help="list concepts whose count drops "
                                    "under this"))  # fmt: skip
    try:
        imp, got = measure(name, con, base, sel, min_count, omit)
    except QueryTimeout as e:  # a huge base: say so here, keep the rest of the page
        st.warning(f"The impact was not computed: {e}. From the command line (no time limit): "
                   f"`python -m backend impact {name} --where …`", icon=":material/timer_off:")
        return
    c3.caption(f"Comparing {what} with {against}"
               + "".join(f" · {k}: {v}" for k, v in imp.sources.items()))  # fmt: skip
    m = st.columns(4)
    m[0].metric("Base rows", fmt.num(imp.base_rows), border=True)
    m[1].metric("Kept", fmt.num(imp.kept_rows), fmt.pct(imp.kept_rows, imp.base_rows),
                delta_color="off", delta_arrow="off", border=True)  # fmt: skip
    m[2].metric("Removed overall", f"{imp.removal:.1%}", border=True)
    flags = imp.flags(factor)
    m[3].metric("Groups over-removed", fmt.num(len(flags)), f"≥ {factor:g}× {imp.removal:.1%}",
                delta_color="off", delta_arrow="off", border=True)  # fmt: skip
    for note in imp.notes:
        st.caption(f":material/block: {note}")
    if imp.provenance:
        st.caption("Score bins — " + " · ".join(f"`{c}` {p}" for c, p in imp.provenance.items()
                                                 if p))  # fmt: skip
    t_flags, t_groups, t_tail = st.tabs([f"Disproportion ({len(flags)})", "Retention by group",
                                         "Long tail"])  # fmt: skip
    with t_flags:
        _flags(name, con, base, sel, imp, flags, got, factor, shown or set(), key)
    with t_groups:
        kinds = list(dict.fromkeys(g.kind for g in imp.groups))
        pick = st.pills("Group by", kinds, selection_mode="multi", default=kinds,
                        key=f"w.{key}.kinds")  # fmt: skip
        df = _frame([g for g in imp.groups if g.kind in (pick or kinds)], imp.removal)
        _table(df.sort_values(["removed", "base rows"], ascending=False), f"{key}-groups")
    with t_tail:
        _tail(imp)


def _flags(name, con, base, sel, imp, flags, got, factor, shown, key) -> None:
    if imp.removal <= 0:
        st.success("The selection keeps every row of its base: nothing is removed.",
                   icon=":material/check:")  # fmt: skip
        return
    if not flags:
        st.success(f"No group loses {factor:g}× the overall {imp.removal:.1%} or more.",
                   icon=":material/check:")  # fmt: skip
        return
    st.caption(f"Groups of ≥ {impact.MIN_ROWS} rows whose removal rate is at least the factor "
               "times the overall rate and unlikely by chance (one-sided binomial p < "
               f"{impact.ALPHA:g} at the overall rate), most disproportionate first. Pick one "
               "to see its removed and kept rows.")
    _table(_frame(flags, imp.removal), f"{key}-flags")
    labels = [f"{g.kind}: {g.label} — {g.removal:.0%} removed" for g in flags]
    i = st.selectbox("Rows of", range(len(flags)), format_func=labels.__getitem__,
                     key=f"w.{key}.flag")  # fmt: skip
    _gallery(name, con, base, sel, imp, flags[i or 0], got, shown, f"{key}-g")


def _tail(imp: impact.Impact) -> None:
    t = imp.tail
    if t is None:
        st.info("No concept counts to draw the long tail from: "
                + next((n for n in imp.notes if n.startswith("concepts")), ""),
                icon=":material/info:")  # fmt: skip
        return
    st.plotly_chart(tail_figure(t), key="impact-tail")
    st.markdown(f"**Base:** {t['seen_before']:,} concepts seen · {share_line(t['shares_before'])}"
                f"  \n**Kept:** {t['seen_after']:,} concepts seen · "
                f"{share_line(t['shares_after'])}")  # fmt: skip
    st.caption("Share of all concept hits in the head (top 10% of concepts by rank), torso "
               "(to 50%) and tail; dashed lines: power-law fits on ranks with count ≥ 5.")
    c1, c2 = st.columns(2)
    with c1:
        st.markdown(f"**Vanish** ({len(t['vanished']):,}): in the base, none kept")
        st.dataframe(pd.DataFrame(t["vanished"], columns=["concept", "base", "kept"]),
                     hide_index=True, height=220, width="stretch")  # fmt: skip
    with c2:
        st.markdown(f"**Fall below {t['min_count']}** ({len(t['below']):,})")
        st.dataframe(pd.DataFrame(t["below"], columns=["concept", "base", "kept"]),
                     hide_index=True, height=220, width="stretch")  # fmt: skip


WHOLE, CURRENT = "Whole dataset", "Current selection"


def _subset(name: str, subset: str) -> Selection:
    from backend import subsets

    return subsets.resolve(name, Selection(subsets_all=[subset]), paths.workspace())


def page_view(name: str, con, sel: Selection) -> None:
    """The Impact page: pick what to compare (the current Selection or a saved subset) and its
    base (the whole dataset or another saved subset), then the view."""
    from backend import subsets

    saved = [s.name for s in subsets.list_subsets(name, paths.workspace())]
    c1, c2 = st.columns(2)
    what = c1.selectbox("Compare", [CURRENT, *saved], key="w.impact.what",
                        help="The rows a curation step keeps: the filters set on any page, or "
                        "a saved subset")  # fmt: skip
    against = c2.selectbox("Against", [WHOLE, *saved], key="w.impact.base",
                           help="What it is taken from")  # fmt: skip
    if what == CURRENT and sel.is_empty():
        st.info("No filter is set: the selection is the whole dataset. Set filters on any "
                "page (a Safety threshold, a map region, a concept…), or compare a saved "
                "subset.", icon=":material/info:")  # fmt: skip
    kept = sel if what == CURRENT else _subset(name, what)
    base = Selection() if against == WHOLE else _subset(name, against)
    draw(name, con, base, kept, key="impact",
         what="the current selection" if what == CURRENT else f"subset “{what}”",
         against="the whole dataset" if against == WHOLE else f"subset “{against}”")
