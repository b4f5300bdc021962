"""Generated stand-ins of the public pools, same schema as the real files, with planted truth.

Each writer puts a few hundred rows in ``folder`` and returns ``(path, truth)``: the path to
build from and a dict of what was planted (counts above 0.5, domains, row values) for tests to
compare against. Values are deterministic for a seed. DataComp's ``.npz`` vectors beside its
parquet are added by the embeddings tests on top of :func:`datacomp`.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Planted hosts and their registered domains (public-suffix aware: bbc.co.uk, blogspot.com).
HOSTS = (
    ("i.pinimg.com", "pinimg.com", "com"),
    ("www.bbc.co.uk", "bbc.co.uk", "co.uk"),
    ("cdn.shopify.com", "shopify.com", "com"),
    ("img.example.org", "example.org", "org"),
    ("news.example.org", "example.org", "org"),
    ("photos.smugmug.de", "smugmug.de", "de"),
)
WORDS = ("a red car", "a dog on grass", "a bowl of soup", "two people walking", "a city at night",
         "a mountain lake", "a logo", "a cat on a sofa")  # fmt: skip


def _urls(n: int, rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """URLs over :data:`HOSTS` (host = i % 6), and each row's planted domain and tld."""
    urls, doms, tlds = [], [], []
    for i in range(n):
        host, dom, tld = HOSTS[i % len(HOSTS)]
        urls.append(f"https://{host}/img/{i:06d}_{int(rng.integers(1 << 30))}.jpg")
        doms.append(dom)
        tlds.append(tld)
    return urls, doms, tlds


def _captions(n: int, rng: np.random.Generator) -> list[str]:
    return [f"{WORDS[i % len(WORDS)]} #{i} {int(rng.integers(1000))}" for i in range(n)]


def _probs(n: int, rng: np.random.Generator, share: float) -> np.ndarray:
    """Probabilities with about ``share`` of them above 0.5 (none exactly 0.5)."""
    hi = rng.random(n) < share
    low = rng.uniform(0.0, 0.49, n)
    high = rng.uniform(0.51, 1.0, n)
    return np.where(hi, high, low)


def _truth(urls_doms_tlds: tuple[list[str], list[str], list[str]], **more: Any) -> dict[str, Any]:
    _, doms, tlds = urls_doms_tlds
    return {"domains": dict(Counter(doms)), "tlds": dict(Counter(tlds)), "domain_of": doms,
            "tld_of": tlds, **more}  # fmt: skip


