"""DataComp's ``image_based`` baseline: keep images whose cluster is one ImageNet lands in.

DataComp (``baselines/apply_filter.py``, ``image_based_clustering.py``): a caption filter first
(fastText says English, more than one fastText token, more than five characters); k-means
(faiss, 20 iterations, L2) on the pool's ``l14_img`` vectors, about 128 rows per centroid
(100,000 centroids for the 12.8M-row small pool); each ImageNet-1k *training image*'s OpenAI
ViT-L/14 embedding is assigned to its most similar centroid (dot product), and a row is kept
when its own most similar centroid is one of those.

Here, the same steps on the dataset's default image vectors, with two things that can differ:

- the targets: DataComp's ImageNet-1k image embeddings when the user gives them
  (``targets``: an ``.npy`` of shape (n, dim), or DataComp's ``in1k_clip_vit_l14_*.pt`` with
  ``image_features``), made by the model that made the dataset's vectors; otherwise the text
  embeddings of the 1,000 ImageNet-1k class names ("a photo of a {name}.", names from timm's
  synset list) by that model's text tower, which must load here: text vectors stand in for
  images, across CLIP's modality gap (said in the notes);
- the centroids: trained here on (up to :data:`TRAIN_MAX` of) the caption-filtered rows, not
  DataComp's released centroids of its own pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

ROWS_PER_CLUSTER = 128  # DataComp small: 12.8M rows, 100,000 centroids
TRAIN_MAX = 200_000  # rows k-means trains on (a seeded sample beyond that)
BATCH = 65_536
_FT_SPACE = (" ", "\n", "\r", "\t", "\v", "\f", "\0")  # what fastText's tokenizer splits on


class ImageBasedUnavailable(ValueError):
    """No image vectors, or no targets: the message says what to run or give."""


def fasttext_tokens(text: str) -> int:
    """How many tokens ``fasttext.tokenize`` gives (split on its whitespace, empties dropped)."""
    for ch in _FT_SPACE[1:]:
        text = text.replace(ch, " ")
    return len([t for t in text.split(" ") if t])


def caption_filter(con: Any) -> np.ndarray:
    """Sorted row ids passing DataComp's image-based caption filter (needs ``language``)."""
    reader = con.sql("SELECT row_id, caption, language FROM samples ORDER BY row_id") \
        .to_arrow_reader(BATCH)  # fmt: skip
    keep = []
    for b in reader:
        for rid, cap, lang in zip(*(b.column(i).to_pylist() for i in range(3)), strict=True):
            if lang == "en" and cap and fasttext_tokens(cap) > 1 and len(cap) > 5:
                keep.append(rid)
    return np.asarray(keep, dtype=np.int64)


def load_targets(path: Path) -> np.ndarray:
    """ImageNet image embeddings from ``path``: ``.npy`` (n, dim) or DataComp's ``.pt``."""
    path = Path(path)
    if not path.is_file():
        raise ImageBasedUnavailable(f"no targets file at {path}")
    if path.suffix == ".pt":
        import torch

        data = torch.load(path, map_location="cpu", weights_only=False)
        arr = data["image_features"] if isinstance(data, dict) else data
        return np.asarray(arr, dtype=np.float32)
    return np.asarray(np.load(path), dtype=np.float32)


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names (first lemma of each synset), from timm's files."""
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise ImageBasedUnavailable("the ImageNet-1k class list comes from timm: not installed")
    info = Path(spec.submodule_search_locations[0]) / "data" / "_info"
    ids = (info / "imagenet_synsets.txt").read_text().split()
    names = dict(ln.split("\t", 1) for ln in (info / "imagenet_synset_to_lemma.txt")
                 .read_text().splitlines())  # fmt: skip
    return [names[i].split(",")[0].strip() for i in ids]


