"""Synthetic vectors for a synthetic dataset (backend.synth_vectors): 2,000 rows in 2 shards get
seeded vectors in the embed step's per-shard layout, a record that says they are synthetic, an
index built by the index step, and a text query through the Searcher the Search page calls that
returns the dataset's rows (checked against exact search over the same vectors), with provenance
that says "synthetic", never "image vectors of" a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend import paths, synth, synth_vectors
from backend.embed import load_vectors, vector_shards
from backend.manifest import read_manifest
from backend.provenance import SYNTHETIC_NOTE, SYNTHETIC_SPACE
from backend.search import Searcher, build_indexes, encoder_for, ondisk_path
from backend.store import connect
from ui.search import provenance_md, shown_elsewhere

ROWS, SHARDS, SEED = 2_000, 2, 5


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth_vectors_ws")
    synth.generate("syn", ROWS, SHARDS, root, seed=3, concepts=False)
    synth_vectors.write_vectors("syn", root, seed=SEED, clusters=20)
    build_indexes("syn", root)
    return root


def _img_record(home: Path) -> dict:
    return read_manifest(paths.manifest_path("syn", home))["steps"]["embed"]["kinds"]["img"]


def test_vectors_are_written_per_shard_in_row_order(home: Path) -> None:
    con = connect("syn", home)
    try:
        bounds = con.execute(
            "SELECT min(row_id), max(row_id) + 1 FROM samples GROUP BY shard ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    files = vector_shards("syn", "img", home)
    assert [lo for lo, _ in files] == [lo for lo, _ in bounds] == [0, ROWS // SHARDS]
    img = _img_record(home)
    enc = encoder_for(img["model"], img["checkpoint"])
    mix = synth_vectors.Mixture(enc.dim, 20, SEED)
    for (lo, hi), (_, path) in zip(bounds, files, strict=True):
        got = np.load(path)
        assert got.dtype == np.float16 and got.shape == (hi - lo, enc.dim)
        want = mix.sample(hi - lo, seed=[SEED, lo]).astype(np.float16)  # the shard's own draw
        assert np.array_equal(got, want)
    whole = load_vectors("syn", "img", home)
    assert whole.shape == (ROWS, enc.dim)
    assert np.array_equal(whole[ROWS // SHARDS], np.load(files[1][1])[0])  # shard 1's first row
    before = [p.stat().st_mtime_ns for _, p in files]
    synth_vectors.write_vectors("syn", home, seed=SEED, clusters=20)  # resumed: nothing rewritten
    assert [p.stat().st_mtime_ns for _, p in files] == before


def test_records_say_the_vectors_are_synthetic(home: Path) -> None:
    manifest = read_manifest(paths.manifest_path("syn", home))
    embed = manifest["steps"]["embed"]
    img = embed["kinds"]["img"]
    assert embed["synthetic"] is True and img["synthetic"] is True and img["note"] == SYNTHETIC_NOTE
    assert img["layout"] == "shards" and img["rows"] == ROWS and "text" not in embed["kinds"]
    assert manifest["models"]["image"].startswith(SYNTHETIC_SPACE)
    index = manifest["steps"]["index"]["faiss"]["img"]
    assert index["synthetic"] is True and index["n"] == ROWS and index["layout"] == "on-disk lists"
    side = json.loads((ondisk_path("syn", "img", home) / "meta.json").read_text())
    assert side["synthetic"] is True and side["vectors_note"] == SYNTHETIC_NOTE


def test_text_query_returns_the_datasets_rows_and_says_synthetic(home: Path) -> None:
    s = Searcher("syn", home)
    res = s.text("a red circle", k=10)
    ids = [h["row_id"] for h in res.hits]
    assert len(ids) == 10 and all(0 <= i < ROWS for i in ids)
    # the rows are the dataset's: captions as the store holds them
    con = connect("syn", home)
    try:
        caps = dict(con.execute(
            f"SELECT row_id, caption FROM samples WHERE row_id IN ({','.join(map(str, ids))})"
        ).fetchall())  # fmt: skip
    finally:
        con.close()
    assert [h["caption"] for h in res.hits] == [caps[i] for i in ids]
    # and they are the nearest vectors: exact search over the same float16 vectors agrees
    enc = encoder_for(res.model, _img_record(home)["checkpoint"])
    q = enc.encode_texts(["a red circle"])[0].astype(np.float32)
    x = np.asarray(load_vectors("syn", "img", home), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = np.argsort(-(x @ (q / np.linalg.norm(q))))[:10]
    assert len(set(ids) & set(exact.tolist())) >= 8
    assert res.space == SYNTHETIC_SPACE and res.vectors == "img"
    line = provenance_md(res)
    assert line and "synthetic vectors (bench only)" in line and "image vectors of" not in line
    assert SYNTHETIC_NOTE in res.notes and shown_elsewhere(SYNTHETIC_NOTE)  # the line says it
    like = s.like_row(ids[0], k=5)  # "≈ Similar" on a card: the same vectors, said the same way
    assert like.space == f"{SYNTHETIC_SPACE} (more like this)" and SYNTHETIC_NOTE in like.notes
    assert ids[0] not in [h["row_id"] for h in like.hits] and len(like.hits) == 5


def test_refuses_a_dataset_that_is_not_synthetic(tmp_path: Path, capsys) -> None:
    ds = paths.dataset_dir("real", tmp_path)
    ds.mkdir(parents=True)
    paths.store_path("real", tmp_path).write_bytes(b"")
    paths.manifest_path("real", tmp_path).write_text(json.dumps({"steps": {}}))
    assert synth_vectors.main(["real", "--root", str(tmp_path)]) == 2
    assert "is not a synthetic dataset" in capsys.readouterr().out
    assert not (ds / "embeddings").exists()
