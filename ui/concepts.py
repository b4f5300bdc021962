"""The Concepts page's drawing: run a vocabulary, the long tail (rank–frequency on log–log axes
with its slope), a sortable table, a concept's examples (→ a Selection filter), a coverage check
of a class list, and the MetaCLIP balancing preview with "Save as subset"."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from backend import concepts as bc
from backend import paths, provenance
from backend.concepts.parts import example_rows
from backend.concepts.run import concepts_dir
from backend.selection import Selection
from ui import cards, fmt, shared, state, style, uploads

W_VOCAB = "w.concepts.vocab"
FLASH = "ts.concepts.flash"
BUILTIN = ("imagenet", "mined")


@st.cache_resource(max_entries=16, show_spinner=False)
def _load(name: str, vocab: str, root: str, mtime_ns: int) -> bc.Result:
    return bc.load(name, vocab, Path(root))


def load(name: str, vocab: str) -> bc.Result:
    """A stored result set, read once per version (the summary file's mtime is the key)."""
    root = paths.workspace()
    f = concepts_dir(name, root) / vocab / "summary.json"
    return _load(name, vocab, str(root), f.stat().st_mtime_ns)


def run_form(name: str, con, expanded: bool) -> None:
    """Count a vocabulary: built in (ImageNet, mined from captions) or an uploaded file."""
    with st.expander("Count a vocabulary", expanded=expanded, icon=":material/add:"):
        kind = st.radio("Vocabulary", ("ImageNet-1k classes", "Mined from captions",
                                       "Upload a file"), horizontal=True, key="w.concepts.kind")
        up = None
        if kind == "Upload a file":
            up = st.file_uploader(
                "One concept a line, concept<TAB>synonym1;synonym2, CSV, or a MetaCLIP "
                "metadata.json list", type=uploads.VOCAB_TYPES, key="w.concepts.up",
                max_upload_size=uploads.VOCAB_MB)
        default = {"ImageNet-1k classes": "imagenet", "Mined from captions": "mined"}.get(
            kind, Path(up.name).stem if up is not None else "uploaded")
        c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
        vname = c1.text_input("Result set name", value=default, key=f"w.concepts.name.{kind}")
        plurals = c2.toggle("Fold plurals", value=True, help="circle also counts circles")
        images = c3.toggle("Image side", value=False, help="tag images too: CLIP zero-shot, "
                           "else the packaged ImageNet model (ImageNet vocabulary only)")
        if not shared.builds_allowed():  # the command these choices make, to run on the server
            vocab = {"ImageNet-1k classes": "imagenet", "Mined from captions": "mined"}.get(
                kind, "FILE")
            flags = (f" --vocab-name {vname}" if vname != default else "") + (
                "" if plurals else " --no-plurals") + (" --images" if images else "")
            shared.cli_instead(f"python -m backend concepts {name} --vocab {vocab}{flags}")
            return
        if not st.button("Count concepts", type="primary", icon=":material/play_arrow:",
                         key="w.concepts.run"):
            return
        vocab = _load_vocab(name, kind, up, vname)
        if vocab is not None:
            _count(name, vocab, vname, plurals, images)


def _load_vocab(name: str, kind: str, up, vname: str) -> bc.Vocabulary | None:
    """The chosen vocabulary named ``vname``; None after showing why it cannot be read."""
    try:
        if kind == "Upload a file":
            if up is None:
                st.warning("Choose a file first.", icon=":material/upload_file:")
                return None
            why = uploads.text_refusal(up.name, up.getvalue())
            if why:
                st.error(why, icon=":material/error:")
                return None
            vocab = bc.parse(vname, up.getvalue(), up.name)
        elif kind == "Mined from captions":
            from backend.concepts.run import mine_store

            vocab = mine_store(name, paths.workspace())
        else:
            vocab = bc.imagenet()
        vocab.name = vname
        paths.check_name(vname)
    except (bc.VocabError, paths.BadName) as e:
        st.error(str(e), icon=":material/error:")
        return None
    return vocab


def _count(name: str, vocab: bc.Vocabulary, vname: str, plurals: bool, images: bool) -> None:
    """Count ``vocab`` over the dataset with a progress bar, then show the new result set."""
    with st.status(f"Counting {len(vocab):,} concepts…", expanded=True) as status:
        bar = st.progress(0.0)

        def progress(part: str, done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"{part}: {done:,} / {total:,}")

        try:
            summary = bc.analyse(name, vocab, paths.workspace(), plurals=plurals,
                                 images=images, progress=progress)
        except Exception as e:  # noqa: BLE001 - shown, not raised: nothing is lost
            status.update(label=f"Counting failed: {e}", state="error")
            return
        status.update(label=f"Counted {len(vocab):,} concepts in {summary['seconds']:.1f} s",
                      state="complete")
    st.session_state[FLASH] = vocab.notes + ([summary["image_note"]] if images else [])
    st.session_state[W_VOCAB] = vname
    st.rerun()


def metrics(res: bc.Result) -> None:
    s = res.summary
    sl = s["caption_slope"]
    sh = s["caption_shares"]
    cols = st.columns(5)
    cols[0].metric("Concepts", fmt.num(s["concepts"]), border=True)
    cols[1].metric("Rows naming one", fmt.pct(s["rows_with_concept"], s["rows"]), border=True,
                   help=f"{s['rows_with_concept']:,} of {s['rows']:,} captions")
    cols[2].metric("Power-law slope", "—" if sl["slope"] is None else f"{sl['slope']:.2f}",
                   border=True, help="count ∝ rank^-slope, least squares on log–log axes over "
                   f"the ranks with count ≥ {sl.get('min_count', 5)} ({sl['ranks_fitted']} ranks)")
    cols[3].metric("Head / torso / tail", " / ".join(
        f"{100 * sh[p]['share']:.0f}%" for p in ("head", "torso", "tail")), border=True,
        help="share of caption hits held by the top 10% of concepts, the next 40%, the rest")
    mis = s.get("misalignment")
    cols[4].metric("Misaligned rows", "—" if not mis or mis["rate"] is None else
                   f"{100 * mis['rate']:.0f}%", border=True,
                   help=misalignment_help(s))  # fmt: skip


def misalignment_help(s: dict) -> str:
    """How the misalignment rate is computed and with which model (or why it was not)."""
    note = str(s.get("image_note") or "")
    mis = s.get("misalignment")
    if not mis:
        return f"Not run: the image side was not counted ({note})."
    how = note.removeprefix("image side: ")
    if note.startswith("image side: CLIP"):
        how += (": each image vector is compared by cosine with the mean text vector of "
                "open_clip's simple ImageNet prompts (“a photo of the small {concept}.”, “art of "
                "the {concept}.” …); the concepts within the margin of "
                "its best count as shown")  # fmt: skip
    model = re.search(r"open_clip:\S+", note)
    demo = provenance.demo_note(model.group(0) if model else None)
    return (f"Of the {mis['rows_named']:,} rows whose image was tagged and whose caption names "
            f"a concept (caption matching), the {mis['rows_misaligned']:,} whose image shows "
            f"none of the concepts its caption names. Image concepts: {how}."
            + (f" Model: {demo}." if demo else ""))  # fmt: skip


def long_tail_figure(res: bc.Result, balanced: np.ndarray | None = None) -> go.Figure:
    """Rank–frequency on log–log axes: caption counts, image counts when there are some, the
    fitted power law, and (``balanced``) the expected counts after MetaCLIP balancing."""
    cap = res.counts["caption_count"].to_numpy()
    order = np.argsort(-cap, kind="stable")
    names = np.asarray(res.vocab.concepts, dtype=object)
    ranked = cap[order]
    keep = ranked > 0
    rank = np.arange(1, len(cap) + 1)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=rank[keep], y=ranked[keep], mode="lines+markers", name="captions",
                             text=names[order][keep], marker={"size": 4},
                             hovertemplate="%{text}<br>rank %{x}: %{y:,}<extra></extra>"))
    if "image_count" in res.counts.column_names:
        img = np.sort(res.counts["image_count"].to_numpy())[::-1]
        fig.add_trace(go.Scatter(x=rank[img > 0], y=img[img > 0], mode="lines", name="images",
                                 line={"dash": "dot"}))
    if balanced is not None:
        b = balanced[order]
        fig.add_trace(go.Scatter(x=rank[keep], y=b[keep], mode="lines", name="balanced "
                                 "(expected)", text=names[order][keep],
                                 line={"width": 3, "color": "#ff7f0e"},
                                 hovertemplate="%{text}<br>rank %{x}: %{y:,.1f}<extra></extra>"))
    sl = res.summary["caption_slope"]
    if sl["slope"] is not None:
        n = sl["ranks_fitted"]
        x = np.array([1, n])
        fig.add_trace(go.Scatter(x=x, y=np.exp(sl["intercept"]) * x ** -sl["slope"],
                                 mode="lines", name=f"fit: slope {sl['slope']:.2f}",
                                 line={"color": "#d62728", "dash": "dash"}))
    fig.update_xaxes(type="log", title="rank")
    fig.update_yaxes(type="log", title="rows")
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      legend={"orientation": "h", "y": 1.08})
    return fig


