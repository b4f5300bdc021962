"""The Safety page's views that act on the shared Selection: a score's threshold (histogram,
margin gallery, "keep"), score rates per cluster and concept, and the duplicate groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from backend import not_run, paths, safety_dups, safety_rates, safety_scores
from backend.browse import columns
from backend.map_files import load_clusters
from backend.safety_scores import Score
from backend.selection import Selection
from ui import cards, safety_measured, state, style

THRESHOLDS = "ts.safety.thresholds"  # column -> threshold (canonical; the sliders seed from it)
K_SCORE = "w.safety.score"
K_KIND = "w.safety.kind"
K_GROUPS_PAGE = "w.safety.groups_page"
GROUPS_PER_PAGE = 10
KEPT, REMOVED = "#2f7d5b", "#c0462f"
REP_HTML = '<b style="color:#4f46e5">★ representative</b>'
K_LOG = "w.safety.log"


def catalog(name: str) -> dict[str, dict]:
    """The dataset's score columns with their provenance (:func:`backend.scores.catalog`)."""
    return state.summary(name).get("scores") or {}


def threshold_key(col: str) -> str:
    return f"w.safety.t::{col}"


def thresholds() -> dict[str, float]:
    return st.session_state.setdefault(THRESHOLDS, {})


def threshold(score: Score) -> float:
    """The current threshold of ``score`` (its default until a slider moved)."""
    return float(thresholds().get(score.column, score.default))


def nsfw_threshold() -> float:
    spec = safety_scores.by_column(safety_scores.NSFW)
    return threshold(spec) if spec else 0.5


def _set(name: str, sel: Selection) -> None:
    state.set_selection(name, sel)
    state.clear_filter_widgets()  # the sidebar re-seeds from the Selection


def _keep(name: str, score: Score, t: float) -> None:
    """Callback of "Keep rows below/above threshold": the range joins the shared Selection."""
    _set(name, safety_scores.keep(state.selection(name), score, t))


# -- thresholds ----------------------------------------------------------------------------------


def figure(
    bins: list[tuple[float, float, int]], score: Score, t: float, log: bool = False
) -> go.Figure:
    """Bars of the histogram, coloured by the side of the threshold their middle is on."""
    mids = [(a + b) / 2 for a, b, _ in bins]
    kept = [(m <= t) if score.keep_below else (m >= t) for m in mids]
    fig = go.Figure(go.Bar(
        x=mids, y=[n for _, _, n in bins], width=[b - a for a, b, _ in bins],
        marker_color=[KEPT if k else REMOVED for k in kept],
        hovertemplate=f"{score.column} %{{x:.3g}}<br>%{{y:,}} rows<extra></extra>",
    ))  # fmt: skip
    fig.add_vline(x=t, line_dash="dash", line_color="#333", annotation_text=f"{t:g}",
                  annotation_position="top")  # fmt: skip
    fig.update_layout(
        height=260, margin=dict(l=10, r=10, t=24, b=10), bargap=0.05, showlegend=False,
        xaxis_title=score.column, yaxis_title="rows", plot_bgcolor="rgba(0,0,0,0)",
        yaxis_type="log" if log else "linear",
    )  # fmt: skip
    return fig


def threshold_view(name: str, con, sel: Selection) -> None:
    scores = safety_scores.available(columns(con), catalog(name))
    if not scores:
        st.info(f"No score columns yet: run `python -m backend score {name}`.",
                icon=":material/info:")  # fmt: skip
        return
    by_col = {s.column: s for s in scores}
    if st.session_state.get(K_SCORE) not in by_col:
        st.session_state[K_SCORE] = scores[0].column
    col = st.segmented_control("Score", list(by_col), key=K_SCORE, required=True,
                               format_func=lambda c: by_col[c].label)  # fmt: skip
    score = by_col.get(col, scores[0])
    rng = state.facts(name)["ranges"].get(score.column, (None, None))
    if rng[0] is None:
        st.info(f"`{score.column}` has no values in this dataset.", icon=":material/info:")
        return
    lo, hi, step = safety_scores.slider_bounds(float(rng[0]), float(rng[1]), score.default)
    key = threshold_key(score.column)
    if key not in st.session_state:
        st.session_state[key] = min(max(threshold(score), lo), hi)
    t = float(st.slider(
        f"Threshold on `{score.column}` — {score.help}", lo, hi, step=step, key=key,
        format="%.3f" if hi <= 1 else "%g",
    ))  # fmt: skip
    thresholds()[score.column] = t
    if measured := safety_measured.score_line(score.column, t):
        st.caption(measured)
    total, gone, nulls = safety_scores.removed(con, sel, score, t)
    chart, side = st.columns([3, 1], gap="medium")
    with chart:
        bins = safety_scores.histogram(con, sel, score, lo, hi)
        st.plotly_chart(figure(bins, score, t, bool(st.session_state.get(K_LOG))),
                        key="safety-hist",
                        config={"displayModeBar": False})  # fmt: skip
    with side:
        _threshold_side(name, score, t, (total, gone, nulls))
    shown = _margin_grids(name, con, sel, score, t)
    _impact(name, con, sel, score, t, shown)


