"""The bad-input catalogue's shape: one case per hostile input item, each with its exact outcome.

A case writes its files into a source, then says what must become of it: ``Ok`` (accepted, as
is or with a stated fix) or ``Rej`` (rejected with a stated reason). :func:`check_build` builds
the whole source once and checks every case, and that ``samples + rejects`` accounts for every
input item: nothing is dropped silently and nothing is counted twice.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from backend.store import connect


@dataclass(frozen=True)
class Ok:
    """Accepted. ``None`` fields are not checked; ``fields`` are other column values."""

    caption: str | None = None
    encoding: str | None = None
    size: tuple[int, int] | None = None
    fmt: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rej:
    """Rejected with exactly this ``reason``; ``detail`` must appear in the reject's detail."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Case:
    key: str  # the item's key in the store (samples.key or rejects.key)
    what: str  # the hostile input, for people reading a failure
    write: Callable[[Path, Path], None]  # (source folder, a folder outside the source)
    expect: Ok | Rej
    items: int = 1  # input items the case holds (a duplicate key is two)

    def __str__(self) -> str:
        return self.key


def png(size: tuple[int, int] = (8, 8), mode: str = "RGB", fmt: str = "PNG", **kw: Any) -> bytes:
    """A small image of ``mode`` encoded as ``fmt``."""
    color: Any = 7000 if mode.startswith("I") else (200 if mode in ("L", "1", "P") else None)
    img = Image.new(mode, size, color) if color is not None else Image.new(mode, size)
    out = io.BytesIO()
    img.save(out, format=fmt, **kw)
    return out.getvalue()


def animated_gif(frames: int = 3, size: tuple[int, int] = (12, 10)) -> bytes:
    imgs = [Image.new("P", size, i * 40) for i in range(frames)]
    out = io.BytesIO()
    imgs[0].save(out, format="GIF", save_all=True, append_images=imgs[1:], duration=50, loop=0)
    return out.getvalue()


def bomb_png() -> bytes:
    """10000 x 10000 pixels (over the 64 Mpx limit) in a few kilobytes."""
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def store_state(name: str, root: Path | None = None) -> tuple[dict[str, dict], list[dict]]:
    """Every sample row by key, and every reject, of dataset ``name``."""
    con = connect(name, root)
    try:
        cur = con.execute("SELECT * FROM samples ORDER BY row_id")
        cols = [d[0] for d in cur.description]
        samples = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        cur = con.execute("SELECT * FROM rejects")
        cols = [d[0] for d in cur.description]
        rejects = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    by_key = {r["key"]: r for r in samples}
    assert len(by_key) == len(samples), "sample keys must be unique"
    return by_key, rejects


def check_case(case: Case, samples: dict[str, dict], rejects: list[dict]) -> None:
    """The case's item has exactly its expected outcome."""
    mine = [r for r in rejects if r["key"] == case.key]
    if isinstance(case.expect, Rej):
        assert case.key not in samples or case.items > 1, f"{case.what}: accepted, not rejected"
        assert [r["reason"] for r in mine] == [case.expect.reason] * len(mine) and mine, (
            case.what,
            mine,
        )
        assert any(case.expect.detail in (r["detail"] or "") for r in mine), (case.what, mine)
        return
    # a key given more than once: the first is kept, every repeat is a 'duplicate key' reject
    assert [r["reason"] for r in mine] == ["duplicate key"] * (case.items - 1), (case.what, mine)
    assert case.key in samples, f"{case.what}: missing from samples"
    row, want = samples[case.key], case.expect
    if want.caption is not None:
        assert row["caption"] == want.caption, case.what
    if want.encoding is not None:
        assert row["caption_encoding"] == want.encoding, case.what
    if want.size is not None:
        assert (row["width"], row["height"]) == want.size, case.what
    if want.fmt is not None:
        assert row["format"] == want.fmt, case.what
    for col, value in want.fields.items():
        assert row[col] == value, (case.what, col, row[col])


def accounted(cases: list[Case], samples: dict, rejects: list[dict], extra: int = 0) -> None:
    """``samples + rejects`` equals the input items: none lost, none invented."""
    items = sum(c.items for c in cases) + extra
    assert len(samples) + len(rejects) == items, (len(samples), len(rejects), items)
    known = {c.key for c in cases}
    assert set(samples) <= known, set(samples) - known
