"""The demo generator: reproducible bytes, and a ground truth that the files really match."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from backend.demo import generate
from backend.demo.concepts import SHAPES, zipf_counts
from backend.images import BadImage, probe
from backend.text import decode_caption

ROWS, SEED, SHARD = 400, 3, 150
TRUTH_KEYS = {
    "seed",
    "rows_requested",
    "shard_size",
    "shards",
    "items_total",
    "expected_samples",
    "expected_rejects",
    "rejects",
    "samples",
    "exact_duplicates",
    "near_duplicates",
    "watermarked",
    "offensive",
    "cp1252_captions",
    "uninformative_captions",
    "concept_vocabulary",
    "concept_counts",
    "zipf_exponent",
}
IMAGE_EXTS = (".jpg", ".png")
BYTE_REASONS = {"empty file", "not an image", "truncated or corrupt image", "decompression bomb"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo_a")
    (out / "00042.tar").write_bytes(b"left over from an earlier, bigger run")
    calls: list[tuple[int, int]] = []
    truth = generate(
        out, rows=ROWS, seed=SEED, shard_size=SHARD, progress=lambda d, t: calls.append((d, t))
    )
    assert calls and calls[-1] == (ROWS, ROWS)
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:], strict=False))
    return out, truth


def read_items(out: Path, shard: str) -> list[tuple[str, dict[str, bytes]]]:
    """Items as a WebDataset reader sees them: consecutive members sharing a stem."""
    items: list[tuple[str, dict[str, bytes]]] = []
    with tarfile.open(out / shard) as tar:
        for m in tar.getmembers():
            assert m.isfile() and m.mtime == 0 and m.uid == 0 and m.gid == 0
            head, _, base = m.name.rpartition("/")
            stem, _, ext = base.partition(".")
            stem = f"{head}/{stem}" if head else stem
            if not items or items[-1][0] != stem:
                items.append((stem, {}))
            items[-1][1]["." + ext] = tar.extractfile(m).read()
    return items


def all_items(out: Path, truth: dict) -> list[tuple[str, str, dict[str, bytes]]]:
    return [
        (shard, stem, members)
        for shard in truth["shards"]
        for stem, members in read_items(out, shard)
    ]


def classified(out: Path, truth: dict) -> list[tuple[str, str, dict[str, bytes], str]]:
    """Every tar item with the verdict the ground truth gives it: "keep" or a reject reason.

    A key seen before is a repeat (the first occurrence is the kept one); any other key is a
    sample or a reject recorded for that shard. Each recorded reject must be used exactly once.
    """
    rejects: dict[tuple[str, str], list[str]] = {}
    for r in truth["rejects"]:
        rejects.setdefault((r["shard"], r["key"]), []).append(r["reason"])
    out_items, seen = [], set()
    for shard, stem, members in all_items(out, truth):
        if stem in seen:
            verdict = "duplicate key"
            rejects[(shard, stem)].remove(verdict)
        elif stem in truth["samples"]:
            assert truth["samples"][stem]["shard"] == shard
            verdict = "keep"
        else:
            verdict = rejects[(shard, stem)].pop()
        seen.add(stem)
        out_items.append((shard, stem, members, verdict))
    assert not any(rejects.values()), rejects
    return out_items


def kept(out: Path, truth: dict) -> dict[str, dict[str, bytes]]:
    return {stem: m for _, stem, m, verdict in classified(out, truth) if verdict == "keep"}


def image_of(members: dict[str, bytes]) -> bytes | None:
    return next((members[e] for e in IMAGE_EXTS if e in members), None)


def test_same_arguments_give_identical_bytes(demo, tmp_path):
    out_a, truth_a = demo
    out_b = tmp_path / "b"
    truth_b = generate(out_b, rows=ROWS, seed=SEED, shard_size=SHARD)
    names = sorted(p.name for p in out_a.iterdir())
    assert names == sorted(p.name for p in out_b.iterdir())
    for name in names:
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes(), name
    assert truth_a == truth_b


def test_another_seed_gives_other_content(demo, tmp_path):
    out_a, truth_a = demo
    truth_c = generate(tmp_path / "c", rows=ROWS, seed=SEED + 1, shard_size=SHARD)
    assert (tmp_path / "c" / "00000.tar").read_bytes() != (out_a / "00000.tar").read_bytes()
    assert truth_c["items_total"] == truth_a["items_total"] == ROWS
    assert truth_c["samples"] != truth_a["samples"]


def test_layout_and_totals(demo):
    out, truth = demo
    assert set(truth) == TRUTH_KEYS
    assert json.loads((out / "ground_truth.json").read_text(encoding="utf-8")) == truth
    n_shards = math.ceil(ROWS / SHARD)
    assert truth["shards"] == [f"{i:05d}.tar" for i in range(n_shards)]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        truth["shards"]
        + [s.replace(".tar", ".parquet") for s in truth["shards"]]
        + ["ground_truth.json"]
    )  # the stale 00042.tar is gone
    assert truth["items_total"] == ROWS
    assert truth["items_total"] == truth["expected_samples"] + truth["expected_rejects"]
    assert truth["expected_samples"] == len(truth["samples"])
    assert truth["expected_rejects"] == len(truth["rejects"])
    keys = [k for k in truth["samples"] if not k.startswith("..")]
    assert all(re.fullmatch(r"\d{9}", k) for k in keys)


def test_every_tar_item_is_a_sample_or_a_reject(demo):
    out, truth = demo
    items = classified(out, truth)
    assert len(items) == truth["items_total"]
    assert sum(v == "keep" for *_, v in items) == truth["expected_samples"]
    assert {stem for _, stem, _, v in items if v == "keep"} == set(truth["samples"])


def test_parquet_beside_each_tar_lists_its_items(demo):
    out, truth = demo
    for shard in truth["shards"]:
        table = pq.read_table(out / shard.replace(".tar", ".parquet"))
        assert table.column_names == ["key", "url", "caption", "status", "width", "height"]
        assert table.column("key").to_pylist() == [s for s, _ in read_items(out, shard)]


def test_kept_items_decode_with_their_recorded_caption(demo):
    out, truth = demo
    cp1252 = set(truth["cp1252_captions"])
    assert cp1252
    for stem, members in kept(out, truth).items():
        sample = truth["samples"][stem]
        probe(image_of(members))
        text, encoding = decode_caption(members[".txt"])
        assert text == sample["caption"]
        assert encoding == ("cp1252" if stem in cp1252 else "utf-8")
        meta = json.loads(members[".json"])
        assert meta["key"] == stem and meta["status"] == "success"
        assert meta["url"] == f"https://demo.tailscope.invalid/img/{stem}.jpg"
        assert isinstance(meta["aesthetic"], float) and isinstance(meta["credit"], str)
        assert (meta["width"], meta["height"]) == Image.open(io.BytesIO(image_of(members))).size


def test_rejects_fail_for_their_recorded_reason(demo):
    out, truth = demo
    reasons = {r["reason"] for r in truth["rejects"]}
    assert reasons == BYTE_REASONS | {
        "missing caption",
        "missing image",
        "unsafe member name",
        "duplicate key",
    }
    first_shard: dict[str, str] = {}
    for shard, stem, members, reason in classified(out, truth):
        first_shard.setdefault(stem, shard)
        if reason == "keep":
            continue
        image = image_of(members)
        if reason in BYTE_REASONS:
            with pytest.raises(BadImage) as err:
                probe(image)
            assert err.value.reason == reason
            continue
        if reason == "missing image":
            assert image is None and ".txt" in members
            continue
        probe(image)  # the rest carry a good image
        if reason == "missing caption":
            raw = members.get(".txt")
            assert raw is None or decode_caption(raw)[0] is None
            caption = json.loads(members[".json"]).get("caption")
            assert caption is None or not caption.strip()
        elif reason == "unsafe member name":
            assert stem.startswith("../")
        elif reason == "duplicate key":
            assert truth["samples"][stem]["shard"] == first_shard[stem] <= shard
            assert decode_caption(members[".txt"])[0]


def test_exact_duplicates_are_all_and_only_the_shared_bytes(demo):
    out, truth = demo
    by_hash: dict[str, list[str]] = {}
    for stem, members in kept(out, truth).items():
        by_hash.setdefault(hashlib.sha256(image_of(members)).hexdigest(), []).append(stem)
    groups = sorted(sorted(g) for g in by_hash.values() if len(g) > 1)
    assert groups == sorted(sorted(g) for g in truth["exact_duplicates"])
    sources = {truth["samples"][g[0]]["source"] for g in groups}
    assert "synthetic" in sources and len(sources) > 2  # planted copies and photo captions
    # some copies keep the caption, some say it differently
    assert any(len({truth["samples"][k]["caption"] for k in g}) > 1 for g in groups)


def test_near_duplicates_decode_and_differ_from_their_original(demo):
    out, truth = demo
    images = {stem: image_of(m) for stem, m in kept(out, truth).items()}
    ops = set()
    for group in truth["near_duplicates"]:
        orig = images[group["original"]]
        ow, oh = probe(orig).width, probe(orig).height
        for key, op in group["variants"].items():
            ops.add(op)
            info = probe(images[key])
            assert images[key] != orig
            assert truth["samples"][key]["source"] == truth["samples"][group["original"]]["source"]
            if op == "resize":
                assert (info.width, info.height) == (ow // 2, oh // 2)
            elif op == "crop":
                assert 0.85 * ow < info.width < ow and 0.85 * oh < info.height < oh
            else:
                assert (info.width, info.height) == (ow, oh)
    assert ops == {"crop", "resize", "reencode", "brightness", "watermark"}


def test_watermarks_offensive_and_cp1252_are_kept_samples(demo):
    _, truth = demo
    samples = truth["samples"]
    assert truth["watermarked"] and set(truth["watermarked"]) <= set(samples)
    assert {samples[k]["source"] == "synthetic" for k in truth["watermarked"]} == {True, False}
    assert truth["offensive"] and set(truth["offensive"]) <= set(samples)
    swear = re.compile(r"fuck|shit|stupid|dumb|crap|idiot|ugly", re.IGNORECASE)
    assert all(swear.search(samples[k]["caption"]) for k in truth["offensive"])
    clean = set(samples) - set(truth["offensive"])
    assert not any(swear.search(samples[k]["caption"]) for k in clean)
    assert all(re.search(r"[^\x00-\x7f]", samples[k]["caption"]) for k in truth["cp1252_captions"])


def test_concept_counts_match_a_word_boundary_search(demo):
    _, truth = demo
    vocab = truth["concept_vocabulary"]
    assert vocab["shape"] == list(SHAPES)
    words = [w for group in vocab.values() for w in group]
    assert len(words) == len(set(words))
    patterns = {w: re.compile(rf"\b{w}(?:es|s)?\b", re.IGNORECASE) for w in words}
    counts = dict.fromkeys(words, 0)
    for key, s in truth["samples"].items():
        found = [w for w in words if patterns[w].search(s["caption"])]
        assert found == s["concepts"], key
        for w in found:
            counts[w] += 1
        shapes = [w for w in found if w in vocab["shape"]]
        # a generated scene names exactly one shape (its own, or another scene's when planted
        # so); a photo caption, a file name, "click here" or SEO text names none
        kind = truth["uninformative_captions"].get(key, {}).get("kind")
        blank = kind not in (None, "other scene")
        assert len(shapes) == (1 if s["source"] == "synthetic" and not blank else 0), s["caption"]
    assert counts == truth["concept_counts"]


def test_shape_counts_follow_the_zipf_law(demo):
    _, truth = demo
    counts = [truth["concept_counts"][s] for s in truth["concept_vocabulary"]["shape"]]
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))
    assert counts[0] > 5 * counts[-1]
    total = sum(counts)
    assert counts == zipf_counts(total, len(SHAPES), truth["zipf_exponent"])
    xs = [math.log(k) for k in range(1, len(counts) + 1)]
    ys = [math.log(c) for c in counts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    assert abs(-slope - truth["zipf_exponent"]) < 0.1


def test_zipf_counts_split_exactly():
    counts = zipf_counts(100_000, 12, 1.1)
    assert sum(counts) == 100_000
    assert all(a > b for a, b in zip(counts, counts[1:], strict=False))
    assert abs(counts[0] / counts[9] - 10**1.1) < 0.01 * 10**1.1


def test_too_few_rows_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="too few"):
        generate(tmp_path, rows=50)


def test_one_shard_still_repeats_a_key_after_its_first_use(tmp_path):
    truth = generate(tmp_path, rows=200, seed=1, shard_size=1000)
    assert truth["shards"] == ["00000.tar"]
    items = classified(tmp_path, truth)
    stems = [stem for _, stem, _, _ in items]
    repeats = [i for i, (*_, v) in enumerate(items) if v == "duplicate key"]
    assert repeats
    for i in repeats:
        assert items[stems.index(stems[i])][3] == "keep" and stems.index(stems[i]) < i


def test_uninformative_captions_say_nothing_true_of_their_image(demo):
    _, truth = demo
    planted = truth["uninformative_captions"]
    kinds = {t["kind"] for t in planted.values()}
    assert kinds == {"file name", "click here", "seo", "other scene"}
    vocab = truth["concept_vocabulary"]
    for key, t in planted.items():
        caption = truth["samples"][key]["caption"]
        assert truth["samples"][key]["source"] == "synthetic"
        assert t["shape"] in vocab["shape"] and t["colour"] in vocab["colour"]
        assert t["background"] in vocab["background"] and t["count"] in (1, 2, 3)
        named = truth["samples"][key]["concepts"]
        if t["kind"] == "other scene":  # another scene's caption: a shape, never this one
            assert t["shape"] not in named and len(set(named) & set(vocab["shape"])) == 1
        else:
            assert named == [], caption
    others = [k for k, t in planted.items() if t["kind"] == "other scene"]
    assert len(others) % 3 == 0 and len(others) >= 6
