"""The Safety page's contamination audit: which eval images are in the pool, the pairs side by
side with their kind and score, the embedding threshold's margin gallery, and the one button
that excludes the matched rows from the Selection (subset ``contaminated-<eval>`` under "none
of"). Audits run from the command line (they read an eval set from disk); this shows them."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import streamlit as st

from backend import media
from backend.browse import rows_by_id
from backend.contamination import audit
from backend.selection import Selection
from ui import cards, state, style

PAIRS_SHOWN = 8
K_EVAL = "w.contamination.eval"
K_KIND = "w.contamination.kind"
KIND_LABELS = {"exact": "same bytes", "phash": "pHash", "embedding": "embedding",
               "caption": "caption"}  # fmt: skip


def exclude(sel: Selection, subset: str) -> Selection:
    """``sel`` with ``subset`` under "none of" (its rows left out on every page and export)."""
    return replace(sel, subsets_none=[*sel.subsets_none, subset])


def _set(name: str, sel: Selection) -> None:
    state.set_selection(name, sel)
    state.clear_filter_widgets()


@st.cache_data(max_entries=512, show_spinner=False)
def _eval_thumb(where: tuple) -> tuple[bytes | None, str | None]:
    """An eval image's thumbnail, read again from the eval set (cached by its location)."""
    row = dict(zip(("storage", "path", "byte_offset", "byte_size", "src_row"), where, strict=True))
    try:
        return media.thumb(row, cards.THUMB_SIZE), None
    except (OSError, ValueError) as e:
        return None, f"eval image not readable now: {e}"


def _image(data: bytes | None, error: str | None, text: str) -> None:
    if data:
        st.image(data, width="stretch")
    else:
        st.caption(error or "no image bytes (url only)")
    st.caption(text)


def _pairs(name: str, con: duckdb.DuckDBPyConnection, pairs: list[dict], evals: dict) -> None:
    """Each pair as eval image | pool image, with its kind and score."""
    rows = rows_by_id(con, sorted({p["row_id"] for p in pairs}))
    store, mtime = str(state.store_file(name)), state.store_mtime(name)
    for i, p in enumerate(pairs):
        if i % 2 == 0:  # two pairs a row, each row its own columns so the pairs stay aligned
            grid = st.columns(4)
        ev, row = evals.get(p["eval_idx"]), rows.get(p["row_id"], {})
        with grid[(2 * i) % 4]:
            if ev is None:  # a prompt, not an eval image
                st.markdown(f"**{style.esc(p['eval'])}**")
            else:
                where = tuple(ev[k] for k in ("storage", "path", "byte_offset", "byte_size",
                                              "src_row"))  # fmt: skip
                _image(*_eval_thumb(where), f"eval `{ev['key']}` · {ev['caption'] or ''}"[:140])
        with grid[(2 * i + 1) % 4]:
            data, err = cards.thumb(store, p["row_id"], mtime, row) if row else (None, "gone")
            _image(data, err, f"row {p['row_id']} · {KIND_LABELS[p['kind']]} "
                   f"{p['score']:.4g} · {(row.get('caption') or '')[:100]}")  # fmt: skip


def _methods_line(rep: dict) -> str:
    parts = []
    for kind in (k for k in KIND_LABELS if k in rep["methods"]):
        m = rep["methods"][kind]
        if m.get("status") != "run":
            parts.append(f"{KIND_LABELS[kind]}: not run — {m['why']} — `{m['command']}`")
            continue
        c = rep["by_kind"][kind]
        how = "; ".join(f"{k} {m[k]}" for k in ("model", "threshold") if m.get(k) is not None)
        parts.append(f"**{KIND_LABELS[kind]}**: eval images {c['eval_images']:,}, rows "
                     f"{c['rows']:,}" + (f" ({how})" if how else ""))  # fmt: skip
    return " · ".join(parts)


