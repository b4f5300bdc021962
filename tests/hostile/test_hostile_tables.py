"""Bad-input catalogue, parquet and CSV tables: hostile rows, and whole files that cannot be used.

A row-level case is one row of a table; a file-level case is a whole file whose problem stops
the build with a clear :class:`SourceError` message before anything is written.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.ingest import build
from backend.sources import SourceError
from tests.hostile.catalogue import Case, Ok, Rej, accounted, bomb_png, check_case, store_state
from tests.test_sources import jpeg

JPG = jpeg("rocket", 40)
LONG = "ж" * 15_000
RTL = "مرحبا بالعالم 🌍 שלום"
NOP = lambda src, out: None  # noqa: E731 - rows are written together by the fixture

# Parquet rows: (key, caption, image bytes, url, score, expected outcome)
PARQUET_ROWS = [
    ("good", "a rocket", JPG, None, 1.0, Ok("a rocket", "utf-8", (40, 40), "jpeg",
                                          {"storage": "parquet", "score": 1.0})),
    ("url_only", "no bytes, a url", None, "http://x/1.jpg", 0.5,
     Ok(fields={"storage": "url", "url": "http://x/1.jpg", "path": None})),
    ("no_image", "neither bytes nor url", None, None, 0.1, Rej("missing image", "empty image")),
    ("no_caption", None, JPG, None, 0.1, Rej("missing caption", "row 3")),
    ("blank", " \t\n", JPG, None, 0.1, Rej("missing caption")),
    ("html", "html bytes", b"<!doctype html><p>hi</p>", None, 0.1,
     Rej("not an image", "HTML or XML")),
    ("cut", "truncated bytes", JPG[:700], None, 0.1, Rej("truncated or corrupt image")),
    ("bomb", "a bomb", bomb_png(), None, 0.1, Rej("decompression bomb")),
    ("long", LONG, JPG, None, 0.1, Ok(LONG)),
    ("rtl", RTL, JPG, None, 0.1, Ok(RTL)),
    ("nan_score", "NaN in a metadata column", JPG, None, math.nan, Ok(fields={"score": None})),
    ("inf_score", "Inf in a metadata column", JPG, None, math.inf, Ok(fields={"score": math.inf})),
    ("dup", "first of a repeated key", JPG, None, 0.2, Ok("first of a repeated key")),
    ("dup", "second of a repeated key", JPG, None, 0.3, None),
    (None, "a null key", JPG, None, 0.4, Ok("a null key")),
]
PARQUET_CASES = [
    Case(key or "hf:14", f"parquet row: {caption!r:.40}", NOP, want,
         items=2 if key == "dup" else 1)
    for key, caption, _, _, _, want in PARQUET_ROWS
    if want is not None
]  # fmt: skip

CSV_TEXT = (
    b"url,caption,width\n"
    b"http://c/0,1984,640\n"  # digits are a caption, not a number
    b"http://c/1,caf\xe9 cr\xe8me,wide\n"  # cp1252 bytes in a UTF-8 file; a mistyped width
    b'http://c/2,"a, quoted ""caption""\nover two lines",10\n'
    b"http://c/3,too,many,fields\n"
    b"http://c/4,,10\n"
    b"http://c/5,'; DROP TABLE samples; --,10\n"
)
CSV_CASES = [
    Case("meta:0", "a caption of digits (CSV type inference)", NOP,
         Ok("1984", "utf-8", fields={"url": "http://c/0", "width": 640})),
    Case("meta:1", "cp1252 bytes in a UTF-8 CSV, and a width that is not a number", NOP,
         Ok("café crème", "cp1252", fields={"width": None, "src_width": "wide"})),
    Case("meta:2", "a quoted caption with commas, quotes and a newline", NOP,
         Ok('a, quoted "caption"\nover two lines')),
    Case("meta.csv#malformed0", "a line with too many fields", NOP,
         Rej("malformed row", "http://c/3,too,many,fields")),
    Case("meta:3", "an empty caption field", NOP, Rej("missing caption")),
    Case("meta:4", "SQL in a caption is just text", NOP, Ok("'; DROP TABLE samples; --")),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("hostile_tables")
    home = base / "ws"
    home.mkdir()
    keys, caps, imgs, urls, scores = zip(*[r[:5] for r in PARQUET_ROWS], strict=True)
    table = pa.table({
        "key": list(keys), "caption": list(caps),
        "image": [{"bytes": b, "path": None} if b else None for b in imgs],
        "url": list(urls), "score": list(scores),
    })  # fmt: skip
    pq.write_table(table, base / "hf.parquet", row_group_size=4)
    (base / "meta.csv").write_bytes(CSV_TEXT)
    out = {}
    for name, file in (("hf", "hf.parquet"), ("meta", "meta.csv")):
        result = build(name, base / file, root=home, workers=1)
        out[name] = (result, *store_state(name, home))
    return out


@pytest.mark.parametrize("case", PARQUET_CASES, ids=str)
def test_parquet_row(case: Case, built) -> None:
    check_case(case, *built["hf"][1:])


@pytest.mark.parametrize("case", CSV_CASES, ids=str)
def test_csv_row(case: Case, built) -> None:
    check_case(case, *built["meta"][1:])


@pytest.mark.parametrize("name, cases", [("hf", PARQUET_CASES), ("meta", CSV_CASES)])
def test_tables_account_for_every_row(name: str, cases: list[Case], built) -> None:
    result, samples, rejects = built[name]
    accounted(cases, samples, rejects)
    assert (result.rows, result.rejects) == (len(samples), len(rejects))


def _parquet(cols: dict) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(cols), sink)
    return sink.getvalue().to_pybytes()


FILE_CASES = [
    ("no_caption.parquet", _parquet({"url": ["u"], "alt_txt": ["c"]}),
     r"lacks a caption column .*columns are: url, alt_txt"),
    ("no_url.parquet", _parquet({"caption": ["c"], "thumb": ["not bytes"]}),
     "lacks a url column"),
    ("int_caption.parquet", _parquet({"url": ["u"], "caption": [42]}),
     r"lacks a text caption column \('caption' holds int64\)"),
    ("zero.parquet", b"", "zero.parquet cannot be read as a table"),
    ("text.parquet", b"url,caption\nu,c\n", "text.parquet cannot be read as a table"),
    ("empty.csv", b"", "empty.csv cannot be read as a table: Empty CSV file"),
    ("header_only_bad.csv", b"link,words\n", "lacks a caption column"),
]  # fmt: skip


@pytest.mark.parametrize("fname, data, message", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_unusable_table_is_a_clear_source_error(
    fname: str, data: bytes, message: str, tmp_path: Path
) -> None:
    (tmp_path / fname).write_bytes(data)
    with pytest.raises(SourceError, match=message):
        build("t", tmp_path / fname, root=tmp_path / "ws", workers=1)
    assert not (tmp_path / "ws" / "t" / "store.duckdb").exists()


@pytest.mark.parametrize(
    "fname, data",
    [
        ("header_only.csv", b"url,caption\n"),
        ("zero_rows.parquet", _parquet({"url": pa.array([], pa.string()),
                                        "caption": pa.array([], pa.string())})),
    ],  # fmt: skip
    ids=["csv header only", "parquet with no rows"],
)
def test_empty_table_builds_an_empty_dataset(fname: str, data: bytes, tmp_path: Path) -> None:
    (tmp_path / fname).write_bytes(data)
    result = build("t", tmp_path / fname, root=tmp_path / "ws", workers=1)
    assert (result.rows, result.rejects) == (0, 0)
    assert store_state("t", tmp_path / "ws") == ({}, [])


def test_utf16_csv_is_read(tmp_path: Path) -> None:
    text = "url,caption\nhttp://u/1,Grüße ☕\nhttp://u/2,a,b\n"
    (tmp_path / "u16.csv").write_bytes(text.encode("utf-16"))
    result = build("u16", tmp_path / "u16.csv", root=tmp_path / "ws", workers=1)
    samples, rejects = store_state("u16", tmp_path / "ws")
    assert samples["u16:0"]["caption"] == "Grüße ☕"
    assert [r["reason"] for r in rejects] == ["malformed row"]
    assert result.rows + result.rejects == 2
