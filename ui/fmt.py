"""Human-readable numbers, sizes and times for labels."""

from __future__ import annotations

from datetime import UTC, datetime


def num(n: int | float | None) -> str:
    if n is None:
        return "—"
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.3g}"
    return f"{int(n):,}"


def short(n: int | None) -> str:
    """1234 → 1.2k, 5_300_000 → 5.3M."""
    if n is None:
        return "—"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.1f}".rstrip("0").rstrip(".") + unit
    return str(n)


def size(n: int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def pct(part: int, whole: int) -> str:
    if not whole:
        return "0%"
    p = 100 * part / whole
    return f"{p:.1f}%" if p < 10 else f"{p:.0f}%"


def when(iso: str | None) -> str:
    """'5 min ago (2026-01-02 10:00 UTC)' from an ISO timestamp; the input when unparseable."""
    if not iso:
        return "—"
    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    secs = (datetime.now(UTC) - t).total_seconds()
    if secs < 60:
        ago = "just now"
    elif secs < 3600:
        ago = f"{int(secs // 60)} min ago"
    elif secs < 86400:
        ago = f"{int(secs // 3600)} h ago"
    else:
        ago = f"{int(secs // 86400)} d ago"
    return f"{ago} · {t.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def dims(width: int | None, height: int | None) -> str:
    if width is None or height is None:
        return "size unknown"
    return f"{width}×{height}"
