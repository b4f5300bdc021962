"""Shipped embeddings: DataComp's .npz, clip-retrieval folders and HF vector columns become
embedding sets; image-side features run on them with no model weights; bad vector files are
rejected with their reason and never misalign a row; missing steps say what to run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend import browse, embedding_sets
from backend.cli import main
from backend.ingest import build
from backend.models import ModelUnavailable
from backend.search import Searcher, SearchError, build_indexes
from backend.selection import Selection
from backend.sources import SourceError
from backend.store import connect
from tests.pool_fixtures import WORDS
from tests.pool_fixtures_vectors import datacomp_pool, rewrite_npz

ROWS = 150


def _store(name: str, home: Path) -> tuple[dict[str, int], dict[str, dict]]:
    """Row id by key, and the rejects by key."""
    con = connect(name, home)
    try:
        keys = dict(con.execute("SELECT key, row_id FROM samples").fetchall())
        rejects = {r["key"]: r for r in browse.rejects(con, limit=10_000)}
    finally:
        con.close()
    return keys, rejects


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model loader raises and records that it was asked: a test that passes with this
    fixture ran without the model registry."""
    asked: list[str] = []

    def refuse(which: str):
        def load(*args, **kwargs):
            asked.append(which)
            raise ModelUnavailable(f"{which}: no weights in this test")

        return load

    import backend.embed
    import backend.models
    import backend.search

    for mod in (backend.models, backend.search, backend.embed):
        for fn in ("load_clip", "load_effnet", "load_minilm"):
            if hasattr(mod, fn):
                monkeypatch.setattr(mod, fn, refuse(fn))
    backend.search.encoder_for.cache_clear()
    return asked


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two DataComp shards with npz, built and indexed once (no model is needed for either)."""
    base = tmp_path_factory.mktemp("datacomp")
    truth = datacomp_pool(base / "src", shards=2, rows=ROWS)
    home = base / "ws"
    build("dc", base / "src", root=home, workers=1)
    build_indexes("dc", home)
    keys, _ = _store("dc", home)
    row_of = [keys[u] for u in truth["uids"]]  # source row -> row id
    return {"truth": truth, "home": home, "row_of": row_of}


def test_sets_recorded_with_model_and_defaults(pool) -> None:
    home = pool["home"]
    sets = embedding_sets.summary("dc", home)
    assert set(sets) == {"l14_img", "l14_txt", "b32_img", "b32_txt"}
    assert sets["l14_img"] == {
        "kind": "img", "dim": 768, "model": "open_clip:ViT-L-14/openai", "source": "shipped",
        "origin": "DataComp .npz", "rows": 2 * ROWS, "dtype": "float16", "default": True,
    }  # fmt: skip
    assert sets["b32_txt"]["dim"] == 512 and not sets["b32_txt"]["default"]
    # kept as given: DataComp ships float16, every stored vector equals the shipped one
    img = np.load(home / "dc" / "embeddings" / "img.npy")
    want = pool["truth"]["sets"]["l14_img"].astype(np.float16)
    np.testing.assert_array_equal(img[pool["row_of"]], want)
    b32 = np.load(home / "dc" / "embeddings" / "sets" / "b32_txt.npy")
    np.testing.assert_array_equal(
        b32[pool["row_of"]], pool["truth"]["sets"]["b32_txt"].astype(np.float16)
    )


def test_info_json_lists_the_embedding_sets(pool, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TAILSCOPE_HOME", str(pool["home"]))
    assert main(["info", "dc", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    emb = info["embeddings"]
    assert {k: (v["dim"], v["model"], v["source"], v["rows"]) for k, v in emb.items()} == {
        "l14_img": (768, "open_clip:ViT-L-14/openai", "shipped", 300),
        "l14_txt": (768, "open_clip:ViT-L-14/openai", "shipped", 300),
        "b32_img": (512, "open_clip:ViT-B-32/openai", "shipped", 300),
        "b32_txt": (512, "open_clip:ViT-B-32/openai", "shipped", 300),
    }


def test_more_like_this_returns_the_planted_twin_without_model_weights(pool, no_models) -> None:
    s = Searcher("dc", pool["home"])
    for a, b in pool["truth"]["twins"]:
        ra, rb = pool["row_of"][a], pool["row_of"][b]
        res = s.like_row(ra, k=5)
        assert res.hits[0]["row_id"] == rb and res.hits[0]["score"] > 0.99
        assert s.like_row(rb, k=5).hits[0]["row_id"] == ra
        assert res.model == "open_clip:ViT-L-14/openai"
    assert no_models == []  # the model registry was never asked


def test_semantic_duplicates_and_map_from_shipped_vectors(pool, no_models) -> None:
    from backend.dedup import semantic_pairs
    from backend.map import build_map

    i, j, model = semantic_pairs("dc", root=pool["home"])
    found = {tuple(sorted(p)) for p in zip(i.tolist(), j.tolist(), strict=True)}
    twins = {
        tuple(sorted((pool["row_of"][a], pool["row_of"][b]))) for a, b in pool["truth"]["twins"]
    }
    assert found == twins and model == "open_clip:ViT-L-14/openai"
    rec = build_map("dc", pool["home"], sample=1000)
    assert rec["mapped"] == 2 * ROWS and rec["vectors"]["kind"] == "img"
    assert rec["vectors"]["model"] == "open_clip:ViT-L-14/openai"
    assert no_models == []


def test_text_search_without_text_tower_uses_shipped_caption_vectors(pool, no_models) -> None:
    s = Searcher("dc", pool["home"])
    concept_of = pool["truth"]["concept_of"]
    by_row = {r: concept_of[src] for src, r in enumerate(pool["row_of"])}
    res = s.text("dog", k=20)
    assert "shipped caption vectors" in res.space and "keywords" in res.space
    assert any("text tower is not loaded" in n for n in res.notes)
    assert [by_row[h["row_id"]] for h in res.hits] == [WORDS.index("a dog on grass")] * 20
    assert res.vectors == "img"
    # one row's caption vector: the images of its concept
    row = pool["row_of"][3]
    cap = s.like_caption(row, k=10)
    assert {by_row[h["row_id"]] for h in cap.hits} == {concept_of[3]}
    assert "caption of row" in cap.space
    assert "load_clip" in no_models  # it tried the text tower, and said that it could not


def test_image_upload_is_refused_with_why(pool, no_models, tmp_path) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, "PNG")
    with pytest.raises(SearchError, match="needs the image tower of OpenAI CLIP ViT-L/14"):
        Searcher("dc", pool["home"]).image(buf.getvalue())


def test_use_another_set_swaps_files_and_says_what_to_rebuild(tmp_path, monkeypatch, capsys):
    truth = datacomp_pool(tmp_path / "src", shards=1, rows=40, twins=1)
    monkeypatch.setenv("TAILSCOPE_HOME", str(tmp_path / "ws"))
    build("sw", tmp_path / "src", workers=1)
    assert main(["embeddings", "sw", "--use", "b32"]) == 0
    out = capsys.readouterr().out
    assert "python -m backend index sw" in out
    img = np.load(tmp_path / "ws" / "sw" / "embeddings" / "img.npy")
    assert img.shape == (40, 512)
    np.testing.assert_array_equal(img, truth["sets"]["b32_img"].astype(np.float16))
    assert (tmp_path / "ws" / "sw" / "embeddings" / "sets" / "l14_img.npy").is_file()
    sets = embedding_sets.summary("sw")
    assert sets["b32_img"]["default"] and sets["b32_txt"]["default"]
    assert not sets["l14_img"]["default"]


# -- bad input ---------------------------------------------------------------------------------


def _pool(tmp_path: Path, **kw) -> dict:
    return datacomp_pool(tmp_path / "src", shards=2, rows=30, twins=1, **kw)


def _check_shard0_aligned(truth: dict, home: Path, name: str, skip: set[int] = frozenset()):
    keys, _ = _store(name, home)
    img = np.load(home / name / "embeddings" / "img.npy")
    for src in range(30):
        if src in skip:
            assert truth["uids"][src] not in keys
            continue
        row = keys[truth["uids"][src]]
        np.testing.assert_array_equal(img[row], truth["sets"]["l14_img"][src].astype(np.float16))


def test_row_count_mismatch_rejects_the_whole_shard(tmp_path) -> None:
    truth = _pool(tmp_path)
    npz = truth["paths"][1][1]
    rewrite_npz(npz, l14_img=truth["sets"]["l14_img"][30:59].astype(np.float16))  # 29 rows
    res = build("mis", tmp_path / "src", root=tmp_path / "ws", workers=1)
    assert (res.rows, res.reasons) == (30, {"embeddings misaligned": 1})
    _, rejects = _store("mis", tmp_path / "ws")
    assert rejects["00000001.parquet"]["detail"] == (
        "00000001.npz[l14_img] has 29 vectors but its metadata has 30 rows"
    )
    _check_shard0_aligned(truth, tmp_path / "ws", "mis")


def test_missing_npz_and_missing_key_reject_their_shard(tmp_path) -> None:
    truth = _pool(tmp_path)
    rewrite_npz(truth["paths"][1][1], l14_txt=None)
    res = build("key", tmp_path / "src", root=tmp_path / "ws", workers=1)
    assert (res.rows, res.reasons) == (30, {"missing embeddings": 1})
    _, rejects = _store("key", tmp_path / "ws")
    detail = rejects["00000001.parquet#l14_txt"]["detail"]
    assert "00000001.npz has no 'l14_txt' array" in detail
    truth["paths"][1][1].unlink()
    res = build("gone", tmp_path / "src", root=tmp_path / "ws", workers=1)
    assert (res.rows, res.reasons) == (30, {"missing embeddings": 1})
    _, rejects = _store("gone", tmp_path / "ws")
    assert rejects["00000001.parquet#l14_img"]["detail"] == (
        "00000001.npz is missing beside its metadata"
    )
    _check_shard0_aligned(truth, tmp_path / "ws", "gone")


def test_nan_rows_are_rejected_and_every_other_row_stays_aligned(tmp_path) -> None:
    truth = _pool(tmp_path)
    l14 = truth["sets"]["l14_img"][:30].astype(np.float16)
    b32t = truth["sets"]["b32_txt"][:30].astype(np.float16)
    l14[4, 7] = np.nan
    b32t[11, 0] = np.inf
    b32t[4, 0] = np.nan
    rewrite_npz(truth["paths"][0][1], l14_img=l14, b32_txt=b32t)
    res = build("nan", tmp_path / "src", root=tmp_path / "ws", workers=1)
    assert (res.rows, res.reasons) == (58, {"non-finite embedding": 2})
    _, rejects = _store("nan", tmp_path / "ws")
    assert rejects[truth["uids"][4]]["detail"] == "l14_img, b32_txt"
    assert rejects[truth["uids"][11]]["detail"] == "b32_txt"
    _check_shard0_aligned(truth, tmp_path / "ws", "nan", skip={4, 11})


def test_vectors_of_different_dimensions_are_an_error_naming_both(tmp_path) -> None:
    truth = _pool(tmp_path)
    rewrite_npz(truth["paths"][1][1], l14_img=np.ones((30, 512), np.float16))
    with pytest.raises(SourceError) as e:
        build("dims", tmp_path / "src", root=tmp_path / "ws", workers=1)
    assert str(e.value) == (
        "l14_img vectors have different dimensions across shards: 768-d in "
        "00000000.npz[l14_img] but 512-d in 00000001.npz[l14_img]"
    )


# -- clip-retrieval folders and HF vector columns ------------------------------------------------


def _clip_folder(
    src: Path, rows: int = 6, text: bool = False, model: str | None = None
) -> np.ndarray:
    for d in ("img_emb", "metadata") + (("text_emb",) if text else ()):
        (src / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    img = rng.normal(size=(rows, 8)).astype(np.float32)
    np.save(src / "img_emb" / "img_emb_0.npy", img)
    if text:
        np.save(src / "text_emb" / "text_emb_0.npy", rng.normal(size=(rows, 8)).astype(np.float32))
    caps = [f"caption {i}" for i in range(rows)]
    pq.write_table(pa.table({"url": [f"http://e/{i}" for i in range(rows)], "caption": caps}),
                   src / "metadata" / "metadata_0.parquet")  # fmt: skip
    if model:
        (src / "embeddings_info.json").write_text(json.dumps({"clip_model": model}))
    return img


def test_clip_retrieval_model_unknown_named_by_folder_or_by_hand(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TAILSCOPE_HOME", str(tmp_path / "ws"))
    img = _clip_folder(tmp_path / "a")
    build("a", tmp_path / "a", workers=1)
    assert embedding_sets.summary("a")["img"]["model"] == "unknown"
    stored = np.load(tmp_path / "ws" / "a" / "embeddings" / "img.npy")
    assert stored.dtype == np.float16  # float32 given, float16 stored (the default)
    build("a32", tmp_path / "a", workers=1, keep_precision=True, embedding_model="ViT-B-32/openai")
    s = embedding_sets.summary("a32")["img"]
    assert (s["model"], s["dtype"]) == ("open_clip:ViT-B-32/openai", "float32")
    np.testing.assert_array_equal(np.load(tmp_path / "ws" / "a32" / "embeddings" / "img.npy"), img)
    _clip_folder(tmp_path / "b", model="ViT-L-14/openai")
    build("b", tmp_path / "b", workers=1)
    assert embedding_sets.summary("b")["img"]["model"] == "open_clip:ViT-L-14/openai"


def test_hf_vector_column_is_an_embedding_set(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TAILSCOPE_HOME", str(tmp_path / "ws"))
    vecs = [[float(i), 1.0, 0.0, 0.5] for i in range(5)]
    vecs[2] = None  # a row without its vector: rejected, the others stay aligned
    vecs[3] = [1.0, 2.0]  # and one of another length
    table = pa.table({
        "url": [f"http://e/{i}.jpg" for i in range(5)], "text": [f"c{i}" for i in range(5)],
        "clip_embedding": pa.array(vecs, pa.list_(pa.float32())),
    })  # fmt: skip
    pq.write_table(table, tmp_path / "hf.parquet")
    res = build("hf", tmp_path / "hf.parquet", workers=1)
    assert (res.rows, res.reasons) == (3, {"missing embedding": 2})
    assert reject_detail("hf") == {
        "hf:2": "clip_embedding: no vector",
        "hf:3": "clip_embedding: 2 values, not 4",
    }
    s = embedding_sets.summary("hf")["clip_embedding"]
    assert (s["kind"], s["dim"], s["source"], s["default"]) == ("img", 4, "shipped", True)
    stored = np.load(tmp_path / "ws" / "hf" / "embeddings" / "img.npy")
    np.testing.assert_array_equal(stored[:, 0], [0, 1, 4])
    con = connect("hf")
    try:
        cols = [r[0] for r in con.execute("DESCRIBE samples").fetchall()]
    finally:
        con.close()
    assert "clip_embedding" not in cols  # a set, not a JSON text column


def reject_detail(name: str) -> dict[str, str]:
    con = connect(name)
    try:
        return dict(con.execute("SELECT key, detail FROM rejects").fetchall())
    finally:
        con.close()


# -- prerequisites: one line naming the command, exit 2 ------------------------------------------


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and err.startswith("error: ")
    return err


def test_missing_steps_name_the_command_to_run(tmp_path, monkeypatch, capsys, no_models) -> None:
    monkeypatch.setenv("TAILSCOPE_HOME", str(tmp_path / "ws"))
    truth = datacomp_pool(tmp_path / "src", shards=1, rows=20, twins=1)
    build("fresh", tmp_path / "src", workers=1)  # vectors shipped, nothing indexed yet
    assert "`python -m backend index fresh`" in _one_line_error(
        capsys, ["search", "fresh", "--row", "0"]
    )
    assert "`python -m backend index fresh`" in _one_line_error(
        capsys, ["search", "fresh", "--text", "dog"]
    )
    plain = tmp_path / "plain"
    plain.mkdir()
    truth["paths"][0][0].rename(plain / "p.parquet")  # the parquet alone: no vectors
    build("plain", plain, workers=1)
    for argv in (
        ["search", "plain", "--row", "0"],
        ["search", "plain", "--text", "dog"],
        ["search", "plain", "--caption-row", "1"],
        ["map", "plain"],
        ["index", "plain"],
    ):
        assert "`python -m backend embed plain`" in _one_line_error(capsys, argv), argv
    assert "`python -m backend index plain`" in _one_line_error(
        capsys, ["search", "plain", "--keywords", "dog"]
    )


def test_text_search_on_image_only_clip_retrieval_folder(tmp_path, monkeypatch, capsys, no_models):
    monkeypatch.setenv("TAILSCOPE_HOME", str(tmp_path / "ws"))
    _clip_folder(tmp_path / "img_only")
    build("io", tmp_path / "img_only", workers=1)
    build_indexes("io")
    err = _one_line_error(capsys, ["search", "io", "--text", "a dog"])
    assert "holds image vectors only" in err and "`python -m backend embed io`" in err
    assert "`python -m backend embeddings io --model" in err
    assert main(["search", "io", "--row", "0", "--json"]) == 0  # image side still works
    out = json.loads(capsys.readouterr().out)
    assert out["vectors"] == "img" and len(out["results"]) == 5
    assert Searcher("io").like_row(0, k=3, sel=Selection()).hits


def test_hf_images_with_vector_columns_take_the_per_row_path(tmp_path, monkeypatch) -> None:
    """HF parquet with image structs and an image and a text vector column: two sets, the
    rows with image bytes kept, a null vector rejected and the rest aligned."""
    from tests import pool_fixtures

    monkeypatch.setenv("TAILSCOPE_HOME", str(tmp_path / "ws"))
    path, truth = pool_fixtures.hf(tmp_path / "src", n=6)
    img = [[float(i), 0.0, 1.0] for i in range(6)]
    img[4] = None
    txt = [[0.0, float(i)] for i in range(6)]
    t = pq.read_table(path)
    t = t.append_column("image_embedding", pa.array(img, pa.list_(pa.float32())))
    t = t.append_column("text_embedding", pa.array(txt, pa.list_(pa.float64())))
    pq.write_table(t, path)
    res = build("hfimg", path, workers=1)
    assert (res.rows, res.reasons) == (5, {"missing embedding": 1})
    sets = embedding_sets.summary("hfimg")
    assert {k: (v["kind"], v["dim"], v["default"]) for k, v in sets.items()} == {
        "image_embedding": ("img", 3, True),
        "text_embedding": ("text", 2, True),
    }
    emb = tmp_path / "ws" / "hfimg" / "embeddings"
    np.testing.assert_array_equal(np.load(emb / "img.npy")[:, 0], [0, 1, 2, 3, 5])
    np.testing.assert_array_equal(np.load(emb / "text.npy")[:, 1], [0, 1, 2, 3, 5])
    con = connect("hfimg")
    try:
        widths = [r[0] for r in con.execute("SELECT width FROM samples ORDER BY row_id").fetchall()]
    finally:
        con.close()
    assert widths == [truth["width"][i] for i in (0, 1, 2, 3, 5)]  # image bytes were read
