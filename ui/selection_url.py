"""A Selection as a page-address token (``?sel=...``): the compact JSON recipe in URL-safe base64.

No Streamlit here, so links can be built and read by tests and scripts; ui.state writes them.
"""

from __future__ import annotations

import base64
import json

from backend.selection import BadSelection, Selection

URL_MAX_IDS = 200  # a longer explicit id list (a kNN result) is left out of the address


def encode_selection(sel: Selection) -> tuple[str, str | None]:
    """(URL-safe base64 of the compact JSON recipe, a note when part of it was left out)."""
    recipe = sel.to_dict()
    note = None
    if len(recipe.get("row_ids") or ()) > URL_MAX_IDS:
        note = (
            f"The page address leaves out the {len(recipe['row_ids']):,} chosen rows; save them "
            "as a subset to share this view."
        )
        del recipe["row_ids"]
    raw = json.dumps(recipe, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("="), note


def decode_selection(token: str) -> Selection:
    """Inverse of :func:`encode_selection`; raises BadSelection for a damaged token."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        raise BadSelection("the link's selection is damaged") from None
    return Selection.from_dict(data)
