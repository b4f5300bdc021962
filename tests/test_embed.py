"""The model registry and the embed step.

Plumbing is tested with a tiny random-weight open_clip model (it proves shapes, order, resume
and refusal to mix models, never semantics); semantics with the models that wheels carry.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
import skimage.data
from conftest import copy_demo

from backend import embed as embed_mod
from backend import models
from backend.cli import main
from backend.embed import ModelMismatch, embed, load_vectors
from backend.ingest import build
from backend.search import SearchError
from backend.store import connect


@pytest.fixture
def tiny_clip(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return models.load_clip("tiny-test-clip", pretrained=None, device="cpu")


def test_clip_unavailable_offline_is_fast_and_says_what_to_do(monkeypatch):
    from huggingface_hub import constants

    # as when another module imported huggingface_hub before anyone set HF_HUB_OFFLINE
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models.hub_reachable.cache_clear()
    t0 = time.perf_counter()
    with pytest.raises(models.ModelUnavailable, match="--clip-checkpoint PATH") as err:
        models.load_clip("ViT-B-32", "laion2b_s34b_b79k")
    assert time.perf_counter() - t0 < 15
    assert "offline" in str(err.value) and "ViT-B-32/laion2b_s34b_b79k" in str(err.value)
    with pytest.raises(models.ModelUnavailable, match="does not exist"):
        models.load_clip("ViT-B-32", checkpoint="/nonexistent/open_clip_pytorch_model.bin")


def test_clip_loads_from_a_local_checkpoint(tiny_clip, tmp_path):
    import torch

    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_clip.model.state_dict(), ckpt)
    again = models.load_clip("tiny-test-clip", checkpoint=ckpt, device="cpu")
    assert again.name == "open_clip:tiny-test-clip/tiny.pt" and again.dim == 32
    texts = ["a cat", "a rocket"]
    np.testing.assert_allclose(again.encode_texts(texts), tiny_clip.encode_texts(texts), atol=1e-5)


def test_embed_plumbing_order_resume_and_no_mixing(workspace, photo_folder, tiny_clip):
    build("p", photo_folder, workers=1)
    record = embed("p", encoders={"img": tiny_clip, "text": tiny_clip}, workers=0)
    assert record["cross_modal"] is True
    img, txt = load_vectors("p", "img"), load_vectors("p", "text")
    assert img.dtype == np.float16 and img.shape == (8, 32) and txt.shape == (8, 32)
    con = connect("p")
    rows = con.execute("SELECT row_id, caption FROM samples ORDER BY row_id").fetchall()
    # row i of text.npy is the caption of row_id i
    direct = tiny_clip.encode_texts([c for _, c in rows])
    np.testing.assert_allclose(txt.astype(np.float32), direct, atol=2e-2)
    manifest = json.loads((workspace / "p" / "manifest.json").read_text())
    assert manifest["steps"]["embed"]["kinds"]["img"]["model"] == tiny_clip.name
    assert manifest["models"]["image"] == tiny_clip.name

    # a second run with the same model is a no-op; a different model is refused
    again = embed("p", encoders={"img": tiny_clip, "text": tiny_clip}, workers=0)
    assert again["kinds"]["img"] == record["kinds"]["img"]
    other = models.Encoder(
        "clip",
        "open_clip:other/x",
        ("image", "text"),
        32,
        "cpu",
        tiny_clip.model,
        tiny_clip.preprocess,
        tiny_clip.tokenizer,
    )
    with pytest.raises(ModelMismatch, match="--rebuild"):
        embed("p", encoders={"img": other, "text": other}, workers=0)


def test_embed_resumes_from_the_last_written_chunk(workspace, photo_folder, tiny_clip, monkeypatch):
    build("r", photo_folder, workers=1)
    monkeypatch.setattr(embed_mod, "CHUNK", 3)
    calls = []
    real = embed_mod._embed_chunk

    def dying(kind, enc, con, lo, hi, *a):
        calls.append((kind, lo))
        if kind == "img" and lo == 6:
            raise KeyboardInterrupt  # the process dies mid-step
        return real(kind, enc, con, lo, hi, *a)

    monkeypatch.setattr(embed_mod, "_embed_chunk", dying)
    with pytest.raises(KeyboardInterrupt):
        embed("r", encoders={"img": tiny_clip, "text": tiny_clip}, workers=0)
    assert not (workspace / "r" / "embeddings" / "img.npy").exists()  # nothing half-final
    calls.clear()
    monkeypatch.setattr(embed_mod, "_embed_chunk", real)
    monkeypatch.setattr(embed_mod, "_embed_chunk", lambda *a: (calls.append(a[0:4:3]), real(*a))[1])
    embed("r", encoders={"img": tiny_clip, "text": tiny_clip}, workers=0)
    assert [c for c in calls if c[0] == "img"] == [("img", 6)]  # chunks 0 and 3 were kept
    fresh = tiny_clip.encode_images([(workspace.parent / "photos" / "coins.jpg").read_bytes()])
    con = connect("r")
    coins = con.execute("SELECT row_id FROM samples WHERE key = 'coins'").fetchone()[0]
    np.testing.assert_allclose(
        load_vectors("r", "img")[coins].astype(np.float32), fresh[0], atol=2e-2
    )


# --- semantics, with the real packaged models -----------------------------------------------


@pytest.fixture(scope="module")
def effnet():
    return models.load_effnet("cpu")


@pytest.fixture(scope="module")
def minilm():
    return models.load_minilm("cpu")


def test_packaged_image_model_classifies_real_photos(effnet):
    import io

    from PIL import Image

    def png(arr) -> bytes:
        out = io.BytesIO()
        Image.fromarray(arr).save(out, format="PNG")
        return out.getvalue()

    assert models.classify_imagenet(effnet, png(skimage.data.chelsea()))[0][0] in (281, 282, 285)
    top, p = models.classify_imagenet(effnet, png(skimage.data.coffee()))[0]
    assert top == 967 and p > 0.8  # espresso


def test_packaged_caption_model_ranks_by_meaning(minilm):
    captions = [
        "a cup of coffee on a saucer",
        "a rocket on a launch pad",
        "a tabby cat looking at the camera",
        "old coins on a dark background",
    ]
    vecs = minilm.encode_texts(captions)
    for query, want in [
        ("espresso drink", 0),
        ("spaceship liftoff", 1),
        ("kitten", 2),
        ("antique currency", 3),
    ]:
        assert int(np.argmax(vecs @ minilm.encode_texts([query])[0])) == want, query


def test_demo_near_duplicates_are_nearest_neighbours(demo_embedded, effnet, minilm, tmp_path,
                                                     monkeypatch):  # fmt: skip
    """Every planted near-duplicate of a real photo finds its group first (exact copies aside).
    On a copy of the session's demo embedded with these models: the call resumes (no rows
    left to embed), as it did on the shared demo once the search tests had embedded it."""
    home = copy_demo(demo_embedded, tmp_path)
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    embed("demo", encoders={"img": effnet, "text": minilm})
    truth = json.loads((home / "demo" / "source" / "ground_truth.json").read_text())
    con = connect("demo")
    key_row = dict(con.execute("SELECT key, row_id FROM samples").fetchall())
    sha = dict(con.execute("SELECT row_id, sha256 FROM samples").fetchall())
    vecs = load_vectors("demo", "img").astype(np.float32)
    checked = 0
    for group in truth["near_duplicates"]:
        if truth["samples"][group["original"]]["source"] == "synthetic":
            continue  # generated look-alikes (same shape and colour) are legitimately close
        members = [key_row[k] for k in [group["original"], *group["variants"]] if k in key_row]
        shas = {sha[m] for m in members}
        twins = {i for i, h in sha.items() if h in shas}  # exact copies of members count too
        for r in members:
            order = [i for i in np.argsort(-(vecs @ vecs[r])) if sha[i] != sha[r]]
            want = {m for m in twins if sha[m] != sha[r]}
            assert want <= set(order[: len(want)]), (r, want, order[:5])
            checked += 1
    assert checked >= 10


def test_clip_from_checkpoint_serves_text_to_image_search(
    workspace, photo_folder, tiny_clip, tmp_path
):
    """Plumbing only (random weights): a checkpoint-loaded CLIP is reloaded by search."""
    import torch

    from backend.search import Searcher, build_indexes

    ckpt = tmp_path / "clip.pt"
    torch.save(tiny_clip.model.state_dict(), ckpt)
    build("ck", photo_folder, workers=1)
    record = embed(
        "ck", mode="clip", clip_model="tiny-test-clip", clip_checkpoint=str(ckpt), workers=0
    )
    assert record["cross_modal"] and record["kinds"]["img"]["checkpoint"] == str(ckpt)
    build_indexes("ck")
    res = Searcher("ck").text("a cat", k=5)
    assert res.space.startswith("images (CLIP") and len(res.hits) == 5 and not res.notes
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert record["kinds"]["img"]["checkpoint_sha256"] == digest

    # the file replaced by other weights: its queries would not match the stored vectors
    torch.manual_seed(1)
    other = models.load_clip("tiny-test-clip", pretrained=None, device="cpu")
    torch.save(other.model.state_dict(), ckpt)
    photo = (photo_folder / "coffee.jpg").read_bytes()
    for ask in (lambda s: s.text("a cat", k=5), lambda s: s.image(photo, k=5)):
        with pytest.raises(SearchError, match=r"clip\.pt changed since ck's vectors were made"):
            ask(Searcher("ck"))
    assert main(["search", "ck", "--text", "a cat"]) == 2  # one line, no traceback
    assert "changed since" in models.checkpoint_changed("ck", record["kinds"]["img"])  # concepts