def _threshold_side(name: str, score: Score, t: float, counts: tuple[int, int, int]) -> None:
    """Beside the histogram: rows removed, the "Keep rows" button, the log toggle, NULL rows."""
    total, gone, nulls = counts
    share = f"{gone / total:.1%}" if total else "–"
    st.metric("Removed by the threshold", f"{gone:,}", f"{share} of {total:,}",
              delta_color="off", delta_arrow="off", border=True,
              help=f"Rows of the selection with {score.flag_label(t)}"
              + (f", plus {nulls:,} without a value" if nulls else ""))  # fmt: skip
    word = "below" if score.keep_below else "above"
    st.button(
        f"Keep rows {word} threshold", key="safety-keep", type="primary",
        icon=":material/filter_alt:", width="stretch", on_click=_keep,
        args=(name, score, t),
        help=f"Adds {score.column} {score.op} {t:g} to the filters of every page (Browse, "
        "Map, Export…)",
    )  # fmt: skip
    st.toggle("Log scale", key=K_LOG, help="Counts on a log axis: shows the thin tail")
    if nulls:
        st.caption(f"{nulls:,} rows have no `{score.column}` (unreadable image): a kept "
                   "range drops them too.")  # fmt: skip


def _margin_grids(name: str, con, sel: Selection, score: Score, t: float) -> set[int]:
    """The rows just either side of the threshold, as two grids; returns their row ids."""
    kept, dropped = safety_scores.margin(con, sel, score, t)
    blur = safety_scores.blurred(kept + dropped, nsfw_threshold())
    above, below = ("above", "below") if score.keep_below else ("below", "above")
    for title, rows, icon, side in (
        (f"Removed · just {above} {t:g}", dropped, "remove", "removed"),
        (f"Kept · just {below} {t:g}", kept, "check", "kept"),
    ):
        st.markdown(f"##### :material/{icon}: {title}")
        if rows:
            cards.grid(name, rows, safety_scores.MARGIN, score_label=score.column,
                       blurred=blur, ranked=False, key=f"tsgrid-{side}")  # fmt: skip
        else:
            st.caption("No row of the selection on this side.")
    return {int(r["row_id"]) for r in kept + dropped}


def _impact(name: str, con, sel: Selection, score: Score, t: float, shown: set[int]) -> None:
    """What the threshold removes, group by group (:mod:`ui.impact`), as the slider moves."""
    from ui import impact

    st.markdown("##### :material/balance: Impact of this threshold")
    if not st.toggle("Show the impact by concept, cluster, domain and score", value=True,
                     key="w.safety.impact"):  # fmt: skip
        return
    impact.draw(name, con, sel, safety_scores.keep(sel, score, t), key="safety-impact",
                what=f"the selection with `{score.column} {score.op} {t:g}`",
                against="the selection without it", shown=shown,
                omit=(score.column,))  # fmt: skip


# -- rates per cluster and concept ---------------------------------------------------------------


def _labels(name: str) -> dict[int, str]:
    return {int(c["cluster"]): str(c.get("label") or "")
            for c in load_clusters(name, paths.workspace())}  # fmt: skip


K_VOCAB = "w.safety.vocab"


