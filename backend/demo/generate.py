"""Write the demo source (img2dataset's WebDataset layout) and its ground truth.

The ground truth is collected from the very items being written, so every planted problem,
every reject reason and every concept count is known exactly and can be checked after ingest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from backend.demo.concepts import ZIPF_EXPONENT, find_concepts, vocabulary
from backend.demo.plan import Entry, build_plan
from backend.demo.render import Rendered, Renderer
from backend.demo.shards import ShardWriter

URL = "https://demo.tailscope.invalid/img/{key}.jpg"
_OUR_FILES = re.compile(r"^\d{5}\.(tar|parquet)$")


def _row(e: Entry, img: Rendered | None) -> dict:
    """The fields img2dataset writes for an item both in its json and in the shard's parquet."""
    return {
        "key": e.key,
        "url": URL.format(key=e.key),
        "caption": e.meta_caption,
        "status": "success",
        "width": img.width if img else None,
        "height": img.height if img else None,
    }


def _sidecar(e: Entry, img: Rendered | None) -> bytes:
    """img2dataset's per-item json, plus typed demo extras (credit, aesthetic)."""
    meta = {
        **_row(e, img),
        "original_width": img.original_width if img else None,
        "original_height": img.original_height if img else None,
        "credit": e.credit,
        "aesthetic": e.aesthetic,
    }
    return json.dumps(meta, ensure_ascii=False).encode("utf-8")


def _members(e: Entry, img: Rendered | None) -> list[tuple[str, bytes]]:
    stem = e.stem or e.key
    members = []
    if img is not None:
        members.append((stem + img.ext, img.data))
    if e.sidecar:
        members.append((stem + ".json", _sidecar(e, img)))
    if e.txt is not None:
        members.append((stem + ".txt", e.txt))
    return sorted(members)


def _clear(out_dir: Path) -> None:
    """Remove shards and ground truth from an earlier run, so none are left over."""
    for p in out_dir.iterdir():
        if p.is_file() and (_OUR_FILES.match(p.name) or p.name == "ground_truth.json"):
            p.unlink()


class _Truth:
    """Collects the ground truth while items are written."""

    def __init__(self, seed: int, rows: int, shard_size: int) -> None:
        self.head = {"seed": seed, "rows_requested": rows, "shard_size": shard_size}
        self.shards: list[str] = []
        self.rejects: list[dict] = []
        self.samples: dict[str, dict] = {}
        self.by_hash: dict[str, list[str]] = {}
        self.near: dict[str, dict[str, str]] = {}
        self.watermarked: dict[str, str] = {}
        self.offensive: list[str] = []
        self.cp1252: list[str] = []
        self.uninformative: dict[str, dict] = {}

    def add(self, e: Entry, img: Rendered | None, shard: str) -> None:
        if e.reject is not None:
            self.rejects.append({"key": e.key, "shard": shard, "reason": e.reject})
            return
        assert e.caption is not None and img is not None
        self.samples[e.key] = {
            "shard": shard,
            "caption": e.caption,
            "source": e.source,
            "concepts": find_concepts(e.caption),
        }
        self.by_hash.setdefault(hashlib.sha256(img.data).hexdigest(), []).append(e.key)
        if e.near_dup_of is not None:
            self.near.setdefault(e.near_dup_of.key, {})[e.key] = e.near_dup_op
        if e.watermark is not None:
            self.watermarked[e.key] = e.watermark
        if e.offensive:
            self.offensive.append(e.key)
        if e.cp1252:
            self.cp1252.append(e.key)
        if e.uninformative is not None:
            spec = e.image.scene
            self.uninformative[e.key] = {"kind": e.uninformative, "shape": spec.shape,
                                         "colour": spec.colour, "count": spec.count,
                                         "background": spec.background}  # fmt: skip

    def result(self) -> dict:
        vocab = vocabulary()
        counts = Counter(c for s in self.samples.values() for c in s["concepts"])
        order = {k: i for i, k in enumerate(self.samples)}
        return {
            **self.head,
            "shards": self.shards,
            "items_total": len(self.samples) + len(self.rejects),
            "expected_samples": len(self.samples),
            "expected_rejects": len(self.rejects),
            "rejects": self.rejects,
            "samples": self.samples,
            "exact_duplicates": [keys for keys in self.by_hash.values() if len(keys) > 1],
            "near_duplicates": [
                {"original": k, "variants": self.near[k]}
                for k in sorted(self.near, key=order.__getitem__)
            ],
            "watermarked": self.watermarked,
            "offensive": self.offensive,
            "cp1252_captions": self.cp1252,
            "uninformative_captions": self.uninformative,
            "concept_vocabulary": vocab,
            "concept_counts": {c: counts[c] for group in vocab.values() for c in group},
            "zipf_exponent": ZIPF_EXPONENT,
        }


def generate(
    out_dir: Path,
    rows: int = 5000,
    seed: int = 0,
    shard_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write the demo source into out_dir and return the ground truth (also written to
    out_dir/ground_truth.json)."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    entries = build_plan(rows, seed, shard_size)  # may refuse too few rows: before any deletion
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)
    renderer = Renderer(entries, seed)
    truth = _Truth(seed, rows, shard_size)
    total, every = len(entries), max(1, len(entries) // 500)
    for start in range(0, total, shard_size):
        shard = f"{start // shard_size:05d}.tar"
        with ShardWriter(out_dir / shard) as writer:
            for e in entries[start : start + shard_size]:
                img = renderer.render(e.image) if e.image is not None else None
                for name, data in _members(e, img):
                    writer.add_member(name, data)
                writer.add_row(_row(e, img))
                truth.add(e, img, shard)
                done = len(truth.samples) + len(truth.rejects)
                if progress is not None and (done % every == 0 or done == total):
                    progress(done, total)
        truth.shards.append(shard)
    result = truth.result()
    tmp = out_dir / "ground_truth.json.tmp"
    tmp.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out_dir / "ground_truth.json")
    return result
