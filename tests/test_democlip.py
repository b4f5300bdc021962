"""The demo CLIP on the demo, through the real code paths, against the demo's ground truth.

The committed checkpoint is loaded exactly as a user's (``--clip-model`` + ``--clip-checkpoint``)
and the demo fixture is embedded, indexed, mapped, scored and de-duplicated with it; every test
asserts measured values against planted truth.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from backend.demo.concepts import COLOURS, SHAPES
from backend.democlip import CHECKPOINT, DEMO_CLIP_NOTE, MODEL_NAME, for_demo, is_demo_clip
from backend.store import connect


@pytest.fixture(scope="module")
def built(demo_pristine, tmp_path_factory):
    """The 600-row demo fixture built with the demo CLIP: embed, index, map, score, dedup."""
    from backend.dedup import dedup
    from backend.embed import embed
    from backend.map import build_map
    from backend.safety.run import score
    from backend.search import build_indexes

    home = tmp_path_factory.mktemp("democlip_ws")
    shutil.copytree(demo_pristine / "demo", home / "demo", symlinks=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("TAILSCOPE_HOME", str(home))
    mp.setenv("HF_HUB_OFFLINE", "1")  # no real CLIP here: the demo falls back to its own
    model, pretrained, checkpoint, note = for_demo()
    record = embed("demo", clip_model=model, clip_pretrained=pretrained,
                   clip_checkpoint=checkpoint, workers=0)  # fmt: skip
    build_indexes("demo")
    build_map("demo")
    score("demo", scorers=["clip"])
    dedup("demo")
    truth = json.loads((home / "demo" / "source" / "ground_truth.json").read_text())
    con = connect("demo")
    keys = dict(con.execute("SELECT key, row_id FROM samples").fetchall())
    con.close()
    yield {"home": home, "record": record, "truth": truth, "keys": keys, "note": note,
           "args": (model, pretrained, checkpoint)}  # fmt: skip
    mp.undo()


def _image_truth(truth: dict, what: str) -> dict[str, str]:
    """Each generated scene's shape or colour: from its caption, or from the planted truth
    where the caption says nothing true (keys without a colour word are left out)."""
    vocab = set(truth["concept_vocabulary"][what])
    out = {}
    for key, s in truth["samples"].items():
        if s["source"] != "synthetic":
            continue
        if key in truth["uninformative_captions"]:
            out[key] = truth["uninformative_captions"][key][what]
        elif named := [c for c in s["concepts"] if c in vocab]:
            out[key] = named[0]
    return out


def test_the_demo_is_embedded_with_the_demo_clip_through_the_checkpoint_path(built):
    model, pretrained, checkpoint = built["args"]
    assert (model, pretrained, checkpoint) == (MODEL_NAME, None, str(CHECKPOINT))
    assert "did not load" in built["note"] and DEMO_CLIP_NOTE in built["note"]
    rec = built["record"]
    assert rec["cross_modal"] is True and rec["clip_unavailable"] is None
    for kind in ("img", "text"):
        info = rec["kinds"][kind]
        assert is_demo_clip(info["model"]) and DEMO_CLIP_NOTE in info["model"]
        assert info["checkpoint"] == str(CHECKPOINT.resolve()) and info["missing"] == 0


def test_real_weights_named_by_the_user_win():
    assert for_demo("auto", "ViT-B-32", "laion2b_s34b_b79k", None) == (
        "ViT-B-32", "laion2b_s34b_b79k", None, None)  # fmt: skip
    assert for_demo("packaged") == (None, None, None, None)


def test_text_to_image_finds_the_rows_only_pixels_can_find(built):
    """Each planted uninformative row is looked for with a query of its colour and shape.

    The issue's target, recall@50 >= 0.8 for "a photo of a {colour} {shape}": measured 0.857
    (12 of 14) on this fixture; both misses are scenes of two or three shapes, which the
    singular query ranks after the single shapes. Said with its count ("a photo of three red
    circles") every planted row is found (measured 1.0). Both asserted at the target."""
    from backend.demo.concepts import plural
    from backend.search import Searcher

    truth, keys = built["truth"], built["keys"]
    planted = truth["uninformative_captions"]
    s = Searcher("demo")
    counted, singular = [], []
    for key, t in planted.items():
        res = s.text(f"a photo of a {t['colour']} {t['shape']}", k=50)
        assert res.space.startswith("images")
        singular.append(keys[key] in {h["row_id"] for h in res.hits})
        noun = t["shape"] if t["count"] == 1 else plural(t["shape"])
        many = {1: "a", 2: "two", 3: "three"}[t["count"]]
        res = s.text(f"a photo of {many} {t['colour']} {noun}", k=50)
        counted.append(keys[key] in {h["row_id"] for h in res.hits})
        words = s.keywords(f"{t['colour']} {t['shape']}", k=50).hits  # captions cannot
        if t["kind"] != "other scene":
            assert keys[key] not in {h["row_id"] for h in words}
    print(
        f"text->image recall@50 of {len(planted)} planted uninformative rows: "
        f"{np.mean(singular):.3f} (singular query), {np.mean(counted):.3f} (with count)"
    )
    assert len(planted) >= 12
    assert np.mean(counted) >= 0.8
    assert np.mean(singular) >= 0.8


def test_clip_score_ranks_mismatched_captions_below_matched(built):
    truth, keys = built["truth"], built["keys"]
    planted = truth["uninformative_captions"]
    con = connect("demo")
    score = dict(con.execute("SELECT row_id, clip_similarity FROM samples").fetchall())
    con.close()
    bad = [score[keys[k]] for k, t in planted.items() if t["kind"] == "other scene"]
    good = [
        score[keys[k]]
        for k, s in truth["samples"].items()
        if s["source"] == "synthetic" and k not in planted and k not in truth["offensive"]
    ]
    auc = float(np.mean([[g > b for b in bad] for g in good]))
    print(f"CLIP score AUC, matched vs planted mismatched captions: {auc:.3f}")
    assert len(bad) >= 6 and auc >= 0.9


def _vocab(what: str):
    from backend.concepts.vocab import build

    names = list(SHAPES) if what == "shape" else list(COLOURS)
    return build(what, [(n, []) for n in names], source="demo CLIP test")


@pytest.mark.parametrize("what", ["shape", "colour"])
def test_zero_shot_image_concepts_name_shape_and_colour(built, what):
    from backend.concepts.images import clip_hits

    truth, keys = built["truth"], built["keys"]
    vocab = _vocab(what)
    rows, ids, scored, note = clip_hits("demo", vocab, top_k=1)
    assert MODEL_NAME in note
    best = dict(zip(rows.tolist(), (vocab.concepts[i] for i in ids), strict=True))
    want = _image_truth(truth, what)
    acc = float(np.mean([best.get(keys[k]) == v for k, v in want.items()]))
    print(f"zero-shot {what} accuracy over {len(want)} scenes: {acc:.3f}")
    assert len(want) > 300 and acc >= 0.9


def test_misalignment_finds_the_planted_wrong_captions(built):
    from backend.concepts.images import clip_hits
    from backend.concepts.run import caption_hits

    truth, keys = built["truth"], built["keys"]
    vocab = _vocab("shape")
    cap_rows, cap_ids, _ = caption_hits("demo", vocab)
    img_rows, img_ids, _, _ = clip_hits("demo", vocab, top_k=1)
    shown = set(zip(img_rows.tolist(), img_ids.tolist(), strict=True))
    misaligned = {r for r, c in zip(cap_rows.tolist(), cap_ids.tolist(), strict=True)
                  if (r, c) not in shown}  # fmt: skip
    wrong = {keys[k] for k, t in truth["uninformative_captions"].items()
             if t["kind"] == "other scene"}  # fmt: skip
    recall = len(wrong & misaligned) / len(wrong)
    print(f"misalignment: recall {recall:.3f} of {len(wrong)} planted wrong captions, "
          f"{len(misaligned)} rows flagged")  # fmt: skip
    assert recall >= 0.8


def test_semantic_duplicates_are_the_planted_ones(built):
    truth, keys = built["truth"], built["keys"]
    planted: list[set[int]] = [{keys[k] for k in g if k in keys}
                               for g in truth["exact_duplicates"]]  # fmt: skip
    for g in truth["near_duplicates"]:
        members = {keys[g["original"]], *(keys[k] for k in g["variants"] if k in keys)}
        joined = [p for p in planted if p & members]
        planted = [p for p in planted if not p & members] + [members.union(*joined)]
    group_of = {r: i for i, p in enumerate(planted) for r in p}
    con = connect("demo")
    rows = con.execute("SELECT row_id, dup_semantic_group FROM samples "
                       "WHERE dup_semantic_group IS NOT NULL").fetchall()  # fmt: skip
    con.close()
    groups: dict[int, list[int]] = {}
    for r, g in rows:
        groups.setdefault(g, []).append(r)
    found = [m for m in groups.values() if len(m) > 1]
    true = [m for m in found if len({group_of.get(r, -1 - r) for r in m}) == 1]
    precision = len(true) / len(found)
    print(f"semantic duplicates: {len(found)} groups, precision {precision:.3f}")
    assert len(found) >= 10 and precision >= 0.9


def test_map_by_clip_image_vectors_clusters_by_shape(built):
    """The issue's target, NMI >= 0.7 with the shape truth: measured 0.766 with the map's 12
    clusters, k-means on the 2-D layout. (On the 50-d PCA vectors, which hold colour beside
    shape, the same k-means measured 0.637.)"""
    from sklearn.metrics import normalized_mutual_info_score

    from backend.map_files import describe_map

    truth, keys = built["truth"], built["keys"]
    rec = describe_map("demo")
    assert rec["vectors"]["kind"] == "img" and is_demo_clip(rec["vectors"].get("model", ""))
    con = connect("demo")
    cluster = dict(con.execute("SELECT row_id, cluster FROM samples").fetchall())
    con.close()
    shape = _image_truth(truth, "shape")
    nmi = normalized_mutual_info_score([shape[k] for k in shape],
                                       [cluster[keys[k]] for k in shape])  # fmt: skip
    print(f"map clusters vs shape truth: NMI {nmi:.3f}")
    assert rec["clustering"] == "k-means on the 2-D layout"
    assert nmi >= 0.7
