"""The Map page's unfiltered answers come from the build (backend.map_prepared): equal to the
live queries, read without a query over ``samples``, and ignored once the map is rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend import map_prepared_load, mapview, synth
from backend.selection import Selection
from backend.store import connect

ROWS = 3_000


class Counting:
    """A connection that counts the queries that read ``samples``."""

    def __init__(self, con) -> None:
        self.con, self.scans = con, 0

    def execute(self, sql: str, *args):
        self.scans += "samples" in sql
        return self.con.execute(sql, *args)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("map_prepared")
    mp = pytest.MonkeyPatch()
    mp.setattr(mapview, "DRAW_LIMIT", 500)  # so the drawn points are a sample of the rows
    try:
        synth.generate("syn", ROWS, 2, root, seed=2, concepts=False)
    finally:
        mp.undo()
    return root


def test_prepared_answers_equal_the_live_queries_and_need_no_scan(home: Path) -> None:
    assert (home / "syn" / "map" / "prepared" / "sample.parquet").is_file()
    con = connect("syn", home)
    try:
        everything = Selection()
        live = mapview.points(con, everything, limit=500, live=True)
        assert live.sampled and 300 < len(live.row_id) < 700
        frame = mapview.extent(con, live=True)
        want = (live, mapview.density(con, everything, frame, live=True), frame,
                mapview.view(con, live=True), mapview.clusters(con, everything, live=True),
                mapview.sample_captions(con, everything, 50, live=True))  # fmt: skip
        counted = Counting(con)
        pts = mapview.points(counted, everything, limit=500)
        got = (pts, mapview.density(counted, everything, frame), mapview.extent(counted),
               mapview.view(counted), mapview.clusters(counted, everything),
               mapview.sample_captions(counted, everything, 50))  # fmt: skip
    finally:
        con.close()
    assert counted.scans == 0  # every answer came from the build's files
    assert np.array_equal(pts.row_id, live.row_id) and pts.caption == live.caption
    assert np.array_equal(pts.x, live.x) and np.array_equal(pts.color, want[0].color)
    assert (pts.total, pts.every) == (live.total, live.every) == (ROWS, live.every)
    assert np.array_equal(got[1].counts, want[1].counts) and got[1].counts.sum() == ROWS
    assert got[2:] == want[2:]
    assert sum(c["size"] for c in got[4]) == ROWS


def test_a_filtered_map_or_a_new_map_queries_live(home: Path) -> None:
    con = connect("syn", home)
    try:
        counted = Counting(con)
        sel = Selection(ranges={"nsfw": (None, 0.1)})
        pts = mapview.points(counted, sel, limit=500)
        assert counted.scans > 0 and pts.total < ROWS
        manifest = home / "syn" / "manifest.json"
        body = json.loads(manifest.read_text())
        body["steps"]["map"]["finished_at"] = "2099-01-01T00:00:00Z"  # as a new map run would
        manifest.write_text(json.dumps(body))
        assert map_prepared_load.load(con) is None
        counted.scans = 0
        mapview.extent(counted)
        assert counted.scans == 1
    finally:
        con.close()
