"""Safety: how many rows of the selection each safety/quality check flags, and the worst ones."""

from __future__ import annotations

from ui import page, safety, state, style

name, con, info, sel = page.open_dataset(
    "Safety",
    state.SAFETY_PAGE,
    "Offensive captions, NSFW images, watermarks, low quality and duplicates.",
    "check",
)
style.hero(
    f"Safety · {name}",
    "Offensive captions, NSFW images, overlaid text, low quality and duplicates in the rows "
    "you picked: filter with the sidebar, keep or drop them with the score columns.",
)
safety.draw(name, con, sel)
