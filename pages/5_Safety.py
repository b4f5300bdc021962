"""Safety: how many rows of the selection each safety/quality check flags, and the worst ones."""

from __future__ import annotations

from ui import page, safety, state

name, con, info, sel = page.open_dataset(
    "Safety",
    state.SAFETY_PAGE,
    "Offensive captions, NSFW images, watermarks, low quality and duplicates.",
    "check",
)
safety.draw(name, con, sel)