def table(res: bc.Result):
    """The per-concept table as a DataFrame, most frequent first."""
    df = res.counts.to_pandas()
    df = df.sort_values(["caption_count", "concept_id"], ascending=[False, True])
    df.insert(0, "rank", range(1, len(df) + 1))
    return df.drop(columns=["concept_id"]).reset_index(drop=True)


def _caption_count(res: bc.Result, concept: str) -> int:
    """Rows whose caption names ``concept``: the stored per-concept count (read small)."""
    return int(res.count_of().get(concept, 0))


def _filter_to(name: str, res: bc.Result, concept: str) -> None:
    """The ``concepts`` Selection part: a semi-join on the hits file, never a row-id list."""
    sel = state.selection(name)
    vocab = res.vocab.name
    named = list(dict.fromkeys([*sel.concepts.get(vocab, []), concept]))
    state.set_selection(name, replace(sel, concepts={**sel.concepts, vocab: named},
                                      concept_dirs=None))  # fmt: skip
    state.clear_filter_widgets()
    st.session_state[FLASH] = [f"Filter set: the {_caption_count(res, concept):,} rows whose "
                               f"caption names “{concept}” (see the chip; it holds on every "
                               "page)."]  # fmt: skip


def examples(name: str, con, res: bc.Result, sel: Selection, concept: str, n: int = 12) -> None:
    """The concept's rows within the current selection, as cards, and the filter button."""
    rows = example_rows(con, res, sel, concept, n)
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    c1.markdown(f"**{concept}** — {_caption_count(res, concept):,} rows name it; the first "
                f"{len(rows)} in the current selection:")
    c2.button("Filter to this concept", icon=":material/filter_alt:", type="primary",
              on_click=_filter_to, args=(name, res, concept), key="w.concepts.filter",
              width="stretch")
    if rows:
        cards.grid(name, rows, 6, key="concept-grid")
    else:
        st.caption("No row of the current selection names it.")