@st.cache_data(max_entries=8, show_spinner="Reading the concept hits…")
def _hits(name: str, vocab: str, root: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray, list]:
    """(row ids, concept ids, concept names) of a stored concept result set, per version."""
    from backend.concepts.run import load

    result = load(name, vocab, Path(root))
    return result.rows, result.ids, list(result.vocab.concepts)


def concept_hits(name: str) -> tuple[tuple[np.ndarray, np.ndarray, list] | None, str | None]:
    """The hits of the vocabulary picked here (the first one by default), or a note why none."""
    from backend.concepts.run import concepts_dir, list_vocabs

    root = paths.workspace()
    vocabs = list_vocabs(name, root)
    if not vocabs:
        return None, f"no concepts counted (`python -m backend concepts {name} --vocab …`)"
    if st.session_state.get(K_VOCAB) not in vocabs:
        st.session_state[K_VOCAB] = vocabs[0]
    if len(vocabs) > 1:
        st.selectbox("Concept vocabulary", vocabs, key=K_VOCAB, width=320)
    vocab = st.session_state[K_VOCAB]
    summary = concepts_dir(name, root) / vocab / "summary.json"
    try:
        return _hits(name, vocab, str(root), summary.stat().st_mtime_ns), None
    except (OSError, ValueError, KeyError) as e:
        return None, f"the concept counts of {vocab!r} cannot be read: {e}"


def rates_view(name: str, con, sel: Selection) -> None:
    cols = columns(con)
    scores = safety_scores.available(cols, catalog(name))
    if not scores:
        st.info(f"No score columns yet: run `python -m backend score {name}`.",
                icon=":material/info:")  # fmt: skip
        return
    notes = []
    if safety_rates.CLUSTER not in cols:
        notes.append(f"no clusters (`python -m backend map {name}`)")
    hits, why = concept_hits(name)
    if hits is None and not safety_rates.concept_columns(cols):
        notes.append(why or "no concepts")
    if safety_rates.CLUSTER not in cols and hits is None \
            and not safety_rates.concept_columns(cols) \
            and safety_rates.DOMAIN not in cols and safety_rates.LANGUAGE not in cols:  # fmt: skip
        st.info("Nothing to group by yet: " + "; ".join(notes) + ".", icon=":material/info:")
        return
    pairs = [(s, threshold(s)) for s in scores]
    df = safety_rates.rates(con, sel, pairs, _labels(name), hits)
    st.caption(
        "Share of each group's rows (in the selection) that each score's current threshold "
        "removes; set thresholds in the Thresholds view. Click a header to sort."
        + (f" Domains: the {safety_rates.TOP_DOMAINS} biggest of the selection (the URL's "
           "registered domain)." if safety_rates.DOMAIN in cols else "")
        + (" Languages: each caption's, by fastText lid.176." if safety_rates.LANGUAGE in cols
           else "")
        + (f" Skipped: {'; '.join(notes)}." if notes else "")
    )
    rate_cols = [c for c in df.columns if c not in ("kind", "group", "rows")]
    config = {c: st.column_config.ProgressColumn(c, format="percent", min_value=0.0,
                                                 max_value=1.0) for c in rate_cols}  # fmt: skip
    config["rows"] = st.column_config.NumberColumn("rows", format="localized")
    st.dataframe(df, hide_index=True, width="stretch", column_config=config, key="safety-rates",
                 height=min(38 + 35 * len(df), 560))  # fmt: skip


# -- duplicates ----------------------------------------------------------------------------------


def _on_keep_one(name: str) -> None:
    on = bool(st.session_state.get("w.safety.keep_one"))
    _set(name, safety_dups.keep_one(state.selection(name), on))


def dedup_help(name: str) -> None:
    st.markdown(
        style.empty_html(
            "content_copy", "No duplicate groups yet",
            f"Find them, then reload this page:<br><code>python -m backend dedup "
            f"{style.esc(name)}</code> (semantic groups need image embeddings: "
            f"<code>python -m backend embed {style.esc(name)}</code> first)",
        ),
        unsafe_allow_html=True,
    )  # fmt: skip


def not_run_box(info: dict[str, str]) -> None:
    """A skipped step: "not run", why, and the command that runs it (never "none found")."""
    st.warning(f"**Not run: {info['what']}.** {info['why']}", icon=":material/block:")
    st.code(info["command"], language="bash")


