"""The Safety page's pool audits: link rot (the newest check, per-domain alive share with its
95% interval) and blocklists (the lists applied, the removal log), each with the one button
that turns it into a Selection part: keep only alive rows, exclude listed rows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import blocklists, linkrot
from backend.browse import columns
from backend.selection import Selection
from ui import memo, state, style

ALIVE_COL = "link_alive"
SHOWN_DOMAINS = 20
K_TAB = "w.audits.tab"


def _set(name: str, sel: Selection) -> None:
    state.set_selection(name, sel)
    state.clear_filter_widgets()


def keep_alive(sel: Selection) -> Selection:
    """``sel`` with "link_alive is true" (rows checked and alive; the rest were not sampled)."""
    return replace(sel, values={**sel.values, ALIVE_COL: [True]})


def exclude_listed(sel: Selection) -> Selection:
    none = sel.subsets_none + [s for s in [blocklists.SUBSET] if s not in sel.subsets_none]
    return replace(sel, subsets_none=none)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def domain_figure(domains: list[dict]) -> go.Figure:
    """Alive share per domain (the most rows first) with Wilson 95% interval bars."""
    shown = domains[:SHOWN_DOMAINS][::-1]
    fig = go.Figure(go.Scatter(
        x=[d["share"] for d in shown], y=[d["domain"] for d in shown], mode="markers",
        marker=dict(size=9, color="#4f46e5"),
        error_x=dict(type="data", symmetric=False, color="#8b8fd8", thickness=2,
                     array=[d["hi"] - d["share"] for d in shown],
                     arrayminus=[d["share"] - d["lo"] for d in shown]),
        customdata=[[d["alive"], d["checked"], d["rows"], d["lo"], d["hi"]] for d in shown],
        hovertemplate="%{y}<br>%{customdata[0]} of %{customdata[1]} alive (%{x:.0%})<br>"
                      "95%% CI %{customdata[3]:.0%}–%{customdata[4]:.0%}<br>"
                      "%{customdata[2]:,} rows<extra></extra>",
    ))  # fmt: skip
    fig.update_layout(
        height=max(200, 26 * len(shown) + 70), margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(title="alive share (95% Wilson interval)", range=[-0.02, 1.02],
                   tickformat=".0%"),
        plot_bgcolor="rgba(0,0,0,0)", showlegend=False,
    )  # fmt: skip
    return fig


def linkrot_view(name: str, sel: Selection, cols: dict[str, str]) -> None:
    rep = linkrot.latest(name)
    recipe = json.dumps(sel.to_dict()) if not sel.is_empty() else ""
    cmd = f"python -m backend linkrot {name} --sample 1000" + (
        f" --selection '{recipe}'" if recipe else "")  # fmt: skip
    if rep is None:
        st.markdown(style.empty_html(
            "link_off", "Link rot: not run",
            "Sample the Selection's URLs and check which still answer (it fetches from the "
            f"web, so it runs from the command line):<br><code>{style.esc(cmd)}</code>"),
            unsafe_allow_html=True)  # fmt: skip
        return
    lo, hi = rep["ci95"] or (None, None)
    m = st.columns(4)
    m[0].metric("Alive", _pct(rep["alive_share"]), f"95% CI {_pct(lo)}–{_pct(hi)}",
                delta_color="off", delta_arrow="off", border=True)  # fmt: skip
    m[1].metric("URLs checked", f"{rep['checked']:,}", f"of {rep['sampled']:,} sampled",
                delta_color="off", delta_arrow="off", border=True)  # fmt: skip
    y = rep["expected_yield"]
    m[2].metric("Expected re-download", f"{y['rows']:,}" if y else "–",
                f"of {y['of']:,} rows ({y['lo']:,}–{y['hi']:,})" if y else None,
                delta_color="off", delta_arrow="off", border=True)  # fmt: skip
    m[3].metric("Bytes changed", f"{rep['bytes_changed']:,}",
                f"of {rep['bytes_compared']:,} compared", delta_color="off",
                delta_arrow="off", border=True)  # fmt: skip
    nf = rep["not_fetched"]
    on = f"the Selection `{json.dumps(rep['selection'])}`" if rep["selection"] else "all rows"
    st.caption(
        f"Checked {rep['finished_at']} in {rep['seconds']:.1f} s on {on}"
        f"; not fetched: {nf['not_http']} not http(s), {nf['refused']} refused by the host "
        "guard; outcomes: " + ", ".join(f"{k} {v}" for k, v in rep["outcomes"].items()) + ".",
        help=rep["method"],
    )
    if rep["domains"]:
        st.plotly_chart(domain_figure(rep["domains"]), key="linkrot-domains",
                        config={"displayModeBar": False})  # fmt: skip
    if rep["worst_domains"]:
        st.markdown(f"**Worst domains** (≥ {linkrot.WORST_MIN_CHECKED} URLs checked, by the "
                    "top of their interval)")  # fmt: skip
        worst = pd.DataFrame(rep["worst_domains"])[
            ["domain", "alive", "checked", "share", "lo", "hi", "rows"]]
        worst[["share", "lo", "hi"]] *= 100
        st.dataframe(worst.rename(columns={"share": "alive %", "lo": "95% CI low",
                                           "hi": "95% CI high"}), hide_index=True,
                     column_config={c: st.column_config.NumberColumn(format="%.0f%%")
                                    for c in ("alive %", "95% CI low", "95% CI high")})  # fmt: skip
    st.caption(f"Rerun on the current Selection: `{cmd}`")
    if ALIVE_COL in cols and ALIVE_COL not in sel.values:
        st.button("Keep only alive rows", icon=":material/link:", key="audits-keep-alive",
                  on_click=_set, args=(name, keep_alive(sel)),
                  help="Adds `link_alive` = true to the Selection: the checked rows that "
                       "answered with an image (rows not sampled are left out too)")  # fmt: skip


def blocklist_view(name: str, con: duckdb.DuckDBPyConnection, sel: Selection) -> None:
    recs = blocklists.lists(name)
    if not recs:
        st.markdown(style.empty_html(
            "block", "Blocklists: none applied",
            "Apply a hash list or an opt-out list; every matching row is flagged and logged:"
            f"<br><code>python -m backend blocklist {style.esc(name)} --add FILE --kind "
            f"{'|'.join(blocklists.KINDS)}</code>"), unsafe_allow_html=True)  # fmt: skip
        return
    keys = ("list", "kind", "entries", "rows", "entries_matched", "threshold",
            "rows_without_hash", "at", "who")  # rows without a hash: not checked, not clean
    shown = [{k: r.get(k) for k in keys if k != "threshold" or any("threshold" in x for x in recs)}
             for r in recs]  # fmt: skip
    st.dataframe(pd.DataFrame(shown), hide_index=True)
    flagged = blocklists.flagged(name).column("row_id").to_numpy()
    ids = pd.unique(flagged)  # the lists' own tables: true even if the subset was deleted

    def count() -> int:
        return blocklists.count_in(con, sel, ids.tolist())

    listed = hashlib.sha1(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()
    in_sel = memo.memo(name, "blocklisted-in-selection", f"{memo.selection_key(sel)}|{listed}",
                       count)  # a rerun that changed nothing queries no rows  # fmt: skip
    excluded = blocklists.SUBSET in sel.subsets_none
    st.caption(f"{len(ids):,} row(s) on a list (subset `{blocklists.SUBSET}`); "
               f"{in_sel:,} of them are in the current Selection"
               + (" — listed rows are excluded." if excluded else "."))  # fmt: skip
    if not excluded:
        st.button("Exclude listed rows", icon=":material/block:", key="audits-exclude",
                  on_click=_set, args=(name, exclude_listed(sel)),
                  help=f"Adds “not in subset {blocklists.SUBSET}” to the Selection: every page "
                       "and every export leaves them out")  # fmt: skip
    log = blocklists.read_log(name)
    with st.expander(f"Removal log ({len(log)} entries, `{blocklists.LOG}`)"):
        st.dataframe(pd.DataFrame([{k: e.get(k) for k in ("at", "who", "action", "list",
                                                          "kind", "rows", "rows_blocklisted",
                                                          "file_sha256")} for e in log]),
                     hide_index=True)  # fmt: skip


def draw(name: str, con: duckdb.DuckDBPyConnection, sel: Selection) -> None:
    """Both audits, as two tabs under one heading."""
    st.subheader("Pool audits")
    cols = columns(con)
    tab_rot, tab_lists = st.tabs(["Link rot", "Blocklists & opt-outs"], key=K_TAB)
    with tab_rot:
        linkrot_view(name, sel, cols)
    with tab_lists:
        blocklist_view(name, con, sel)