def _margin(name: str, con, rep: dict, evals: dict) -> None:
    m = rep["methods"].get("embedding", {})
    gallery = m.get("margin")
    if not gallery or not (gallery["above"] or gallery["below"]):
        return
    with st.expander(f"Embedding threshold {m['threshold']} ({m.get('threshold_source', '')}):"
                     " margin gallery"):  # fmt: skip
        for side, label in (("above", "Weakest matches (at or above the threshold)"),
                            ("below", "Closest misses (below it: not counted)")):  # fmt: skip
            st.markdown(f"**{label}**")
            shown = [{**p, "kind": "embedding", "eval": ""} for p in gallery[side]]
            if shown:
                _pairs(name, con, shown, evals)
            else:
                st.caption("none")


def draw(name: str, con: duckdb.DuckDBPyConnection, sel: Selection) -> None:
    """The newest (or picked) audit of ``name``; how to run one when there is none."""
    st.subheader("Contamination")
    found = audit.list_audits(name)
    cmd = f"python -m backend contamination {name} --eval PATH"
    if not found:
        st.markdown(style.empty_html(
            "fact_check", "Contamination: not run",
            "Is an evaluation set inside this pool? Give its images (folder, .tar shards or "
            "parquet with bytes) or its vectors of the pool's model:<br>"
            f"<code>{style.esc(cmd)}</code> (add <code>--classes FILE</code> for class "
            "prompts)"), unsafe_allow_html=True)  # fmt: skip
        return
    names = [a["eval_name"] for a in found]
    pick = st.selectbox("Eval set", names, key=K_EVAL) if len(names) > 1 else names[0]
    rep = found[names.index(pick)]
    n, hit = rep["eval_images"], rep["matched_eval_images"]
    m = st.columns(3)
    m[0].metric("Eval images checked", f"{n:,}", border=True)
    m[1].metric("With a match in the pool", f"{hit:,}", f"{hit / n:.1%}" if n else None,
                delta_color="off", delta_arrow="off", border=True)  # fmt: skip
    m[2].metric("Matched pool rows", f"{rep['matched_rows']:,}", border=True)
    rejects = "; ".join(f"{v:,} {k}" for k, v in rep["rejects"].items())
    st.caption(f"`{rep['eval_path']}` ({rep['eval_format']}), audited {rep['created']}"
               + (f"; eval items skipped: {rejects}" if rejects else "") + ". "
               + _methods_line(rep))  # fmt: skip
    subset = rep["subset"]
    if subset in sel.subsets_none:
        st.caption(f"Rows of subset `{subset}` are excluded from the Selection.")
    elif rep["matched_rows"]:
        st.button("Exclude contaminated rows", icon=":material/block:", key="contam-exclude",
                  on_click=_set, args=(name, exclude(sel, subset)),
                  help=f"Adds “not in subset {subset}” to the Selection: every page and every "
                       "export leaves the matched rows out")  # fmt: skip
    pairs_t, evals_t = audit.load_pairs(name, pick)
    evals = {r["eval_idx"]: r for r in evals_t.to_pylist()}
    pairs = pairs_t.to_pylist()
    kinds = [k for k in KIND_LABELS if any(p["kind"] == k for p in pairs)]
    if kinds:
        kind = st.segmented_control("Pairs", kinds, default=kinds[0], key=K_KIND,
                                    format_func=KIND_LABELS.get) or kinds[0]  # fmt: skip
        of_kind = [p for p in pairs if p["kind"] == kind]
        of_kind.sort(key=lambda p: -p["score"] if kind == "phash" else p["score"])
        st.caption(f"{KIND_LABELS[kind]} pairs: {len(of_kind):,}, the least similar first "
                   f"(shown: {min(PAIRS_SHOWN, len(of_kind))}); every pair: "
                   f"`{cmd} --json` or `{audit.audits_dir(name)}`")  # fmt: skip
        _pairs(name, con, of_kind[:PAIRS_SHOWN], evals)
    _margin(name, con, rep, evals)
