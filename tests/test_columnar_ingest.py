"""The column-at-a-time ingest of URL-only parquet makes the very table the per-row path makes:
every pool fixture and a table of awkward values built both ways, compared cell by cell."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.ingest import build
from backend.sources import columnar, reader_for
from backend.store import connect
from tests import pool_fixtures
from tests.pool_fixtures_vectors import datacomp_pool, rewrite_npz


def _dump(name: str, home: Path) -> tuple[list[str], list[tuple], list[tuple], dict]:
    con = connect(name, home)
    try:
        desc = con.execute("DESCRIBE samples").fetchall()
        rows = con.execute("SELECT * FROM samples ORDER BY row_id").fetchall()
        rejects = con.execute("SELECT * FROM rejects ORDER BY key").fetchall()
    finally:
        con.close()
    return sorted((d[0], d[1]) for d in desc), rows, rejects, {d[0]: i for i, d in enumerate(desc)}


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _both_ways(src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Build ``src`` by the per-row path and the columnar one, assert the stores are equal
    cell by cell, and return the columnar build's result."""
    home = tmp_path / "ws"
    monkeypatch.setenv("TAILSCOPE_PER_ROW_INGEST", "1")
    slow = build("slow", src, root=home, workers=1)
    monkeypatch.delenv("TAILSCOPE_PER_ROW_INGEST")
    fast = build("fast", src, root=home, workers=1)
    assert (fast.rows, fast.rejects, fast.reasons) == (slow.rows, slow.rejects, slow.reasons)
    ds, rs, js, cs = _dump("slow", home)
    df, rf, jf, cf = _dump("fast", home)
    assert df == ds  # the same columns with the same types
    assert js == jf
    for a, b in zip(rs, rf, strict=True):
        for col, i in cs.items():
            assert _same(a[i], b[cf[col]]), (col, a[i], b[cf[col]])
    return fast


@pytest.mark.parametrize("pool", ["laion", "datacomp", "coyo"])
def test_pool_fixture_same_both_ways(pool, tmp_path, monkeypatch) -> None:
    path, _ = pool_fixtures.WRITERS[pool](tmp_path / "src")
    reader = reader_for("parquet")
    shard = reader.shards(path)[0]
    assert columnar.read(reader, shard, 0) is not None  # it does take the columnar path
    _both_ways(path, tmp_path, monkeypatch)


def test_datacomp_with_vectors_and_bad_rows_same_both_ways(tmp_path, monkeypatch) -> None:
    truth = datacomp_pool(tmp_path / "src", shards=2, rows=40, twins=1)
    l14 = truth["sets"]["l14_txt"][:40].astype("float16")
    l14[[3, 17]] = float("nan")
    rewrite_npz(truth["paths"][0][1], l14_txt=l14)
    fast = _both_ways(tmp_path / "src", tmp_path, monkeypatch)
    assert fast.rows == 80 - 2 and fast.rejects == 2  # the two NaN vector rows, kept as rejects


def test_awkward_values_same_both_ways(tmp_path, monkeypatch) -> None:
    urls = ["http://Example.COM./a.jpg", "https://user@host.example.org:8080/x", None,
            " https://www.bbc.co.uk/p ", "example.net/no-scheme.jpg", "http://[::1]/v6",
            "https://i.pinimg.com/x?y#z", ""]  # fmt: skip
    n = len(urls)
    table = pa.table({
        "URL": urls,
        "TEXT": ["  a caption  ", "b", None, "   ", "e", "f", "g", "h"],
        "id": pa.array([10, 11, 12, None, 14, 15, 16, 17], pa.int64()),
        "score": pa.array([0.5, float("nan"), None, 1.0, 2.0, 3.0, 4.0, 5.0], pa.float32()),
        "format": ["jpg"] * n,
        " spaced ": list(range(n)),
        "tags": pa.array([["a", "b"], [], None, ["ü"], ["c"], ["d"], ["e"], ["f"]]),
        "meta": pa.array([{"k": i, "v": "x"} for i in range(n)]),
        "blob": pa.array([b"\x00"] * n, pa.binary()),
        "empty": pa.array([None] * n, pa.float64()),
        "flag": [True, False] * (n // 2),
        "domain": ["given.example"] * n,
        "WIDTH": pa.array(range(100, 100 + n), pa.int16()),
    })  # fmt: skip
    pq.write_table(table, tmp_path / "awkward.parquet")
    reader = reader_for("parquet")
    assert columnar.read(reader, reader.shards(tmp_path / "awkward.parquet")[0], 0) is not None
    _both_ways(tmp_path / "awkward.parquet", tmp_path, monkeypatch)
