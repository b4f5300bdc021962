"""The Concepts page's zero-shot trend tab: upload per-class accuracies, see them against the
concepts' frequency in this dataset with the log-linear fit, and what a target accuracy needs
(:mod:`backend.concepts.trend`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import concepts as bc
from backend.concepts import trend
from ui import uploads

ACC_TYPES = ["csv", "txt"]


def figure(rows: list[dict], f: dict) -> go.Figure:
    seen = [r for r in rows if r["count"]]
    x = np.array([r["count"] for r in seen], dtype=float)
    fig = go.Figure(go.Scatter(
        x=x, y=[r["accuracy"] for r in seen], mode="markers", name="classes",
        text=[r["concept"] for r in seen], marker={"size": 7, "color": "#4f46e5"},
        hovertemplate="%{text}<br>%{x:,} rows · accuracy %{y:.1%}<extra></extra>"))  # fmt: skip
    line = np.array([x.min(), x.max()])
    fig.add_trace(go.Scatter(
        x=line, y=f["intercept"] + f["slope"] * np.log10(line), mode="lines",
        name=f"fit: {f['slope']:+.3f} per 10× rows (r² {f['r2']:.2f})",
        line={"color": "#c0462f", "dash": "dash"}))  # fmt: skip
    fig.update_xaxes(type="log", title="rows naming the class in this dataset (log)")
    fig.update_yaxes(title="zero-shot accuracy", tickformat=".0%")
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      legend={"orientation": "h", "y": 1.1})  # fmt: skip
    return fig


def tab(res: bc.Result) -> None:
    """Upload ``concept,accuracy``; plot, fit, and the frequency each class needs."""
    st.caption("Per-class zero-shot accuracy of a model trained on this data against each "
               "class's frequency here: “No 'Zero-Shot' Without Exponential Data” finds accuracy "
               "grows linearly in log frequency. Upload a CSV `concept,accuracy` (0–1 or %).")
    c1, c2 = st.columns([3, 1])
    up = c1.file_uploader("Per-class accuracies", type=ACC_TYPES, key="w.trend.up",
                          max_upload_size=uploads.VOCAB_MB)  # fmt: skip
    target = c2.number_input("Target accuracy", 0.0, 1.0, 0.8, 0.05, key="w.trend.target",
                             format="%.2f")  # fmt: skip
    if up is None:
        return
    data = up.getvalue()
    why = uploads.refusal(up.name, data, ACC_TYPES, uploads.VOCAB_MB)
    try:
        if why:
            raise trend.TrendError(why)
        accs, skipped, note = trend.parse_accuracies(data)
        rows = trend.join_counts(accs, res.count_of())
        f = trend.fit(np.array([r["count"] or 0 for r in rows]),
                      np.array([r["accuracy"] for r in rows]))  # fmt: skip
    except trend.TrendError as e:
        st.error(str(e), icon=":material/error:")
        return
    for line in [note] if note else []:
        st.caption(line)
    if skipped:
        st.warning(f"{len(skipped)} row(s) skipped: " + "; ".join(
            f"line {s['line']}: {s['reason']}" for s in skipped[:5]), icon=":material/warning:")
    missing = [r["concept"] for r in rows if r["count"] is None]
    unseen = [r["concept"] for r in rows if r["count"] == 0]
    st.plotly_chart(figure(rows, f), key="trend-plot")
    pooled = trend.pooled_need(f, float(target))
    st.markdown(
        f"Fitted on **{f['classes']}** classes (vocabulary “{res.vocab.name}”, caption counts): "
        f"accuracy {f['slope']:+.3f} per tenfold rows."
        + (f" The fitted line reaches {target:.0%} at **{pooled:,.0f}** rows." if pooled else
           " The slope is not positive: on these numbers more rows do not raise accuracy."))
    if missing or unseen:
        st.caption(f"Not fitted — not in the vocabulary: {', '.join(missing[:10]) or 'none'}; "
                   f"count 0 (no logarithm): {', '.join(unseen[:10]) or 'none'}.")
    need = pd.DataFrame(trend.needs(rows, f, float(target)),
                        columns=["concept", "accuracy", "count", "needed", "factor", "add"])
    need[["needed", "add"]] = need[["needed", "add"]].astype(float).round()  # whole rows
    st.caption(f"Rows each class would need for {target:.0%}, along the fitted slope through its "
               "own point; furthest first.")
    st.dataframe(need, hide_index=True, width="stretch", height=300, column_config={
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "needed": st.column_config.NumberColumn("rows needed", format="localized"),
        "factor": st.column_config.NumberColumn("× now", format="%.1f×"),
        "add": st.column_config.NumberColumn("rows to add", format="localized")})
