"""The "DataComp baselines" control: one click applies a baseline as the current Selection.

The baseline is compiled by :mod:`backend.baselines` (DataComp's own rules, names and, where
this dataset cannot follow them exactly, notes saying so); the Selection it sets is what every
page then shows, what Subsets saves and what Export writes (uids as DataComp's sorted ``.npy``).
"""

from __future__ import annotations

import streamlit as st

from backend import paths
from ui import state

K_NOTES = "ts.baseline.applied"  # {dataset: (baseline, notes)} of the last applied baseline
HELP = {
    "no_filter": "every row",
    "basic_filter": "English caption (fastText), > 2 words and > 5 characters, shorter image "
    "side ≥ 200 px, aspect ≤ 3",
    "laion2b": "English caption and CLIP ViT-B/32 score ≥ 0.28",
    "clip_score_b32_30_percent": "top 30 % by CLIP ViT-B/32 score",
    "clip_score_l14_30_percent": "top 30 % by CLIP ViT-L/14 score",
    "clip_score_l14_0.3_threshold": "CLIP ViT-L/14 score ≥ 0.3",
    "text_based": "English caption naming an ImageNet-21k synset",
    "image_based": "image in a k-means cluster that ImageNet-1k lands in (slow: clusters the "
    "image vectors)",
    "basic_filter+clip_score_l14_30_percent": "both",
}


def _apply(name: str, baseline: str) -> None:
    """Callback: compile ``baseline`` and make it the Selection (or say why it cannot be)."""
    from backend.baselines import BaselineUnavailable, for_dataset

    try:
        with st.spinner(f"Computing {baseline}…"):
            spec = for_dataset(name, baseline, paths.workspace())
    except (BaselineUnavailable, RuntimeError, ValueError) as e:
        st.session_state.setdefault(K_NOTES, {})[name] = (baseline, [], str(e))
        return
    state.set_selection(name, spec.selection)
    state.clear_filter_widgets()  # the sidebar's widgets reseed from the new Selection
    st.session_state.setdefault(K_NOTES, {})[name] = (baseline, spec.notes, None)


def panel(name: str) -> None:
    """An expander of one-click baseline buttons, and what the last one applied said."""
    from backend.baselines import names

    last = st.session_state.get(K_NOTES, {}).get(name)
    with st.expander("DataComp baselines", icon=":material/rule:", expanded=last is not None):
        st.caption("Apply one of DataComp's filtering baselines as the current selection "
                   "(DataComp's names and rules; README › DataComp baselines says where this is "
                   "approximate). CLI: `python -m backend export NAME --baseline "
                   "clip_score_l14_30_percent --format uids --out DIR`.")  # fmt: skip
        with st.container(horizontal=True, gap="small"):
            for b in [*names(), "image_based"]:
                st.button(b, key=f"w.baseline.{b}", help=HELP.get(b), on_click=_apply,
                          args=(name, b))  # fmt: skip
        if last is not None:
            baseline, notes, error = last
            if error:
                st.warning(f"{baseline}: {error}", icon=":material/block:")
            else:
                st.success(f"Applied **{baseline}**" + (": " + "; ".join(notes) if notes else ""),
                           icon=":material/check:")  # fmt: skip
