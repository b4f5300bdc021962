"""Duplicate detection on the demo's planted duplicates, and the banded pHash search against
the all-pairs baseline on synthetic hashes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from backend.cli import main
from backend.dedup import SEMANTIC_THRESHOLD, dedup, normalise_caption
from backend.dup_groups import equal_groups, leader_groups
from backend.embed import load_vectors
from backend.phash_pairs import PHASH_THRESHOLD, all_pairs, hamming, near_pairs, phash_groups
from backend.store import connect
from tests.test_safety import copy_demo


def _dedup_rows(root, **kw):
    rec = dedup("demo", root=root, **kw)
    cur = connect("demo", root).execute(
        "SELECT row_id, key, caption, dup_exact_group, dup_phash_group, dup_semantic_group, "
        "dup_caption_group, is_dup_rep, phash FROM samples ORDER BY row_id"
    )
    names = [d[0] for d in cur.description]
    return rec, [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture(scope="module")
def deduped(demo_home, tmp_path_factory):
    """The demo deduplicated without embeddings (semantic duplicates need them: see below)."""
    root = copy_demo(demo_home, tmp_path_factory.mktemp("dedup_ws"))
    for sub in ("embeddings", "index"):
        shutil.rmtree(root / "demo" / sub, ignore_errors=True)
    truth = json.loads((demo_home / "demo" / "source" / "ground_truth.json").read_text())
    rec, rows = _dedup_rows(root)
    return root, truth, {r["key"]: r for r in rows}, rows, rec


def test_every_planted_exact_duplicate_is_found(deduped):
    _, truth, by_key, rows, rec = deduped
    assert truth["exact_duplicates"]
    for keys in truth["exact_duplicates"]:
        ids = [by_key[k]["row_id"] for k in keys]
        assert {by_key[k]["dup_exact_group"] for k in keys} == {min(ids)}, keys
    planted = {by_key[k]["row_id"] for keys in truth["exact_duplicates"] for k in keys}
    assert {r["row_id"] for r in rows if r["dup_exact_group"] is not None} == planted
    assert rec["exact"]["groups"] == len(truth["exact_duplicates"])


def test_planted_near_duplicates_are_found_at_the_default_threshold(deduped):
    """Every planted copy whose pHash lies within the threshold of its original's is grouped
    with it (however the other copies fall), and pHash itself sees nearly all of them: on this
    fixture one centre crop of a plain circle on a flat background moves 16 of 64 bits."""
    _, truth, by_key, _, rec = deduped
    found = total = 0
    for g in truth["near_duplicates"]:
        orig = by_key[g["original"]]
        for k in g["variants"]:
            total += 1
            together = orig["dup_phash_group"] is not None and (
                by_key[k]["dup_phash_group"] == orig["dup_phash_group"]
            )
            near = hamming(np.array([orig["phash"]]), np.array([by_key[k]["phash"]]))[0]
            assert together or near > PHASH_THRESHOLD, (g["original"], k, int(near))
            found += together
    assert total >= 10 and found / total >= 0.9, (found, total)
    assert rec["params"]["phash_threshold"] == PHASH_THRESHOLD


def test_phash_groups_let_the_best_connected_hash_lead():
    # copies 0 and 1 each lie near the original 2 but not near each other; 0 comes first in
    # row order, yet the original leads, so both copies join it (id: the lowest row, 0)
    h = np.array([0b1111, 0b1111 << 8, 0b1111 | (0b1111 << 8)], dtype=np.uint64).view(np.int64)
    g, _ = phash_groups(3, np.arange(3), h, threshold=4)
    assert g.tolist() == [0, 0, 0]
    g_row_order = leader_groups(3, np.array([0, 1]), np.array([2, 2]))
    assert g_row_order.tolist() == [0, -1, 0]  # what row order alone would have done


def test_group_ids_are_the_lowest_row_and_is_dup_rep_keeps_one_per_group(deduped):
    _, truth, by_key, rows, _ = deduped
    for col in ("dup_exact_group", "dup_phash_group", "dup_caption_group"):
        groups: dict[int, list[int]] = {}
        for r in rows:
            if r[col] is not None:
                groups.setdefault(r[col], []).append(r["row_id"])
        assert groups, col
        assert all(g == min(m) and len(m) > 1 for g, m in groups.items()), col
    kept = {r["row_id"] for r in rows if r["is_dup_rep"]}
    for keys in truth["exact_duplicates"]:
        assert len({by_key[k]["row_id"] for k in keys} & kept) <= 1
    group_rows = [r for r in rows if r["dup_exact_group"] is not None]
    reps = {r["dup_exact_group"] for r in group_rows}
    assert all((r["row_id"] in kept) <= (r["row_id"] in reps) for r in group_rows)
    lonely = [r for r in rows if all(r[c] is None for c in (
        "dup_exact_group", "dup_phash_group", "dup_semantic_group"))]  # fmt: skip
    assert lonely and all(r["is_dup_rep"] for r in lonely)


def test_caption_duplicates_match_normalised_text(deduped):
    _, _, _, rows, _ = deduped
    by_text: dict[str, list[int]] = {}
    for r in rows:
        if normalise_caption(r["caption"]):
            by_text.setdefault(normalise_caption(r["caption"]), []).append(r["row_id"])
    want = {i: min(ids) for ids in by_text.values() if len(ids) > 1 for i in ids}
    assert want
    assert {r["row_id"]: r["dup_caption_group"] for r in rows if r["dup_caption_group"]
            is not None} == want  # fmt: skip
    assert normalise_caption("  Click HERE to enlarge!! ") == "click here to enlarge"
    assert normalise_caption("Ｆｕｌｌ-width café") == normalise_caption("full width CAFÉ")
    assert normalise_caption(None) == "" and normalise_caption("...") == ""


def test_without_embeddings_semantic_is_skipped_with_a_note(deduped):
    _, _, _, rows, rec = deduped
    assert any("semantic duplicates skipped" in n and "embed demo" in n for n in rec["notes"])
    assert all(r["dup_semantic_group"] is None for r in rows)


@pytest.mark.slow
def test_semantic_groups_hold_rows_above_the_threshold(demo_embedded, tmp_path):
    """On a copy of the session's demo embedded with the packaged models and indexed."""
    root = copy_demo(demo_embedded, tmp_path)
    truth = json.loads((demo_embedded / "demo" / "source" / "ground_truth.json").read_text())
    assert (root / "demo" / "index" / "img.faiss").is_file()
    quiet, _ = _dedup_rows(root)  # packaged image vectors: skipped unless a threshold is given
    assert any("not calibrated" in n for n in quiet["notes"])
    rec, rows = _dedup_rows(root, semantic_threshold=SEMANTIC_THRESHOLD)
    by_key = {r["key"]: r for r in rows}
    v = np.asarray(load_vectors("demo", "img", root), dtype=np.float32)
    members = [r for r in rows if r["dup_semantic_group"] not in (None, r["row_id"])]
    assert members and rec["semantic"]["model"] and not rec["notes"]
    groups: dict[int, list[int]] = {}
    for r in rows:
        if r["dup_semantic_group"] is not None:
            groups.setdefault(r["dup_semantic_group"], []).append(r["row_id"])
    assert all(g == min(m) and len(m) > 1 for g, m in groups.items())
    for r in members:
        assert float(v[r["row_id"]] @ v[r["dup_semantic_group"]]) >= SEMANTIC_THRESHOLD - 2e-3
    # a re-encoded real photo is a semantic duplicate of its original
    hits = 0
    for g in truth["near_duplicates"]:
        for k, op in g["variants"].items():
            o = by_key[g["original"]]
            if op == "reencode" and truth["samples"][g["original"]]["source"] != "synthetic":
                hits += by_key[k]["dup_semantic_group"] == o["dup_semantic_group"] is not None
    assert hits >= 1


