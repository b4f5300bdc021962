"""The Mixtures page's drawing: a weight per map cluster (sliders, "flatten", "match a saved
subset", "as now"), the cluster and concept distributions the mixture gives, then a seeded
draw saved as a subset or the per-row sampling-weight column (:mod:`backend.mixture`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import mixture, paths, subsets
from backend.map_files import load_clusters
from backend.selection import Selection
from ui import fmt, impact

WEIGHTS = "ts.mixture.weights"  # cluster -> weight (canonical; the sliders seed from it)
SLIDER = "w.mixture.c::"


def _set_weights(w: dict[int, float]) -> None:
    st.session_state[WEIGHTS] = {int(c): float(v) for c, v in w.items()}
    for k in [k for k in st.session_state if str(k).startswith(SLIDER)]:
        del st.session_state[k]


def figure(counts: dict[int, int], w: dict[int, float], labels: dict[int, str]) -> go.Figure:
    total = sum(counts.values())
    xs = [f"{labels.get(c) or 'cluster'} (#{c})" for c in counts]
    fig = go.Figure([
        go.Bar(x=xs, y=[n / total for n in counts.values()], name="now", marker_color="#9aa5b1"),
        go.Bar(x=xs, y=[w.get(c, 0.0) for c in counts], name="mixture", marker_color="#4f46e5"),
    ])  # fmt: skip
    fig.update_layout(barmode="group", height=300, yaxis_tickformat=".0%",
                      margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      legend={"orientation": "h", "y": 1.1})  # fmt: skip
    return fig


def _sliders(counts: dict[int, int], labels: dict[int, str]) -> dict[int, float]:
    weights = st.session_state.setdefault(WEIGHTS, {})
    top = max(counts.values())
    cols = st.columns(4)
    out = {}
    for i, c in enumerate(counts):
        key = f"{SLIDER}{c}"
        if key not in st.session_state:  # until set: as now (the draw changes nothing)
            st.session_state[key] = round(float(weights.get(c, counts[c] / top)), 2)
        out[c] = cols[i % 4].slider(f"{labels.get(c) or 'cluster'} (#{c}) · {counts[c]:,} rows",
                                    0.0, 5.0, step=0.01, key=key)  # fmt: skip
    st.session_state[WEIGHTS] = dict(out)
    return out


def draw(name: str, con, sel: Selection) -> None:
    from ui import memo

    root = paths.workspace()
    try:  # read once per build and Selection: a slider move queries no rows
        p = memo.memo(name, "mixture-pool", memo.selection_key(sel),
                      lambda: mixture.pool(con, sel, name))  # fmt: skip
    except mixture.MixtureError as e:
        st.info(str(e), icon=":material/info:")
        return
    counts = p.counts()
    if not counts:
        st.info("No row of the selection has a cluster.", icon=":material/info:")
        return
    labels = {int(c["cluster"]): str(c.get("label") or "") for c in load_clusters(name, root)}
    _weight_buttons(name, con, counts, root)
    raw = _sliders(counts, labels)
    try:
        w = mixture.normalise(raw, counts)
    except mixture.MixtureError as e:
        st.warning(str(e), icon=":material/warning:")
        return
    c1, c2, c3 = st.columns(3)
    rows = int(c1.number_input("Rows to draw", 1, 10_000_000, len(p.row_ids), key="w.mixture.n"))
    seed = int(c2.number_input("Seed", 0, 2**31 - 1, 0, key="w.mixture.seed"))
    replace = c3.toggle("With replacement", key="w.mixture.replace",
                        help="Without: a cluster gives at most all its rows")  # fmt: skip
    target = mixture.allocate(w, rows)
    st.plotly_chart(figure(counts, w, labels), key="mixture-bars")
    table = pd.DataFrame([{"cluster": f"{labels.get(c) or 'cluster'} (#{c})", "rows": n,
                           "share now": n / len(p.row_ids), "weight": w.get(c, 0.0),
                           "rows drawn": min(target.get(c, 0), n) if not replace
                           else target.get(c, 0)} for c, n in counts.items()])  # fmt: skip
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "share now": st.column_config.NumberColumn(format="percent"),
        "weight": st.column_config.NumberColumn(format="percent")})  # fmt: skip
    drawn = int(table["rows drawn"].sum())
    st.caption(f"{drawn:,} rows drawn of {rows:,} asked" + (
        " (without replacement a cluster gives at most all its rows)" if drawn < rows else "")
        + (f"; {fmt.num(p.without_cluster)} rows of the selection have no cluster and take no "
           "part" if p.without_cluster else "") + ".")  # fmt: skip
    got = impact.inputs(name)
    if got["hits"] is not None:
        prev = pd.DataFrame(mixture.concept_preview(p, w, rows, got["hits"])[:30])
        st.caption(f"Concepts (vocabulary “{got['vocab']}”): rows now, and expected in a draw of "
                   f"{rows:,} at these weights (each row's probability × rows)")
        st.dataframe(prev, hide_index=True, width="stretch", height=240, column_config={
            "expected": st.column_config.NumberColumn(format="%.1f")})  # fmt: skip
    _save(name, p, w, rows, seed, replace, sel)


def _weight_buttons(name: str, con, counts: dict[int, int], root: Path) -> None:
    """Flatten, As now and Match a saved subset's mixture: each sets every cluster's weight."""
    saved = [s.name for s in subsets.list_subsets(name, root)]
    b1, b2, b3, b4 = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
    if b1.button("Flatten", icon=":material/equal:", width="stretch",
                 help="Equal weight for every cluster"):  # fmt: skip
        _set_weights({c: 1.0 for c in counts})
    if b2.button("As now", icon=":material/restart_alt:", width="stretch",
                 help="Each cluster's share of the selection"):  # fmt: skip
        _set_weights({c: round(n / max(counts.values()), 2) for c, n in counts.items()})
    other = b3.selectbox("Match a subset's mixture", ["—", *saved], key="w.mixture.match")
    if b4.button("Match", width="stretch", disabled=other == "—"):
        o = subsets.resolve(name, Selection(subsets_all=[other]), root)
        sh = mixture.shares(mixture.pool(con, o, name).counts())
        _set_weights({c: round(sh.get(c, 0.0) / max(sh.values()), 2) for c in counts})


def _save(name, p, w, rows, seed, replace, sel) -> None:
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    label = c1.text_input("Subset / weights name", value=f"mix-s{seed}", key="w.mixture.name")
    if c2.button("Save draw as subset", icon=":material/bookmark_add:", width="stretch"):
        try:
            s = mixture.resample(p, w, rows, seed, replace)
            rec = mixture.save(name, label, s, sel, paths.workspace())
        except (subsets.SubsetError, ValueError) as e:
            st.error(str(e), icon=":material/error:")
        else:
            st.success(f"Saved subset “{label}”: {rec['draws']:,} draws, {rec['count']:,} "
                       "distinct rows; its export manifest records the mixture.",
                       icon=":material/check:")  # fmt: skip
            for note in s.notes:
                st.caption(note)
    if c3.button("Write weight column", icon=":material/scale:", width="stretch"):
        try:
            path = mixture.write_weights(name, label, p, w, sel, paths.workspace())
        except ValueError as e:
            st.error(str(e), icon=":material/error:")
        else:
            st.success(f"Wrote `mixtures/{path.name}` (row_id, cluster, weight; mean 1).",
                       icon=":material/check:")  # fmt: skip
