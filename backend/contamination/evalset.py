"""An evaluation set read for a contamination audit, through the same source readers as a pool.

An image folder, WebDataset tars, HF-style parquet with image bytes (each image hashed with
sha256 and pHash, and embedded with the *pool's* image model when it can be loaded), or a
clip-retrieval embedding folder (vectors only, refused unless its model is the pool's). Images
that do not decode are counted per reason and kept out, never silently dropped. Only small
facts are kept per image (hashes, caption, where its bytes are, its vector): 10^5 eval images
take about 300 MB with 768-d vectors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backend.images import BadImage, probe
from backend.safety.phash import phash64
from backend.sources import Reject, Sample, SourceError, detect_format, reader_for
from backend.sources.base import STORAGE_FILE

EMBED_BATCH = 64
LOCATION = ("storage", "path", "byte_offset", "byte_size", "src_row")
Embedder = Callable[[list[bytes]], np.ndarray]
Progress = Callable[[str, int, int], None]


class EvalSetError(ValueError):
    """An eval set that cannot be audited (empty, unreadable, other model): the message says
    why and what to give instead."""


@dataclass
class EvalSet:
    """What the audit needs of each eval image, in reading order (the index is its id)."""

    name: str
    path: str
    fmt: str
    keys: list[str] = field(default_factory=list)
    captions: list[str | None] = field(default_factory=list)
    sha256: list[str | None] = field(default_factory=list)
    phash: list[int | None] = field(default_factory=list)
    where: list[dict[str, Any]] = field(default_factory=list)  # how to read its bytes again
    vectors: np.ndarray | None = None  # float32, one row per image (NaN: not embedded)
    vector_model: str | None = None
    vector_source: str = ""  # "computed here" or who shipped them
    rejects: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.keys)


def _samples(path: Path, fmt: str, rejects: Counter) -> Iterator[Sample]:
    reader = reader_for(fmt)
    for shard in reader.shards(path):
        for item in reader.read(shard):
            if isinstance(item, Reject):
                uncaptioned = _uncaptioned(item, shard.root) if fmt == "folder" else None
                if uncaptioned is None:
                    rejects[item.reason] += 1
                    continue
                item = uncaptioned
            yield item


def _uncaptioned(r: Reject, root: Path | None) -> Sample | None:
    """An image the folder reader refused only for want of a caption: eval images (ImageNet's
    validation folder …) often have none, and their pixels are what the audit needs."""
    if r.reason != "missing caption" or root is None:
        return None
    img = root / Path(r.key).parent / r.detail
    try:
        data = img.read_bytes()
    except OSError:
        return None
    return Sample(key=r.key, caption=None, storage=STORAGE_FILE, path=str(img.resolve()),
                  image=data)


def _image_facts(s: Sample, rejects: Counter) -> tuple[str, int | None] | None:
    """(sha256, pHash) of a sample's image, or None (counted) when it has no usable image."""
    if not s.image:
        rejects["no image bytes (url only)"] += 1
        return None
    try:
        sha = probe(s.image).sha256
    except BadImage:
        rejects["not a usable image"] += 1
        return None
    try:
        ph = phash64(s.image)
    except (OSError, ValueError):  # decodes its header but not its pixels
        rejects["image does not decode"] += 1
        return None
    return sha, ph


def read_images(
    path: Path, name: str, fmt: str = "auto", embed: Embedder | None = None,
    progress: Progress | None = None,
) -> EvalSet:  # fmt: skip
    """Read an image eval set (folder, tars, parquet): hashes, captions, locations, and the
    vectors ``embed`` gives (the pool's model), ``EMBED_BATCH`` images at a time."""
    ev = EvalSet(name, str(path), fmt)
    vecs: list[np.ndarray] = []
    batch: list[bytes] = []

    def flush() -> None:
        if batch and embed is not None:
            vecs.append(np.asarray(embed(batch), dtype=np.float32))
        batch.clear()

    for s in _samples(path, fmt, ev.rejects):
        facts = _image_facts(s, ev.rejects)
        if facts is None:
            continue
        ev.keys.append(s.key)
        ev.captions.append(s.caption)
        ev.sha256.append(facts[0])
        ev.phash.append(facts[1])
        ev.where.append({k: getattr(s, k) for k in LOCATION})
        batch.append(s.image)
        if len(batch) >= EMBED_BATCH:
            flush()
            if progress:
                progress("eval images", len(ev.keys), 0)
    flush()
    if embed is not None and vecs:
        ev.vectors = np.concatenate(vecs)
        ev.vector_source = "computed here"
    return ev


def read_vectors(path: Path, name: str) -> EvalSet:
    """Read a clip-retrieval embedding folder (``img_emb/`` + ``metadata/``) as an eval set of
    vectors and captions (no bytes: no hash matching)."""
    from backend.sources.embeddings import EmbeddingFolderSource
    from backend.sources.vectors import open_array

    ev = EvalSet(name, str(path), "embeddings")
    reader = EmbeddingFolderSource()
    parts = []
    for shard in reader.shards(path):
        img = next((v for v in shard.vectors if v.kind == "img"), None)
        if img is None:
            raise EvalSetError(f"{path} has no img_emb/ vectors: an eval set needs image vectors")
        ev.vector_model, ev.vector_source = img.model, img.origin
        rows = []
        for item in reader.read(shard):
            if isinstance(item, Reject):
                ev.rejects[item.reason] += 1
                continue
            ev.keys.append(item.key)
            ev.captions.append(item.caption)
            ev.sha256.append(None)
            ev.phash.append(None)
            ev.where.append({k: getattr(item, k) for k in LOCATION})
            rows.append(item.vec_row)
        parts.append(np.asarray(open_array(img)[np.asarray(rows, dtype=np.int64)], np.float32))
    ev.vectors = np.concatenate(parts) if parts else None
    return ev


def read_eval(
    path: Path, name: str, fmt: str = "auto", embed: Embedder | None = None,
    progress: Progress | None = None,
) -> EvalSet:  # fmt: skip
    """The eval set at ``path``; raises :class:`EvalSetError` when it holds no usable image."""
    try:
        fmt = detect_format(path) if fmt == "auto" else fmt
        if fmt == "embeddings":
            ev = read_vectors(path, name)
        else:
            ev = read_images(path, name, fmt, embed, progress)
    except SourceError as e:
        raise EvalSetError(f"eval set {path}: {e}") from None
    if not len(ev):
        why = "; ".join(f"{n} {r}" for r, n in ev.rejects.most_common()) or "nothing in it"
        raise EvalSetError(f"eval set {path} has no usable image ({why}): nothing to audit")
    return ev
