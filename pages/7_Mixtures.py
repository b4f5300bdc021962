"""Mixtures: weight the map's clusters, preview the result, draw a subset or a weight column."""

from __future__ import annotations

from ui import mixture, page, selection_bar, state, style

name, con, info, sel = page.open_dataset(
    "Mixtures",
    state.MIXTURE_PAGE,
    "Cluster mixtures: how much of each map cluster a training set holds.",
    "mix",
)
style.hero(
    f"Cluster mixtures · {name}",
    "Set a weight per map cluster of the rows you picked (CLIMB-style), flatten them or match "
    "a saved subset's mixture, preview the clusters and concepts that result, then save a "
    "seeded draw as a subset or write a per-row sampling weight.",
)
selection_bar.live_view(name, con, info["rows"], sel, mixture.draw)
