"""The image side: which concepts each image shows, by a model instead of the caption.

With CLIP image vectors whose weights load, zero-shot tagging against any vocabulary (prompt
templates averaged, top-k by cosine with a margin). Without CLIP (offline, no cached weights):
the packaged EfficientNet-Lite0's top-k ImageNet classes, for the ImageNet vocabulary only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from backend.concepts.vocab import Vocabulary, templates
from backend.store import connect

TOP_K = 5
BATCH = 32


def _rows(name: str, root: Path | None):
    con = connect(name, root)
    try:
        return (
            con.sql(
                "SELECT row_id, storage, path, byte_offset, byte_size, src_row FROM samples "
                "ORDER BY row_id"
            )
            .to_arrow_table()
            .to_pylist()
        )
    finally:
        con.close()


def imagenet_hits(
    name: str, vocab: Vocabulary, root: Path | None = None, top_k: int = TOP_K,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:  # fmt: skip
    """(row ids, concept ids) of each image's top-k ImageNet classes by the packaged model, the
    row ids that were scored (unreadable images are left out), and a note."""
    import torch

    from backend.images import open_rgb
    from backend.media import image_bytes
    from backend.models import load_effnet

    if not vocab.imagenet_class:
        raise ValueError("the packaged image model only knows ImageNet: use --vocab imagenet")
    enc = load_effnet()
    rows = _rows(name, root)
    out_r: list[np.ndarray] = []
    out_c: list[np.ndarray] = []
    scored: list[int] = []
    cls_to_concept = np.array([vocab.imagenet_class[i] for i in range(1000)], dtype=np.int32)
    for start in range(0, len(rows), BATCH):
        tensors, ids = [], []
        for r in rows[start : start + BATCH]:
            try:
                data = image_bytes(r)
                if data is None:
                    continue
                tensors.append(enc.preprocess(open_rgb(data)))
                ids.append(r["row_id"])
            except Exception:  # an unreadable image is not scored; the others go on
                continue
        if tensors:
            with torch.inference_mode():
                logits = enc.model(torch.stack(tensors).to(enc.device))
            top = logits.topk(top_k, dim=-1).indices.cpu().numpy()
            out_r.append(np.repeat(np.asarray(ids, np.int64), top_k))
            out_c.append(cls_to_concept[top.ravel()])
            scored.extend(ids)
        if progress:
            progress("image concepts", min(start + BATCH, len(rows)), len(rows))
    note = f"image side: top-{top_k} ImageNet classes of {enc.name}"
    if not out_r:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64), note
    return np.concatenate(out_r), np.concatenate(out_c), np.asarray(scored, np.int64), note


def clip_hits(
    name: str, vocab: Vocabulary, root: Path | None = None, top_k: int = TOP_K,
    margin: float = 0.02,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:  # fmt: skip
    """Zero-shot tags from the dataset's CLIP image vectors: each image's top-k concepts whose
    cosine is within ``margin`` of its best. Raises ModelUnavailable (with why) when the
    dataset has no CLIP image vectors or the CLIP weights cannot be loaded."""
    from backend.embed import load_vectors
    from backend.embedding_sets import describe
    from backend.models import ModelUnavailable, checkpoint_changed, load_clip

    info = describe(name, root).get("kinds", {}).get("img", {})
    model = str(info.get("model", ""))
    if not model.startswith("open_clip:"):
        raise ModelUnavailable("no CLIP image vectors: run `python -m backend embed NAME` with "
                               "CLIP weights available (offline they are not)")  # fmt: skip
    arch, tag = model.removeprefix("open_clip:").split("/", 1)
    if why := checkpoint_changed(name, info):
        raise ModelUnavailable(why)
    enc = load_clip(arch, tag, checkpoint=info.get("checkpoint"))
    prompts = templates()
    text = np.stack([
        enc.encode_texts([t(p) for t in prompts]).mean(0) for p in
        (ph[0] for ph in vocab.phrasings)
    ])  # fmt: skip
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    img = np.asarray(load_vectors(name, "img", root), dtype=np.float32)
    ok = np.isfinite(img).all(1)
    scored = np.flatnonzero(ok)
    sims = img[ok] @ text.T
    k = min(top_k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    best = sims.max(1, keepdims=True)
    keep = np.take_along_axis(sims, top, 1) >= best - margin
    rows = np.repeat(scored, k).reshape(-1, k)[keep]
    return (
        rows.astype(np.int64),
        top[keep].astype(np.int32),
        scored.astype(np.int64),
        f"image side: CLIP {model} zero-shot, top-{k} within {margin} of the best",
    )
