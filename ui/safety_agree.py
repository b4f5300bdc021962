"""The Safety page's "Shipped vs computed" view: a score the pool shipped beside the same score
computed here (``nsfw`` from LAION's ``punsafe`` and ``nsfw_computed`` from open_nsfw), with
their agreement over the selection: correlations, flags at the threshold, a scatter plot and
the rows where they disagree most."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from backend import agreement, safety_scores
from backend.browse import columns
from backend.scores import pairs
from backend.selection import Selection
from ui import cards, safety_view

K_PAIR = "w.safety.pair"


def figure(xs: list[float], ys: list[float], x_title: str, y_title: str, t: float) -> go.Figure:
    """Shipped (x) against computed (y), the diagonal, and the threshold on both axes."""
    lo = min([0.0, *xs, *ys]) if xs else 0.0
    hi = max([1.0, *xs, *ys]) if xs else 1.0
    fig = go.Figure(go.Scattergl(
        x=xs, y=ys, mode="markers", marker=dict(size=5, opacity=0.55, color="#4f46e5"),
        hovertemplate="shipped %{x:.3f}<br>computed %{y:.3f}<extra></extra>",
    ))  # fmt: skip
    fig.add_shape(type="line", x0=lo, y0=lo, x1=hi, y1=hi, line=dict(color="#999", dash="dot"))
    fig.add_vline(x=t, line_dash="dash", line_color="#c0462f")
    fig.add_hline(y=t, line_dash="dash", line_color="#c0462f")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=10, b=10), showlegend=False,
                      xaxis_title=x_title, yaxis_title=y_title,
                      plot_bgcolor="rgba(0,0,0,0)")  # fmt: skip
    return fig


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def view(name: str, con, sel: Selection, cat: dict[str, dict]) -> None:
    found = pairs(cat)
    if not found:
        st.info("No score is both shipped and computed here: run `python -m backend score "
                f"{name} --recompute` to compute the shipped ones too.",
                icon=":material/info:")  # fmt: skip
        return
    by_shipped = dict(found)
    if st.session_state.get(K_PAIR) not in by_shipped:
        st.session_state[K_PAIR] = found[0][0]
    a = st.segmented_control("Score", list(by_shipped), key=K_PAIR, required=True)
    a = a if a in by_shipped else found[0][0]
    b = by_shipped[a]
    spec = safety_scores.by_column(a)
    t = safety_view.threshold(spec) if spec else 0.5
    where, params = sel.where(columns(con))
    got = agreement.summary(con, where, params, a, b, t)
    st.caption(f"x: `{a}` {cat[a]['label']} · y: `{b}` {cat[b]['label']}. Rows of the "
               f"selection with both values; flags at the {a} threshold {t:g} (set it in "
               "Thresholds).")  # fmt: skip
    if not got["rows"]:
        st.info("No row of the selection has both values.", icon=":material/info:")
        return
    m = st.columns(4)
    m[0].metric("Rows with both", f"{got['rows']:,}", border=True)
    m[1].metric("Pearson r", _fmt(got["pearson"]), border=True,
                help="linear correlation of the two scores")  # fmt: skip
    m[2].metric("Spearman ρ", _fmt(got["spearman"]), border=True,
                help="rank correlation: do they order the rows alike?")  # fmt: skip
    m[3].metric("Agree on the flag", "–" if got["agree"] is None else f"{got['agree']:.1%}",
                border=True, help=f"both above {t:g} or both at or below it")  # fmt: skip
    chart, table = st.columns([3, 2], gap="medium")
    with chart:
        xs, ys = agreement.scatter(con, where, params, a, b)
        st.plotly_chart(figure(xs, ys, f"{a} (shipped)", f"{b} (computed here)", t),
                        key="safety-agree", config={"displayModeBar": False})  # fmt: skip
        if len(xs) < got["rows"]:
            st.caption(f"a sample of {len(xs):,} of the {got['rows']:,} rows")
    with table:
        st.markdown(f"**Flags at {t:g}**")
        st.dataframe(
            {"": ["computed flags", "computed does not"],
             "shipped flags": [got["both"], got["only_a"]],
             "shipped does not": [got["only_b"], got["neither"]]},
            hide_index=True, width="stretch", key="safety-agree-table",
        )  # fmt: skip
    st.markdown("##### :material/compare_arrows: Where they disagree most")
    rows = agreement.disagreement_cards(con, where, params, a, b)
    for r in rows:
        r["caption"] = f"[{a} {r['shipped']:.2f} vs computed {r['computed']:.2f}] {r['caption']}"
    blur = safety_scores.blurred(rows, safety_view.nsfw_threshold())
    cards.grid(name, rows, 6, score_label="gap", blurred=blur, ranked=False, key="agree-grid")