def coverage_tab(res: bc.Result) -> None:
    st.caption("Which classes of a benchmark are absent or rare here. Classes are looked up in "
               "this vocabulary; count the class list itself as a vocabulary to cover them all.")
    c1, c2 = st.columns([3, 1])
    up = c1.file_uploader("Class list (one a line)", type=["txt", "csv", "tsv"],
                          key="w.concepts.cov.up", max_upload_size=uploads.VOCAB_MB)
    rare = c2.number_input("Rare below", min_value=1, value=10, step=1, key="w.concepts.rare")
    if up is not None:
        why = uploads.text_refusal(up.name, up.getvalue())
        if why:
            st.error(why, icon=":material/error:")
            return
        try:
            classes = bc.parse("classes", up.getvalue()).concepts
        except bc.VocabError as e:
            st.error(str(e), icon=":material/error:")
            return
        source = up.name
    else:
        classes = list(res.vocab.concepts)
        source = f"all of {res.vocab.name}"
    import pandas as pd

    rows = pd.DataFrame(bc.coverage(res.count_of(), classes, int(rare)))
    by = rows["status"].value_counts()
    st.markdown(" · ".join(f"**{by.get(k, 0):,}** {k}" for k in
                           ("absent", "rare", "covered", "not in vocabulary")) + f" ({source})")
    st.dataframe(rows, hide_index=True, height=320, width="stretch")
    st.download_button("Download CSV", rows.to_csv(index=False).encode(), "coverage.csv",
                       "text/csv", icon=":material/download:")


BALANCE_HITS = 5_000_000  # above this many hits, the preview reads them only when asked


