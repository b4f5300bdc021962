"""Each source reader on real files: known items in, known rows and rejects out."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import skimage.data
from PIL import Image

from backend import browse, media
from backend.ingest import build
from backend.selection import Selection
from backend.sources import SourceError, detect_format
from backend.store import connect


def jpeg(name: str = "coffee", size: int | None = None) -> bytes:
    img = Image.fromarray(getattr(skimage.data, name)())
    if size:
        img = img.resize((size, size))
    out = io.BytesIO()
    img.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def rows_by_key(name: str) -> dict[str, dict]:
    con = connect(name)
    try:
        return {
            r["key"]: r for r in (browse.row(con, i) for i in range(browse.count(con, Selection())))
        }
    finally:
        con.close()


def reject_reasons(name: str) -> dict[str, str]:
    con = connect(name)
    try:
        return {r["key"]: r["reason"] for r in browse.rejects(con)}
    finally:
        con.close()


# --- image folder ---------------------------------------------------------------------------


def test_folder_keeps_captions_metadata_and_types(workspace, photo_folder):
    from tests.conftest import PHOTOS

    result = build("photos", photo_folder)
    assert (result.rows, result.rejects) == (len(PHOTOS), 0)
    rows = rows_by_key("photos")
    assert {k: r["caption"] for k, r in rows.items()} == PHOTOS
    coffee = rows["coffee"]
    assert coffee["url"] == "https://example.invalid/coffee.jpg"
    assert (coffee["width"], coffee["height"]) == (600, 400)
    assert isinstance(coffee["aesthetic"], float) and coffee["license"] == "demo"
    assert coffee["src_width"] == 1  # a sidecar field named like a core column is kept aside
    assert media.image_bytes(coffee) == (photo_folder / "coffee.jpg").read_bytes()


def test_folder_bad_items_are_rejected_with_reasons(workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.jpg").write_bytes(jpeg())
    (src / "good.txt").write_text("a cup of coffee")
    (src / "nocap.jpg").write_bytes(jpeg("chelsea"))
    (src / "blank.jpg").write_bytes(jpeg("rocket"))
    (src / "blank.txt").write_text("   \n")
    (src / "orphan.txt").write_text("caption without image")
    (src / "page.jpg").write_text("<!DOCTYPE html><html><body>404</body></html>")
    (src / "page.txt").write_text("not found")
    (src / "empty.jpg").write_bytes(b"")
    (src / "empty.txt").write_text("empty")
    (src / "cut.jpg").write_bytes(jpeg()[:3000])
    (src / "cut.txt").write_text("truncated")
    (src / "latin.jpg").write_bytes(jpeg("astronaut"))
    (src / "latin.txt").write_bytes("café crème".encode("cp1252"))
    (src / "outside.jpg").symlink_to(tmp_path / "elsewhere.jpg")
    (tmp_path / "elsewhere.jpg").write_bytes(jpeg("coins"))
    (src / "outside.txt").write_text("a link that leaves the source")

    result = build("bad", src)
    assert reject_reasons("bad") == {
        "nocap": "missing caption",
        "blank": "missing caption",
        "orphan": "missing image",
        "page": "not an image",
        "empty": "empty file",
        "cut": "truncated or corrupt image",
        "outside": "symlink outside source",
    }
    rows = rows_by_key("bad")
    assert set(rows) == {"good", "latin"}
    assert rows["latin"]["caption"] == "café crème"
    assert rows["latin"]["caption_encoding"] == "cp1252"
    assert result.rows + result.rejects == 9


# --- WebDataset tars ------------------------------------------------------------------------


def make_tar(path: Path, items: list[tuple[str, dict[str, bytes]]]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, members in items:
            for ext, data in members.items():
                add(tar, key + ext, data)


def test_webdataset_offsets_read_one_image_without_scanning(workspace, tmp_path):
    src = tmp_path / "shards"
    src.mkdir()
    images = {
        f"{i:09d}": jpeg(name, 64 + i) for i, name in enumerate(["coffee", "chelsea", "rocket"])
    }
    make_tar(
        src / "00000.tar",
        [
            (
                k,
                {
                    ".jpg": v,
                    ".txt": f"caption {k}".encode(),
                    ".json": json.dumps(
                        {"key": k, "url": f"http://x/{k}", "status": "success", "similarity": 0.3}
                    ).encode(),
                },
            )
            for k, v in images.items()
        ],
    )
    result = build("wds", src)
    assert (result.rows, result.rejects) == (3, 0)
    rows = rows_by_key("wds")
    for k, data in images.items():
        assert rows[k]["storage"] == "tar" and rows[k]["byte_size"] == len(data)
        assert media.image_bytes(rows[k]) == data
        assert rows[k]["url"] == f"http://x/{k}" and rows[k]["similarity"] == 0.3
        assert rows[k]["shard"] == "00000.tar"


def test_webdataset_truncated_tar_keeps_what_came_before(workspace, tmp_path):
    src = tmp_path / "shards"
    src.mkdir()
    items = [(f"{i:09d}", {".jpg": jpeg("coffee", 80 + i), ".txt": b"coffee"}) for i in range(6)]
    make_tar(src / "00000.tar", items)
    raw = (src / "00000.tar").read_bytes()
    (src / "00000.tar").write_bytes(raw[: len(raw) * 2 // 3])
    result = build("cut", src)
    reasons = reject_reasons("cut")
    assert "truncated tar" in reasons.values()
    assert 2 <= result.rows < 6
    # every kept row is whole: its bytes decode and match what was written
    for k, r in rows_by_key("cut").items():
        assert media.image_bytes(r) == dict(items)[k][".jpg"]


def test_webdataset_unsafe_names_missing_parts_and_duplicate_keys(workspace, tmp_path):
    src = tmp_path / "shards"
    src.mkdir()
    make_tar(
        src / "00000.tar",
        [
            ("000000001", {".jpg": jpeg(), ".txt": b"ok one"}),
            ("../escape", {".jpg": jpeg(), ".txt": b"tries to leave"}),
            ("/abs/evil", {".jpg": jpeg(), ".txt": b"absolute"}),
            ("000000002", {".txt": b"no image", ".json": b"{}"}),
            ("000000003", {".jpg": jpeg()}),
            ("000000004", {".jpg": jpeg(), ".txt": b"bad json", ".json": b"{not json"}),
        ],
    )
    make_tar(
        src / "00001.tar",
        [
            ("000000001", {".jpg": jpeg("chelsea"), ".txt": b"same key again"}),
            ("000000005", {".jpg": jpeg("chelsea"), ".txt": b"ok five"}),
        ],
    )
    result = build("hostile", src)
    assert reject_reasons("hostile") == {
        "../escape": "unsafe member name",
        "/abs/evil": "unsafe member name",
        "000000002": "missing image",
        "000000003": "missing caption",
        "000000004": "bad metadata",
        "000000001": "duplicate key",
    }
    rows = rows_by_key("hostile")
    assert set(rows) == {"000000001", "000000005"}
    assert rows["000000001"]["caption"] == "ok one"  # the first occurrence wins
    assert result.rows + result.rejects == 8


# --- parquet / CSV --------------------------------------------------------------------------


def test_laion_style_parquet_without_bytes(workspace, tmp_path):
    table = pa.table(
        {
            "SAMPLE_ID": [10, 11, 12],
            "URL": ["http://a/1.jpg", "http://a/2.jpg", "http://a/3.jpg"],
            "TEXT": ["a red car", None, "a dog on grass"],
            "WIDTH": [640, 300, 1024],
            "HEIGHT": [480, 300, 768],
            "similarity": [0.31, 0.28, 0.35],
            "NSFW": ["UNLIKELY", "UNLIKELY", "UNSURE"],
        }
    )
    pq.write_table(table, tmp_path / "part-0.parquet")
    result = build("laion", tmp_path / "part-0.parquet")
    assert (result.rows, result.rejects) == (2, 1)
    assert reject_reasons("laion") == {"11": "missing caption"}
    rows = rows_by_key("laion")
    assert rows["12"]["storage"] == "url" and rows["12"]["url"] == "http://a/3.jpg"
    assert (rows["12"]["width"], rows["12"]["height"]) == (1024, 768)
    assert rows["10"]["similarity"] == pytest.approx(0.31) and rows["12"]["NSFW"] == "UNSURE"
    assert media.image_bytes(rows["10"]) is None
    con = connect("laion")
    assert browse.count(con, Selection(ranges={"similarity": (0.3, None)})) == 2
    con.close()


def test_hf_parquet_with_image_structs(workspace, tmp_path):
    good = jpeg("chelsea", 96)
    table = pa.table(
        {
            "image": [{"bytes": good, "path": "a.jpg"}, {"bytes": b"garbage", "path": "b.jpg"}],
            "text": ["a cat", "broken bytes"],
        }
    )
    pq.write_table(table, tmp_path / "train.parquet", row_group_size=1)
    result = build("hf", tmp_path)
    assert (result.rows, result.rejects) == (1, 1)
    row = next(iter(rows_by_key("hf").values()))
    assert row["storage"] == "parquet" and (row["width"], row["height"]) == (96, 96)
    assert media.image_bytes(row) == good


def test_csv_and_missing_columns_message(workspace, tmp_path):
    (tmp_path / "ok.csv").write_text('url,caption,score\nhttp://a/1.jpg,"a, quoted caption",3\n')
    assert build("csv", tmp_path / "ok.csv").rows == 1
    assert rows_by_key("csv")["ok:0"]["caption"] == "a, quoted caption"
    (tmp_path / "bad.csv").write_text("link_to_img,words\nx,y\n")
    with pytest.raises(
        SourceError, match="lacks a caption column.*columns are: link_to_img, words"
    ):
        build("csvbad", tmp_path / "bad.csv")


# --- clip-retrieval embedding folders -------------------------------------------------------


def test_embedding_folder_vectors_stay_aligned(workspace, tmp_path):
    src = tmp_path / "emb"
    for d in ("img_emb", "text_emb", "metadata"):
        (src / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    img = rng.normal(size=(4, 8)).astype(np.float32)
    img[2, 0] = np.nan
    np.save(src / "img_emb" / "img_emb_0.npy", img)
    np.save(src / "text_emb" / "text_emb_0.npy", rng.normal(size=(4, 8)).astype(np.float32))
    pq.write_table(
        pa.table(
            {"url": [f"http://e/{i}" for i in range(4)], "caption": ["zero", "one", "two", "three"]}
        ),
        src / "metadata" / "metadata_0.parquet",
    )
    assert detect_format(src) == "embeddings"
    result = build("emb", src)
    assert (result.rows, result.rejects) == (3, 1)
    assert reject_reasons("emb") == {"metadata_0:2": "non-finite embedding"}
    stored = np.load(workspace / "emb" / "embeddings" / "img.npy")
    assert stored.dtype == np.float16 and stored.shape == (3, 8)
    captions = [
        r["caption"] for r in sorted(rows_by_key("emb").values(), key=lambda r: r["row_id"])
    ]
    assert captions == ["zero", "one", "three"]
    np.testing.assert_allclose(stored.astype(np.float32), img[[0, 1, 3]], rtol=1e-2, atol=1e-3)


def test_embedding_folder_misaligned_rows_are_rejected(workspace, tmp_path):
    src = tmp_path / "emb"
    for d in ("img_emb", "metadata"):
        (src / d).mkdir(parents=True)
    np.save(src / "img_emb" / "img_emb_0.npy", np.zeros((5, 4), np.float32))
    pq.write_table(
        pa.table({"url": ["u"], "caption": ["c"]}), src / "metadata" / "metadata_0.parquet"
    )
    result = build("mis", src)
    assert result.rows == 0
    assert reject_reasons("mis") == {"metadata_0": "embeddings misaligned"}


# --- detection -------------------------------------------------------------------------------


def test_detect_format_and_empty_source(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="empty or holds nothing"):
        detect_format(tmp_path / "empty")
    with pytest.raises(SourceError, match="does not exist"):
        detect_format(tmp_path / "nope")
