"""Safety: how many rows of the selection each safety/quality check flags, and the worst ones."""

from __future__ import annotations

from backend.selection import BadSelection
from ui import audits, contamination, page, safety, selection_bar, state, style

name, con, info, sel = page.open_dataset(
    "Safety",
    state.SAFETY_PAGE,
    "Offensive captions, NSFW images, watermarks, low quality and duplicates.",
    "check",
)
style.hero(
    f"Safety · {name}",
    "Offensive captions, NSFW images, overlaid text, low quality and duplicates in the rows "
    "you picked: set a threshold per score, keep what passes, keep one image per duplicate "
    "group; the filters hold on every page and in Export.",
)
try:  # a query past the time limit (backend.bounded): its message, not a crash
    safety.draw(name, con, sel, info["rows"])
    audits.draw(name, con, sel)  # link rot and blocklists
    contamination.draw(name, con, sel)  # eval sets found in the pool
except BadSelection as e:
    selection_bar.stop_bad_filter(name, e)
