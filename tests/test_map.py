"""The map step: cluster labels on known captions, and the demo's map against its ground truth."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import ConvexHull, Delaunay

from backend.browse import columns
from backend.cli import main
from backend.ingest import build
from backend.manifest import update_manifest
from backend.map import MapError, build_map, choose_k
from backend.map_files import describe_map, load_clusters
from backend.selection import Selection
from backend.store import connect
from backend.terms import cluster_labels, contrast_terms

CAPTIONS = [
    "three red circles on grass",
    "a blue circle on sand",
    "two green circles on grass",
    "a red square on water",
    "one yellow square",
    "four squares on sand",
    "a cat on a sofa",
    "the cat sleeps on a sofa",
    "an unplaced caption about rockets",
]
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, -1])


def test_cluster_labels_name_each_clusters_own_words():
    got = cluster_labels(CAPTIONS, LABELS, k=2)
    assert set(got) == {0, 1, 2}  # -1 (no map position) gets no label
    assert got[0][0] == "circle"  # plurals fold: "circles" counts as "circle"
    assert got[1][0] == "square"
    assert set(got[2]) == {"cat", "sofa"}
    assert all("rocket" not in t for terms in got.values() for t in terms)


def test_cluster_labels_skip_stop_words_numbers_and_rare_noise():
    caps = (
        [f"a photo of the {i} circle" for i in range(60)]
        + ["circle zzqx"]
        + [f"a photo of a square {i}" for i in range(60)]
    )
    labels = np.array([0] * 61 + [1] * 60)
    got = cluster_labels(caps, labels, k=3)
    assert got[0][0] == "circle" and got[1][0] == "square"  # "photo" is in both: ranks lower
    assert "zzqx" not in got[0]  # in one caption only: below min_df


def test_cluster_labels_edge_cases():
    assert cluster_labels([], np.array([])) == {}
    assert cluster_labels(["the of", "and"], np.array([0, 1])) == {0: [], 1: []}
    try:
        cluster_labels(["a"], np.array([0, 1]))
    except ValueError as e:
        assert "labels" in str(e)
    else:
        raise AssertionError("a length mismatch must be refused")


def test_contrast_terms_find_what_is_over_represented():
    got = contrast_terms(CAPTIONS[:3], CAPTIONS, k=3)
    assert got[0] == "circle" and "square" not in got and "cat" not in got
    assert contrast_terms([], CAPTIONS) == []
    assert contrast_terms(["the a of"], CAPTIONS) == []


# --- the map step on the demo -------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_map(demo_map_run):
    """The session's demo embedded (packaged models) and mapped (``demo_map_run``), as the
    active workspace of this module (read only): its record, progress phases and rows."""
    home, record, phases = demo_map_run["home"], demo_map_run["record"], demo_map_run["phases"]
    mp = pytest.MonkeyPatch()
    mp.setenv("TAILSCOPE_HOME", str(home))
    truth = json.loads((home / "demo" / "source" / "ground_truth.json").read_text())
    con = connect("demo")
    rows = con.execute(
        "SELECT row_id, key, map_x, map_y, cluster FROM samples ORDER BY row_id"
    ).fetchall()
    con.close()
    yield {"record": record, "truth": truth, "rows": rows, "phases": phases}
    mp.undo()


def _shape(sample: dict, shapes: set[str]) -> str | None:
    return next((c for c in sample.get("concepts", []) if c in shapes), None)


def test_record_and_cluster_table(demo_map):
    rec, rows = demo_map["record"], demo_map["rows"]
    assert rec["method"] == "umap" and rec["vectors"]["kind"] == "text"
    assert rec["n"] == len(rows) and rec["nan_rows"] == 0 and rec["mapped"] == len(rows)
    assert rec["k"] == choose_k(len(rows)) == 12
    assert {"check", "pca", "umap", "kmeans", "labels", "store"} <= set(rec["phases"])
    assert {"pca", "umap", "clusters", "store"} <= set(demo_map["phases"])
    assert describe_map("demo")["method"] == "umap"
    table = load_clusters("demo")
    assert len(table) == rec["k"] and sum(c["size"] for c in table) == len(rows)
    by_id = {r[0]: r for r in rows}
    for c in table:
        assert set(c) >= {"cluster", "label", "terms", "size", "x", "y", "representatives"}
        assert isinstance(c["label"], str) and c["label"] and c["terms"]
        assert 0 < len(c["representatives"]) <= 8
        assert all(by_id[i][4] == c["cluster"] for i in c["representatives"])
        assert all(np.isfinite([r[2], r[3]]).all() for r in rows)


def test_photos_sit_apart_from_the_generated_shapes(demo_map):
    truth, rows = demo_map["truth"], demo_map["rows"]
    photo = np.array([truth["samples"][r[1]]["source"] != "synthetic" for r in rows])
    xy = np.array([[r[2], r[3]] for r in rows])
    assert photo.sum() >= 20
    d = ((xy[photo][:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    knn = np.argsort(d, axis=1)[:, 1:11]  # each photo's 10 nearest points on the map
    assert photo[knn].mean() > 0.8


def test_dominant_shapes_form_clusters_named_after_them(demo_map):
    truth, rows = demo_map["truth"], demo_map["rows"]
    shapes = set(truth["concept_vocabulary"]["shape"])
    shape = [_shape(truth["samples"][r[1]], shapes) for r in rows]
    labels = {c["cluster"]: c["label"] for c in load_clusters("demo")}
    counts: dict[str, Counter] = {}
    for s, r in zip(shape, rows, strict=True):
        if s:
            counts.setdefault(s, Counter())[r[4]] += 1
    dominant = [s for s, c in counts.items() if c.total() >= 30]
    assert len(dominant) >= 4
    for s in dominant:
        cluster, _ = counts[s].most_common(1)[0]
        assert s in labels[cluster].split(", "), (s, labels[cluster])


def test_map_columns_are_queryable(demo_map):
    con = connect("demo")
    try:
        types = columns(con)
        assert types["map_x"] == "DOUBLE" and types["map_y"] == "DOUBLE"
        assert types["cluster"] == "INTEGER"
        for c in load_clusters("demo"):
            n = con.execute(
                "SELECT count(*) FROM samples WHERE cluster = ?", [c["cluster"]]
            ).fetchone()[0]
            assert n == c["size"]
    finally:
        con.close()


def test_a_lasso_around_one_cluster_selects_its_rows(demo_map):
    rows = demo_map["rows"]
    xy = np.array([[r[2], r[3]] for r in rows])
    cl = np.array([r[4] for r in rows])
    found = False
    for c in load_clusters("demo"):
        pts = xy[cl == c["cluster"]]
        hull = pts[ConvexHull(pts).vertices]
        centre = pts.mean(axis=0)
        poly = centre + (hull - centre) * 1.02  # hull points sit on the edge: widen a little
        inside = Delaunay(poly).find_simplex(xy) >= 0
        if (cl[inside] != c["cluster"]).any():
            continue  # another cluster's points fall inside this hull
        found = True
        sel = Selection(polygon=tuple(map(tuple, poly.tolist())))
        con = connect("demo")
        try:
            where, params = sel.where(columns(con))
            got = {r[0] for r in con.execute(f"SELECT row_id FROM samples WHERE {where}",
                                             params).fetchall()}  # fmt: skip
        finally:
            con.close()
        assert got == {r[0] for r in rows if r[4] == c["cluster"]}
    assert found, "no cluster stands apart from the others on the map"


def _copy_dataset(src: Path, dst_home: Path, name: str = "demo") -> None:
    shutil.copytree(src / name, dst_home / name, symlinks=True, ignore=shutil.ignore_patterns(
        "source", "index", "keywords", "map", ".*"))  # fmt: skip


def test_sample_transform_and_nan_rows(demo_mapped, workspace):
    _copy_dataset(demo_mapped, workspace)
    path = workspace / "demo" / "embeddings" / "text.npy"
    vec = np.load(path)
    vec[[3, 50, 51]] = np.nan
    vec[7, 5] = np.inf
    np.save(path, vec)
    rec = build_map("demo", workspace, sample=200, clusters=5)
    assert rec["method"] == "umap sample+transform" and rec["sample"] == 200
    assert rec["nan_rows"] == 4 and rec["mapped"] == len(vec) - 4 and rec["k"] == 5
    con = connect("demo", workspace)
    try:
        nulls = con.execute(
            "SELECT row_id FROM samples WHERE map_x IS NULL OR map_y IS NULL OR cluster IS NULL "
            "ORDER BY row_id"
        ).fetchall()
        assert [r[0] for r in nulls] == [3, 7, 50, 51]
        assert con.execute("SELECT count(DISTINCT cluster) FROM samples").fetchone()[0] == 5
    finally:
        con.close()
    assert sum(c["size"] for c in load_clusters("demo", workspace)) == len(vec) - 4


# --- small datasets and bad input ---------------------------------------------------------


@pytest.fixture
def tiny(photo_folder, workspace):
    """The 8-photo folder as a dataset with made-up vectors (the embed step's files)."""
    build("tiny", photo_folder, "folder", root=workspace, workers=1)
    return workspace


def _fake_embed(home: Path, vectors: np.ndarray, kind: str = "text") -> None:
    out = home / "tiny" / "embeddings"
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{kind}.npy", vectors.astype(np.float16))
    update_manifest(home / "tiny" / "manifest.json", "embed", {
        "status": "done", "kinds": {kind: {"model": "fake", "dim": vectors.shape[1],
                                           "rows": len(vectors)}}})  # fmt: skip


def test_tiny_dataset_falls_back_to_pca_and_counts_nan(tiny):
    vec = np.random.default_rng(0).normal(size=(8, 16))
    vec[2] = np.nan
    _fake_embed(tiny, vec)
    rec = build_map("tiny", tiny)
    assert rec["method"] == "pca" and "too few" in rec["method_note"]
    assert rec["nan_rows"] == 1 and rec["mapped"] == 7 and rec["k"] == choose_k(7) == 2
    con = connect("tiny", tiny)
    try:
        got = con.execute("SELECT row_id, map_x, cluster FROM samples ORDER BY row_id").fetchall()
    finally:
        con.close()
    assert [r[0] for r in got if r[1] is None] == [2]
    assert all(r[2] is not None for r in got if r[0] != 2)
    assert len({round(r[1], 6) for r in got if r[1] is not None}) == 7  # spread, not piled up


def test_cli_map_json(tiny, capsys):
    _fake_embed(tiny, np.random.default_rng(1).normal(size=(8, 16)))
    assert main(["map", "tiny", "--clusters", "3", "--vectors", "text", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "pca" and out["k"] == 3 and out["vectors"]["kind"] == "text"


def test_missing_embeddings_and_bad_arguments_say_what_to_do(tiny, capsys):
    with pytest.raises(MapError, match=r"python -m backend embed tiny"):
        build_map("tiny", tiny)
    assert main(["map", "tiny"]) == 2
    assert "python -m backend embed tiny" in capsys.readouterr().err
    _fake_embed(tiny, np.ones((8, 4)), kind="img")
    with pytest.raises(MapError, match="no text embeddings"):
        build_map("tiny", tiny, vectors="text")
    with pytest.raises(MapError, match="use image or text"):
        build_map("tiny", tiny, vectors="audio")
    _fake_embed(tiny, np.full((8, 4), np.nan), kind="img")
    with pytest.raises(MapError, match="none of the 8"):
        build_map("tiny", tiny)
    _fake_embed(tiny, np.ones((5, 4)), kind="img")
    with pytest.raises(MapError, match="cover 5 rows but the store has 8"):
        build_map("tiny", tiny)