def prompt_targets(dataset: str, root: Path | None) -> tuple[np.ndarray, str]:
    """Text embeddings of the ImageNet-1k class prompts by the image vectors' own model."""
    from backend.embedding_sets import describe
    from backend.models import ModelUnavailable, checkpoint_changed
    from backend.search import encoder_for

    info = describe(dataset, root).get("kinds", {}).get("img", {})
    model = str(info.get("model") or "")
    how = ("give ImageNet-1k image embeddings of that model instead "
           "(--image-targets FILE.npy)")  # fmt: skip
    if not model.startswith("open_clip:"):
        raise ImageBasedUnavailable(f"image_based needs ImageNet targets: the image vectors "
                                    f"({model or 'unknown model'}) have no text tower here; "
                                    + how)  # fmt: skip
    if why := checkpoint_changed(dataset, info):
        raise ImageBasedUnavailable(why)
    try:
        enc = encoder_for(model, info.get("checkpoint"))
    except ModelUnavailable as e:
        raise ImageBasedUnavailable(f"image_based: {str(e).rstrip('.')}; {how}") from None
    names = imagenet_class_names()
    return enc.encode_texts([f"a photo of a {n}." for n in names]), model


def kmeans(vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """DataComp's ``train_kmeans``: faiss k-means, 20 iterations, L2, no subsampling."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    cl = faiss.Clustering(x.shape[1], k)
    cl.niter, cl.seed, cl.max_points_per_centroid = 20, seed, 10_000_000
    index = faiss.IndexFlatL2(x.shape[1])
    cl.train(x, index)
    return faiss.vector_float_to_array(cl.centroids).reshape(k, x.shape[1])


def nearest(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """DataComp's ``get_centroid_ids_gpu``: argmax of the dot product, in batches."""
    out = np.empty(len(features), dtype=np.int64)
    for lo in range(0, len(features), BATCH):
        f = np.asarray(features[lo : lo + BATCH], dtype=np.float32)
        out[lo : lo + len(f)] = np.argmax(f @ centroids.T, axis=1)
    return out


def image_based_ids(con: Any, dataset: str, root: Path | None, notes: list[str],
                    targets: Path | None = None, clusters: int | None = None,
                    seed: int = 0) -> np.ndarray:  # fmt: skip
    """Sorted row ids DataComp's image-based rule keeps (``notes`` gets what was used)."""
    from backend.embed import load_vectors
    from backend.embedding_sets import describe

    try:
        img = load_vectors(dataset, "img", root)
    except FileNotFoundError as e:
        raise ImageBasedUnavailable(str(e)) from None
    if targets is not None:
        tgt, what = load_targets(targets), f"ImageNet embeddings from {Path(targets).name}"
    else:
        tgt, model = prompt_targets(dataset, root)
        what = (f"text embeddings of the 1,000 ImageNet-1k class prompts by {model} (text "
                "stands in for DataComp's ImageNet training images)")  # fmt: skip
    if tgt.ndim != 2 or tgt.shape[1] != img.shape[1]:
        raise ImageBasedUnavailable(f"targets have shape {tgt.shape}; the image vectors have "
                                    f"dimension {img.shape[1]}")  # fmt: skip
    rows = caption_filter(con)
    if not len(rows):
        return rows
    k = int(clusters or max(1, round(len(rows) / ROWS_PER_CLUSTER)))
    k = min(k, len(rows))
    rng = np.random.default_rng(seed)
    train = rows if len(rows) <= TRAIN_MAX else np.sort(rng.choice(rows, TRAIN_MAX, replace=False))
    cents = kmeans(np.asarray(img[train], dtype=np.float32), k, seed)
    hit = np.unique(nearest(tgt, cents))
    keep = np.isin(nearest(img[rows], cents), hit)  # fancy indexing copies only these rows
    model = describe(dataset, root).get("kinds", {}).get("img", {}).get("model", "unknown")
    notes.append(f"{k} k-means centroids of {len(rows):,} caption-filtered image vectors "
                 f"({model}); targets: {what}; {len(hit)} centroids hit")  # fmt: skip
    return rows[keep]