def balance_tab(name: str, res: bc.Result) -> None:
    hits = int(res.summary.get("hits", 0))
    if hits > BALANCE_HITS and not res.hits_loaded():
        key = f"w.concepts.balance.{res.vocab.name}"
        st.caption(f"The preview reads all {hits:,} caption hits of this result set "
                   f"(about {hits * 12 / 1e9:.1f} GB in memory), so it runs only when asked.")
        if not st.button("Preview the balance", key=key, icon=":material/balance:"):
            return
    cap = res.counts["caption_count"].to_numpy()
    top = int(max(cap.max(), 1))
    c1, c2 = st.columns([3, 1])
    t = c1.slider("t: the most rows any concept keeps", 1, top, max(1, min(top, int(
        np.median(cap[cap > 0])) if (cap > 0).any() else 1)), key="w.concepts.t")
    seed = c2.number_input("Seed", min_value=0, value=0, step=1, key="w.concepts.seed")
    exp = bc.expected_counts(res.rows, res.ids, cap, t)
    rows_before = res.summary["rows_with_concept"]
    head = np.argsort(-cap, kind="stable")[:5]
    m = st.columns(3)
    m[0].metric("Balanced subset (expected)", fmt.num(round(exp["rows"])), border=True,
                help=f"of {res.summary['rows']:,} rows; rows naming no concept are dropped")
    m[1].metric("Kept of rows naming a concept", fmt.pct(round(exp["rows"]), rows_before),
                border=True)
    m[2].metric("Concepts capped", fmt.num(int((cap > t).sum())), border=True)
    fig = long_tail_figure(res, exp["entry"])
    # a trace, not add_hline: on a log axis a shape's y is read as an exponent
    fig.add_trace(go.Scatter(x=[1, max(len(cap), 2)], y=[t, t], mode="lines", name=f"t = {t}",
                             line={"color": "#888", "width": 1, "dash": "dot"}))
    st.plotly_chart(fig, key="balance-plot")
    st.caption("What the head loses: " + "; ".join(
        f"{res.vocab.concepts[i]} {cap[i]:,} → {exp['entry'][i]:,.0f}" for i in head))
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    sub = c1.text_input("Subset name", value=f"{res.vocab.name}-t{t}", key="w.concepts.sub")
    if c2.button("Save as subset", icon=":material/bookmark_add:", width="stretch",
                 key="w.concepts.save"):
        from backend.subsets import SubsetError

        try:
            saved = bc.save_balanced(name, res, t, int(seed), sub, paths.workspace())
        except (SubsetError, ValueError) as e:
            st.error(str(e), icon=":material/error:")
        else:
            st.success(f"Saved subset “{saved.name}”: {saved.count:,} rows (t={t}, seed "
                       f"{int(seed)}). Open it from Subsets or Export.",
                       icon=":material/check:")


def draw(name: str, con, sel: Selection) -> None:
    vocabs = bc.list_vocabs(name, paths.workspace())
    for note in st.session_state.pop(FLASH, []) or []:
        st.info(note, icon=":material/info:")
    run_form(name, con, expanded=not vocabs)
    if not vocabs:
        st.markdown(style.empty_html("hub", "No concept counts yet", "Count a vocabulary above: "
                    "ImageNet classes, words mined from the captions, or your own list."),
                    unsafe_allow_html=True)
        return
    if st.session_state.get(W_VOCAB) not in vocabs:
        st.session_state[W_VOCAB] = vocabs[0]
    vocab = st.selectbox("Result set", vocabs, key=W_VOCAB)
    try:
        res = load(name, vocab)
    except (FileNotFoundError, OSError, ValueError) as e:
        st.error(f"Cannot read the result set {vocab!r}: {e}", icon=":material/error:")
        return
    metrics(res)
    tail, tab, cov, bal, zs = st.tabs(["Long tail", "Concepts", "Coverage", "Balance (MetaCLIP)",
                                       "Zero-shot trend"])  # fmt: skip
    with tail:
        st.plotly_chart(long_tail_figure(res), key="tail-plot")
        if note := res.summary.get("image_note"):
            st.caption(note)
    with tab:
        df = table(res)
        q = st.text_input("Find a concept", key="w.concepts.q", placeholder="e.g. hexagon")
        shown = df[df["concept"].str.contains(q, case=False, regex=False)] if q.strip() else df
        st.dataframe(shown, hide_index=True, height=min(300, 35 * (len(shown) + 1) + 3),
                     width="stretch")
        choices = shown[shown["caption_count"] > 0]["concept"].tolist()
        if q.strip() and choices:
            examples(name, con, res, sel, choices[0] if q.strip().casefold() not in
                     [c.casefold() for c in choices] else
                     next(c for c in choices if c.casefold() == q.strip().casefold()))
        elif q.strip():
            st.caption(f"No concept matching “{q}” appears in any caption.")
    with cov:
        coverage_tab(res)
    with bal:
        balance_tab(name, res)
    with zs:
        from ui import trend

        trend.tab(res)
