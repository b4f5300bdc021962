"""DataComp-style uid lists: each 128-bit hex uid as two uint64 (high, low), sorted, unique.

This is how DataComp's baselines save the uids a filter keeps (``np.dtype("u8,u8")``), so the
``.npy`` can be passed straight to its resharder.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

UID_DTYPE = np.dtype("u8,u8")


class BadUid(ValueError):
    """A uid that is not 32 hex digits."""


def uids_to_array(uids: Iterable[str]) -> np.ndarray:
    """Hex uid strings → sorted unique structured array of (high, low) uint64."""
    pairs = []
    for uid in uids:
        s = (uid or "").strip().lower()
        if len(s) != 32:
            raise BadUid(f"uid {uid!r} is not 32 hex digits")
        try:
            pairs.append((int(s[:16], 16), int(s[16:], 16)))
        except ValueError as e:
            raise BadUid(f"uid {uid!r} is not hexadecimal") from e
    return np.unique(np.array(pairs, dtype=UID_DTYPE))  # unique sorts


def array_to_uids(arr: np.ndarray) -> list[str]:
    """Inverse of :func:`uids_to_array` (for checks and display)."""
    return [f"{int(hi):016x}{int(lo):016x}" for hi, lo in arr.tolist()]