def test_leader_groups_do_not_chain():
    # 0~1, 1~2, 3~4: 0 leads {0, 1}; 2 is near only 1, a member, so it stays alone
    g = leader_groups(6, np.array([0, 1, 4]), np.array([1, 2, 3]))
    assert g.tolist() == [0, 0, -1, 3, 3, -1]
    assert equal_groups(np.array([5, -1, 5, 7, -1, 7, 7, 9])).tolist() == [
        0, -1, 0, 3, -1, 3, 3, -1]  # fmt: skip


def _planted_hashes(n: int, pairs: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    src = rng.choice(n, pairs, replace=False)
    dst = rng.choice(np.setdiff1d(np.arange(n), src), pairs, replace=False)
    for s, d in zip(src, dst, strict=True):
        flips = rng.choice(64, rng.integers(0, PHASH_THRESHOLD + 1), replace=False)
        h[d] = h[s] ^ np.bitwise_or.reduce(np.uint64(1) << flips.astype(np.uint64), initial=0)
    return h


def test_banded_search_matches_all_pairs_on_synthetic_hashes():
    h = _planted_hashes(20_000, 400)
    truth = set(zip(*all_pairs(h, PHASH_THRESHOLD), strict=True))
    got = set(zip(*near_pairs(h, PHASH_THRESHOLD), strict=True))
    assert len(truth) >= 400 and got <= truth  # every reported pair is verified
    assert len(got) / len(truth) >= 0.95
    close = {(i, j) for i, j in truth if hamming(h[i : i + 1], h[j : j + 1])[0] <= 3}
    assert close <= got  # within 3 bits a band is always shared (pigeonhole)
    ones = near_pairs(h, PHASH_THRESHOLD, tables=1)
    assert len(ones[0]) < len(got)  # more tables, more far pairs found


def test_phash_groups_keep_rows_with_one_hash_together():
    h = np.array([10, 10, 11, 2**40, 10], dtype=np.uint64).view(np.int64)
    rows = np.array([4, 0, 2, 1, 3])
    g, method = phash_groups(5, rows, h, threshold=1)
    assert g.tolist() == [0, -1, 0, 0, 0] and method == "all pairs"


def test_cli_dedup_json_and_bad_threshold(deduped, capsys, monkeypatch):
    root = deduped[0]
    monkeypatch.setenv("TAILSCOPE_HOME", str(root))
    assert main(["dedup", "demo", "--phash-threshold", "4", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["params"]["phash_threshold"] == 4 and rec["exact"]["groups"] > 0
    assert main(["dedup", "demo", "--phash-threshold", "99"]) == 2
    assert "0..64" in capsys.readouterr().err