def dups_view(name: str, con, sel: Selection) -> None:
    kinds = safety_dups.available(columns(con))
    if not kinds:
        dedup_help(name)
        return
    stats = safety_dups.stats(con, sel, kinds)
    skipped = not_run.dedup_skipped(name, paths.workspace())  # an all-NULL column is not "0"
    by_col = {k.column: k for k in kinds}
    if st.session_state.get(K_KIND) not in by_col:
        st.session_state[K_KIND] = kinds[0].column

    def label(c: str) -> str:
        s = stats["kinds"][c]
        return f"{by_col[c].label} · " + ("not run" if c in skipped else f"{s['groups']:,}")

    head, toggle = st.columns([3, 2], vertical_alignment="bottom")
    with head:
        col = st.segmented_control("Duplicates by", list(by_col), key=K_KIND, required=True,
                                   format_func=label, on_change=lambda: st.session_state.pop(
                                       K_GROUPS_PAGE, None))  # fmt: skip
    kind = by_col.get(col, kinds[0])
    with toggle:
        if stats["dropped"] is not None:
            _keep_one_toggle(name, sel, stats)
    if kind.column in skipped:
        not_run_box(skipped[kind.column])
        return
    s = stats["kinds"][kind.column]
    st.caption(f"{kind.help}. {s['groups']:,} groups with {s['rows']:,} rows in the selection, "
               "biggest first; ★ marks the group's representative (its lowest row).")  # fmt: skip
    if not s["groups"]:
        st.success("No duplicate group of this kind in the selection.", icon=":material/check:")
        return
    _dup_groups(name, con, sel, kind, s["groups"])


def _keep_one_toggle(name: str, sel: Selection, stats: dict) -> None:
    """The "Keep one per group" switch and how many rows it drops."""
    st.session_state["w.safety.keep_one"] = safety_dups.keeps_one(sel)
    st.toggle(
        "Keep one per group", key="w.safety.keep_one", on_change=_on_keep_one,
        args=(name,),
        help="Adds is_dup_rep = TRUE to the filters of every page: one image of each "
        "exact / pHash / semantic group (its lowest row) stays.",
    )  # fmt: skip
    st.caption(
        f"drops {stats['dropped']:,} of {stats['total']:,} rows"
        if not safety_dups.keeps_one(sel)
        else "on: duplicates beyond the first of each group are filtered out"
    )


def _dup_groups(name: str, con, sel: Selection, kind: safety_dups.Kind, n_groups: int) -> None:
    """One page of ``kind``'s groups, biggest first, each as a row of cards."""
    pages = max(1, -(-n_groups // GROUPS_PER_PAGE))
    page_no = 1
    if pages > 1:
        page_no = int(st.number_input("Page", 1, pages, key=K_GROUPS_PAGE, width=160))
    groups = safety_dups.groups(con, sel, kind, offset=(page_no - 1) * GROUPS_PER_PAGE,
                                limit=GROUPS_PER_PAGE)  # fmt: skip
    store, mtime = str(state.store_file(name)), state.store_mtime(name)
    similar = state.has_image_vectors(name)
    shown = [r for g in groups for r in g["rows"]]
    blur = safety_scores.blurred(shown, nsfw_threshold())
    if blur:
        st.html(cards.BLUR_CSS)
    st.session_state[cards.PAGE_IDS] = [int(r["row_id"]) for r in shown]
    for g in groups:
        with st.container(border=True, key=f"dupgroup-{g['group']}"):
            more = g["size"] - len(g["rows"])
            extra = f" · showing {len(g['rows'])}, {more} more" if more > 0 else ""
            st.markdown(f"**{g['size']} rows** · group {g['group']}{extra}")
            cols = st.columns(6, gap="small")
            for c, row in zip(cols, g["rows"], strict=False):
                with c:
                    rep = int(row["row_id"]) == g["group"]
                    st.markdown(
                        f'<div class="ts-meta">{REP_HTML if rep else "duplicate"}'
                        f" · row {int(row['row_id'])}</div>", unsafe_allow_html=True)  # fmt: skip
                    cards.card(name, row, store, mtime, similar, blurred=int(row["row_id"]) in blur)
    cards.maybe_open_detail(name)
