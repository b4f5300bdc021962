"""Bad-input catalogue, clip-retrieval embedding folders: NaN/Inf vectors, broken ``.npy`` files,
misaligned shards. A shard whose vector file cannot be used is rejected as one item (the rows
of its metadata cannot be paired with vectors), and the other shards are kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.ingest import build
from backend.sources import SourceError
from tests.hostile.catalogue import Case, Ok, Rej, accounted, check_case, store_state

DIM = 4
NOP = lambda src, out: None  # noqa: E731 - shards are written together by the fixture

# shard 0: one row per case, img and text vectors aligned with metadata_0.parquet
ROWS = [  # (caption, img vector, text vector, expected)
    ("fine", [1, 0, 0, 0], [0, 1, 0, 0], Ok("fine")),
    ("nan image", [np.nan, 0, 0, 0], [0, 1, 0, 0], Rej("non-finite embedding", "img")),
    ("inf text", [1, 0, 0, 0], [0, np.inf, 0, 0], Rej("non-finite embedding", "text")),
    ("-inf both", [-np.inf, 0, 0, 0], [0, 0, -np.inf, 0], Rej("non-finite embedding", "img, text")),
    ("zero vector", [0, 0, 0, 0], [0, 0, 0, 0], Ok("zero vector")),  # finite: kept as given
    ("huge", [3e38, 0, 0, 0], [1, 1, 1, 1], Rej("embedding out of range", "img: values beyond")),
    (None, [1, 1, 0, 0], [1, 1, 0, 0], Rej("missing caption")),
    ("after the bad rows", [0, 0, 0, 1], [0, 0, 1, 0], Ok("after the bad rows")),
]
CASES = [
    Case(f"metadata_0:{i}", f"row {i}: {cap}", NOP, want)
    for i, (cap, _, _, want) in enumerate(ROWS)
]
# whole shards that cannot be paired with their vectors: (shard, img array or raw bytes, reason)
BAD_SHARDS = [
    ("metadata_1#img", b"not a numpy file", "unreadable embeddings"),
    ("metadata_2#img", np.zeros(3, np.float32), "unreadable embeddings"),  # 1-D
    ("metadata_3#img", np.array([{"x": 1}] * 3, dtype=object), "unreadable embeddings"),  # pickle
    ("metadata_4", np.zeros((5, DIM), np.float32), "embeddings misaligned"),  # 5 vectors, 3 rows
]
SHARD_CASES = [Case(k, f"shard {k}: {why}", NOP, Rej(why)) for k, _, why in BAD_SHARDS]


def _meta(folder: Path, i: int, captions: list) -> None:
    urls = [f"http://e/{i}/{j}" for j in range(len(captions))]
    table = pa.table({"url": urls, "caption": pa.array(captions, pa.string())})
    pq.write_table(table, folder / "metadata" / f"metadata_{i}.parquet")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("hostile_emb")
    src, home = base / "emb", base / "ws"
    for d in ("img_emb", "text_emb", "metadata"):
        (src / d).mkdir(parents=True)
    home.mkdir()
    _meta(src, 0, [r[0] for r in ROWS])
    np.save(src / "img_emb" / "img_emb_0.npy", np.array([r[1] for r in ROWS], np.float32))
    np.save(src / "text_emb" / "text_emb_0.npy", np.array([r[2] for r in ROWS], np.float32))
    for i, (_, img, _) in enumerate(BAD_SHARDS, start=1):
        _meta(src, i, ["a", "b", "c"])
        np.save(src / "text_emb" / f"text_emb_{i}.npy", np.ones((3, DIM), np.float32))
        path = src / "img_emb" / f"img_emb_{i}.npy"
        if isinstance(img, bytes):
            path.write_bytes(img)
        else:
            np.save(path, img, allow_pickle=True)
    result = build("emb", src, root=home, workers=1)
    return result, *store_state("emb", home), home


@pytest.mark.parametrize("case", CASES + SHARD_CASES, ids=str)
def test_embedding_item(case: Case, built) -> None:
    check_case(case, *built[1:3])


def test_embeddings_account_for_every_item_and_stay_aligned(built) -> None:
    result, samples, rejects, home = built
    accounted(CASES + SHARD_CASES, samples, rejects)
    img = np.load(home / "emb" / "embeddings" / "img.npy")
    kept = [i for i, r in enumerate(ROWS) if isinstance(r[3], Ok)]
    assert img.shape == (len(kept), DIM) and img.dtype == np.float16
    order = sorted(samples.values(), key=lambda r: r["row_id"])
    assert [r["caption"] for r in order] == [ROWS[i][0] for i in kept]
    np.testing.assert_array_equal(img, np.array([ROWS[i][1] for i in kept]))
    assert np.isfinite(img).all()  # 3e38 would have become inf in float16: it was rejected


def test_vector_dimensions_that_differ_across_shards_stop_the_build(tmp_path: Path) -> None:
    src = tmp_path / "emb"
    for d in ("img_emb", "metadata"):
        (src / d).mkdir(parents=True)
    for i, dim in enumerate((4, 8)):
        _meta(src, i, ["x"])
        np.save(src / "img_emb" / f"img_emb_{i}.npy", np.ones((1, dim), np.float32))
    with pytest.raises(SourceError, match="different dimensions across shards"):
        build("dims", src, root=tmp_path / "ws", workers=1)


def test_embedding_folder_without_metadata_files(tmp_path: Path) -> None:
    (tmp_path / "emb" / "metadata").mkdir(parents=True)
    (tmp_path / "emb" / "img_emb").mkdir()
    with pytest.raises(SourceError, match="holds no metadata_N.parquet files"):
        build("none", tmp_path / "emb", root=tmp_path / "ws", workers=1)
