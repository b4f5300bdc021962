"""Derived columns joined into the store, and the map-region (lasso) predicate of a Selection."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from matplotlib.path import Path as MplPath

from backend.columns import BadColumns, add_columns
from backend.ingest import build
from backend.selection import BadSelection, Selection
from backend.store import connect


@pytest.fixture
def photos_ds(workspace: Path, photo_folder: Path) -> str:
    build("photos", photo_folder, "folder", root=workspace, workers=1)
    return "photos"


def test_add_columns_joins_by_row_id_and_keeps_everything(photos_ds: str, workspace: Path):
    con = connect(photos_ds, workspace)
    before = con.execute("SELECT * FROM samples ORDER BY row_id").fetchall()
    rejects = con.execute("SELECT count(*) FROM rejects").fetchone()[0]
    con.close()
    n = len(before)
    ids = np.arange(n, dtype=np.int64)[::-1]  # any order in, row order out
    added = add_columns(
        photos_ds,
        pa.table({"row_id": ids, "score": ids * 0.5, "label": [f"r{i}" for i in ids]}),
        workspace,
    )
    assert added == ["score", "label"]
    con = connect(photos_ds, workspace)
    after = con.execute("SELECT * EXCLUDE (score, label) FROM samples ORDER BY row_id").fetchall()
    got = con.execute("SELECT row_id, score, label FROM samples ORDER BY row_id").fetchall()
    assert con.execute("SELECT count(*) FROM rejects").fetchone()[0] == rejects
    con.close()
    assert after == before
    assert got == [(i, i * 0.5, f"r{i}") for i in range(n)]
    # a second step replaces its own column and leaves the others
    add_columns(photos_ds, pa.table({"row_id": [0], "score": [9.0]}), workspace)
    con = connect(photos_ds, workspace)
    got = con.execute("SELECT row_id, score, label FROM samples ORDER BY row_id").fetchall()
    con.close()
    assert got[0] == (0, 9.0, "r0") and got[1] == (1, None, "r1")


def test_add_columns_refuses_bad_input_and_leaves_store(photos_ds: str, workspace: Path):
    store = (workspace / photos_ds / "store.duckdb").resolve()
    for bad, why in [
        (pa.table({"score": [1.0]}), "row_id"),
        (pa.table({"row_id": [0], "caption": ["x"]}), "core column"),
        (pa.table({"row_id": [0, 0], "s": [1, 2]}), "repeated"),
        (pa.table({"row_id": [10_000], "s": [1]}), "outside"),
    ]:
        with pytest.raises(BadColumns, match=why):
            add_columns(photos_ds, bad, workspace)
    assert (workspace / photos_ds / "store.duckdb").resolve() == store
    assert not list((workspace / photos_ds).glob(".columns-*"))


def test_polygon_matches_matplotlib_on_random_points():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-10, 10, size=(20_000, 2))
    con = duckdb.connect()
    con.register("samples", pa.table({"map_x": xy[:, 0], "map_y": xy[:, 1]}))
    cols = {"map_x": "DOUBLE", "map_y": "DOUBLE"}
    star = [(np.cos(t) * r, np.sin(t) * r) for t, r in
            zip(np.linspace(0, 2 * np.pi, 10, endpoint=False), [8, 3] * 5, strict=True)]
    for poly in (star, [(-5, -5), (5, -5), (5, 5), (-5, 5)], [(0, 0), (9, 1), (2, 8)]):
        where, params = Selection(polygon=tuple(poly)).where(cols)
        got = con.execute(f"SELECT count(*) FROM samples WHERE {where}", params).fetchone()[0]
        want = int(MplPath(poly).contains_points(xy).sum())
        assert got == want > 0


@pytest.mark.parametrize(
    "poly, why",
    [([(0, 0), (1, 1)], "three"), ([(0, 0), (1, 1), (2, 2)], "no area"),
     ([(0, 0), (1, float("nan")), (2, 0)], "finite")],
)  # fmt: skip
def test_degenerate_polygons_are_refused(poly, why):
    with pytest.raises(BadSelection, match=why):
        Selection(polygon=tuple(poly)).where({"map_x": "DOUBLE", "map_y": "DOUBLE"})


def test_polygon_without_a_map_says_which_step_to_run():
    with pytest.raises(BadSelection, match="backend map"):
        Selection(polygon=((0, 0), (1, 0), (0, 1))).where({"row_id": "BIGINT"})


def test_selection_round_trips_through_its_recipe_dict():
    import json

    sel = Selection(text="cat", ranges={"width": (10, None)}, shards=["a.tar"], keywords="dog",
                    polygon=((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)))
    again = Selection.from_dict(json.loads(json.dumps(sel.to_dict())))
    assert again == sel
    assert Selection().to_dict() == {}
    with pytest.raises(BadSelection, match="unknown"):
        Selection.from_dict({"txt": "cat"})


def test_a_long_lasso_path_is_simplified_but_keeps_its_rows():
    from backend.polygon import MAX_VERTICES, simplify

    rng = np.random.default_rng(1)
    xy = rng.uniform(-10, 10, size=(50_000, 2))
    t = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    r = 6 + 2 * np.sin(5 * t)
    path = [(float(a), float(b)) for a, b in zip(r * np.cos(t), r * np.sin(t), strict=True)]
    assert len(simplify(path)) <= MAX_VERTICES
    con = duckdb.connect()
    con.register("samples", pa.table({"map_x": xy[:, 0], "map_y": xy[:, 1]}))
    where, params = Selection(polygon=tuple(path)).where({"map_x": "DOUBLE", "map_y": "DOUBLE"})
    got = con.execute(f"SELECT count(*) FROM samples WHERE {where}", params).fetchall()[0][0]
    want = int(MplPath(path).contains_points(xy).sum())
    assert abs(got - want) <= 0.01 * want