def laion(folder: Path, n: int = 300, seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """A LAION-5B-style metadata parquet (``URL, TEXT, WIDTH, HEIGHT, similarity, punsafe,
    pwatermark, hash, SAMPLE_ID, LICENSE``)."""
    rng = np.random.default_rng(seed)
    u = _urls(n, rng)
    punsafe = _probs(n, rng, 0.12)
    pwater = _probs(n, rng, 0.2)
    sim = rng.uniform(0.18, 0.42, n)
    width = rng.integers(64, 2048, n)
    height = rng.integers(64, 2048, n)
    table = pa.table({
        "SAMPLE_ID": pa.array(np.arange(n) * 7 + 100_000, pa.int64()),
        "URL": u[0], "TEXT": _captions(n, rng),
        "HEIGHT": pa.array(height, pa.int64()), "WIDTH": pa.array(width, pa.int64()),
        "LICENSE": ["?"] * (n - n // 3) + ["cc-by"] * (n // 3),
        "similarity": pa.array(sim, pa.float64()),
        "hash": pa.array(rng.integers(-(1 << 62), 1 << 62, n), pa.int64()),
        "punsafe": pa.array(punsafe, pa.float32()), "pwatermark": pa.array(pwater, pa.float32()),
    })  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-00000-laion.parquet"
    pq.write_table(table, path)
    return path, _truth(u, rows=n, nsfw_over=int((punsafe > 0.5).sum()),
                        watermark_over=int((pwater > 0.5).sum()), punsafe=punsafe.tolist(),
                        pwatermark=pwater.tolist(), similarity=sim.tolist(),
                        width=width.tolist(), height=height.tolist())  # fmt: skip


def datacomp(folder: Path, n: int = 300, seed: int = 0, stem: str = "0000000") -> tuple[Path, dict]:
    """A DataComp / CommonPool metadata shard ``<stem>.parquet`` (``uid, url, text,
    original_width, original_height, clip_b32_similarity_score, clip_l14_similarity_score,
    face_bboxes, sha256``); the ``.npz`` beside it is not written here."""
    rng = np.random.default_rng(seed)
    u = _urls(n, rng)
    b32 = rng.uniform(0.1, 0.4, n)
    l14 = np.clip(b32 + rng.normal(0, 0.03, n), 0, 1)
    faces = [int(k) for k in rng.choice([0, 0, 0, 1, 2, 3], n)]
    boxes = [[[float(j) / 10, 0.1, float(j) / 10 + 0.05, 0.2] for j in range(k)] for k in faces]
    uids = [f"{int(x):032x}" for x in rng.integers(0, 1 << 62, n)]
    table = pa.table({
        "uid": uids, "url": u[0], "text": _captions(n, rng),
        "original_width": pa.array(rng.integers(64, 4000, n), pa.int64()),
        "original_height": pa.array(rng.integers(64, 4000, n), pa.int64()),
        "clip_b32_similarity_score": pa.array(b32, pa.float32()),
        "clip_l14_similarity_score": pa.array(l14, pa.float32()),
        "face_bboxes": pa.array(boxes, pa.list_(pa.list_(pa.float64()))),
        "sha256": [f"{int(x):064x}" for x in rng.integers(0, 1 << 62, n)],
    })  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.parquet"
    pq.write_table(table, path)
    return path, _truth(u, rows=n, uids=uids, faces=faces, b32=b32.tolist(), l14=l14.tolist())


def coyo(folder: Path, n: int = 300, seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """A COYO-700M parquet (``id, url, text, width, height, image_phash, …, num_faces,
    clip_similarity_vitb32/vitl14, nsfw_score_opennsfw2/gantman, watermark_score,
    aesthetic_score_laion_v2``)."""
    rng = np.random.default_rng(seed)
    u = _urls(n, rng)
    nsfw = _probs(n, rng, 0.1)
    water = _probs(n, rng, 0.25)
    aest = rng.uniform(3.0, 7.5, n)
    faces = rng.integers(0, 4, n)
    caps = _captions(n, rng)
    table = pa.table({
        "id": pa.array(np.arange(n) + 4_000_000_000, pa.int64()), "url": u[0], "text": caps,
        "width": pa.array(rng.integers(256, 2000, n), pa.int32()),
        "height": pa.array(rng.integers(256, 2000, n), pa.int32()),
        "image_phash": [f"{int(x):016x}" for x in rng.integers(0, 1 << 62, n)],
        "text_length": pa.array([len(c) for c in caps], pa.int32()),
        "word_count": pa.array([len(c.split()) for c in caps], pa.int32()),
        "num_tokens_bert": pa.array([len(c.split()) + 2 for c in caps], pa.int32()),
        "num_tokens_gpt": pa.array([len(c.split()) + 1 for c in caps], pa.int32()),
        "num_faces": pa.array(faces, pa.int32()),
        "clip_similarity_vitb32": pa.array(rng.uniform(0.2, 0.4, n), pa.float32()),
        "clip_similarity_vitl14": pa.array(rng.uniform(0.2, 0.4, n), pa.float32()),
        "nsfw_score_opennsfw2": pa.array(nsfw, pa.float32()),
        "nsfw_score_gantman": pa.array(rng.random(n), pa.float32()),
        "watermark_score": pa.array(water, pa.float32()),
        "aesthetic_score_laion_v2": pa.array(aest, pa.float32()),
    })  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "coyo-part-00000.parquet"
    pq.write_table(table, path)
    return path, _truth(u, rows=n, nsfw_over=int((nsfw > 0.5).sum()),
                        watermark_over=int((water > 0.5).sum()), faces=faces.tolist(),
                        aesthetic=aest.tolist())  # fmt: skip


def cc12m(folder: Path, n: int = 300, seed: int = 0, caption_first: bool = False,
          bad: bool = False) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """A CC12M TSV: ``url<TAB>caption``, no header (``caption_first``: CC3M's order). Quotes
    in captions are kept as text. ``bad`` plants three broken lines: a caption with an embedded
    tab (3 fields), and a caption split by an embedded newline (its tail line has 1 field)."""
    rng = np.random.default_rng(seed)
    u = _urls(n, rng)
    caps = _captions(n, rng)
    caps[1] = '"quoted" caption with a quote at the start'
    pairs = zip(u[0], caps, strict=True)
    lines = [f"{c}\t{url}" if caption_first else f"{url}\t{c}" for url, c in pairs]
    broken = []
    if bad:
        lines.insert(5, f"{u[0][5]}\tcaption with\tan embedded tab")
        lines.insert(9, f"{u[0][9]}\tcaption split by")
        lines.insert(10, "an embedded newline")
        broken = [5, 9, 10]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("Train_GCC-training.tsv" if caption_first else "cc12m.tsv")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # the tab line and the newline's tail are malformed (rejected); the newline's head is a
    # well-formed row with half a caption (kept): n + 1 rows, 2 rejects when ``bad``
    return path, _truth(u, rows=n + (1 if bad else 0), captions=caps, urls=u[0],
                        broken_lines=broken, malformed=2 if bad else 0)


def _png(rgb: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG")
    return buf.getvalue()


def hf(folder: Path, n: int = 200, seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """A Hugging Face parquet: ``image`` {bytes, path} structs (small PNGs of planted sizes)
    and ``text``; no URLs, so no domains."""
    rng = np.random.default_rng(seed)
    sizes = [(16 + i % 5, 12 + i % 3) for i in range(n)]
    images = [{"bytes": _png(tuple(int(x) for x in rng.integers(0, 255, 3)), s),
               "path": f"img_{i}.png"} for i, s in enumerate(sizes)]  # fmt: skip
    table = pa.table({"image": images, "text": _captions(n, rng)})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train-00000-of-00001.parquet"
    pq.write_table(table, path)
    return path, {"rows": n, "width": [s[0] for s in sizes], "height": [s[1] for s in sizes]}


WRITERS = {"laion": laion, "datacomp": datacomp, "coyo": coyo, "cc": cc12m, "hf": hf}
