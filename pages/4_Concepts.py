"""Concepts: how often each concept appears, the long tail, coverage and MetaCLIP balancing."""

from __future__ import annotations

from ui import concepts, page, selection_bar, state, style

name, con, info, sel = page.open_dataset(
    "Concepts",
    state.CONCEPTS_PAGE,
    "Concept frequency: the long tail, coverage of a benchmark's classes, balancing.",
    "count concepts in",
)
style.hero(
    f"Concepts · {name}",
    "How often each concept of a vocabulary appears in the captions (and images): the long "
    "tail and its power-law slope, which benchmark classes are rare, and MetaCLIP balancing.",
)
selection_bar.live_view(name, con, info["rows"], sel, concepts.draw)
