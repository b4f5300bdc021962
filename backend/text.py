"""Caption bytes to text: the encodings that real crawls contain."""

from __future__ import annotations

import codecs

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_caption(raw: bytes) -> tuple[str | None, str]:
    """Decode caption bytes; return (text or None when blank, encoding used).

    UTF-8 first; a BOM names UTF-16 or UTF-8; anything else that is not UTF-8 is read as
    cp1252 (the usual culprit in web crawls), so the caption is kept and the fix is recorded.
    """
    encoding = "utf-8"
    for bom, enc in _BOMS:
        if raw.startswith(bom):
            encoding = enc
            break
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        encoding = "cp1252"
        text = raw.decode("cp1252", errors="replace")
    text = text.replace("\x00", "").strip()
    return (text or None), encoding
