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
    "you picked: set a threshold per score, keep what passes, keep one image per duplicate "
    "group; the filters hold on every page and in Export.",
)
safety.draw(name, con, sel, info["rows"])
