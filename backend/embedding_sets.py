"""Embedding sets: the vectors a dataset holds, each with its model, dimension and source.

A dataset may hold several sets (DataComp ships ``l14_img``, ``l14_txt``, ``b32_img``,
``b32_txt``; the embed step computes others). Every step reads the *default* image and text
sets, kept where they always were (``embeddings/img.npy``, ``embeddings/text.npy``); the other
sets wait in ``embeddings/sets/<set>.npy``. ``embeddings/sets.json`` lists them all::

    {"default": {"img": "l14_img", "text": "l14_txt"},
     "sets": {"l14_img": {"kind": "img", "model": "open_clip:ViT-L-14/openai", "dim": 768,
                          "source": "shipped", "rows": 1000, "file": "img.npy", ...}, ...}}

``use`` swaps another set in as the default (files are renamed, never copied); the index and
map are then rebuilt from it by their own commands.

Precision: shipped vectors are stored as float16. DataComp ships float16, so its vectors are
kept exactly as given; float32 sources (clip-retrieval, HF columns) are rounded to float16
unless the build is asked to ``keep_precision`` (README "Bring your pool" gives the recall
cost, measured by ``bench/ingest.py --precision``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from backend import paths
from backend.manifest import read_manifest, write_json_atomic
from backend.sources.base import SourceError
from backend.sources.vectors import UNKNOWN, VectorSource, header, open_array

REGISTRY = "sets.json"
COPY_ROWS = 65_536  # rows copied at a time from a shard's vectors into the dataset's file
KIND_FILES = {"img": "img.npy", "text": "text.npy"}


def registry_path(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / "embeddings" / REGISTRY


def read_registry(name: str, root: Path | None = None) -> dict[str, Any]:
    return read_manifest(registry_path(name, root)) or {"default": {}, "sets": {}}


def _rank(info: dict[str, Any]) -> tuple:
    """Best first: a model the registry can load, then the larger model (L/14 before B/32)."""
    return (info["model"] == UNKNOWN, -info["dim"], info["set"])


def choose_defaults(sets: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The default image set (best model), and the text set of the same model when shipped."""
    out: dict[str, str] = {}
    for kind in ("img", "text"):
        cands = sorted(({**v, "set": k} for k, v in sets.items() if v["kind"] == kind), key=_rank)
        if kind == "text" and "img" in out:
            same = [c for c in cands if c["model"] == sets[out["img"]]["model"]]
            cands = same + [c for c in cands if c not in same]
        if cands:
            out[kind] = cands[0]["set"]
    return out


def _model_name(given: str | None) -> str | None:
    """``ViT-B-32/openai`` → ``open_clip:ViT-B-32/openai`` (what the model registry loads)."""
    if not given:
        return None
    return given if given.startswith("open_clip:") or "/" not in given else f"open_clip:{given}"


def gather(
    shards_dir: Path,
    out: Path,
    order: dict[str, np.ndarray],
    n: int,
    keep_precision: bool = False,
    model: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Copy each shard's shipped vectors of its kept rows, in row-id order, into one file per
    set under ``out`` (a shard's vectors are read once, memory-mapped where they can be).
    Returns the registry's ``sets``."""
    plans: dict[str, list[tuple[int, VectorSource]]] = {}
    for i in range(n):
        done = read_manifest(shards_dir / f"{i:05d}.done.json")
        for src in done.get("vector_sets", []):
            plans.setdefault(src["set"], []).append((i, VectorSource(**src)))
    shutil.rmtree(out, ignore_errors=True)
    if not plans:
        return {}
    shard_idx, seq = order["shard_idx"], order["seq"]
    sets: dict[str, dict[str, Any]] = {}
    defaults = choose_defaults(
        {s: {"kind": p[0][1].kind, "model": p[0][1].model, "dim": header(p[0][1])[1]}
         for s, p in plans.items()}
    )  # fmt: skip
    for set_name, parts in plans.items():
        first = parts[0][1]
        rel = next((KIND_FILES[k] for k, v in defaults.items() if v == set_name), None)
        rel = rel or f"sets/{set_name}.npy"
        info = _copy_set(parts, shards_dir, out / rel, shard_idx, seq, keep_precision)
        named = _model_name(model) if first.model == UNKNOWN and model else None
        sets[set_name] = {
            "kind": first.kind,
            "model": named or _model_name(first.model) or first.model,
            "label": (model if named else first.label),
            "origin": first.origin,
            "source": "shipped",
            "rows": int(len(seq)),
            "file": rel,
            **info,
        }
    return sets


def _copy_set(
    parts: list[tuple[int, VectorSource]],
    shards_dir: Path,
    dest: Path,
    shard_idx: np.ndarray,
    seq: np.ndarray,
    keep_precision: bool,
) -> dict[str, Any]:
    """One set's vectors into ``dest``; its dim and the dtypes given and stored."""
    arrays = {i: src for i, src in parts}
    first = open_array(parts[0][1])
    dim, given = int(first.shape[1]), np.dtype(first.dtype)
    del first
    stored = given if keep_precision or given == np.float16 else np.dtype(np.float16)
    dest.parent.mkdir(parents=True, exist_ok=True)
    header = _create(dest, stored, (len(seq), dim))
    present = set(np.unique(shard_idx).tolist())
    with dest.open("r+b") as out:  # plain writes: the file's pages are not mapped here
        for i in sorted(present):
            if i not in arrays:
                raise SourceError(f"shard {i} kept rows but shipped no {parts[0][1].set} vectors")
            targets = np.flatnonzero(shard_idx == i)
            vec_rows = np.load(shards_dir / f"{i:05d}.vecrows.npy")[seq[targets]]
            src = open_array(arrays[i])
            if src.shape[1] != dim:
                raise SourceError(
                    f"{arrays[i].set} vectors have different dimensions across shards: {dim}-d "
                    f"in {parts[0][1].where} but {src.shape[1]}-d in {arrays[i].where}"
                )
            for lo in range(0, len(targets), COPY_ROWS):
                _write_rows(out, header, src, targets[lo : lo + COPY_ROWS],
                            vec_rows[lo : lo + COPY_ROWS], stored)  # fmt: skip
            del src
    return {"dim": dim, "given_dtype": str(given), "dtype": str(stored)}


def _create(dest: Path, dtype: np.dtype, shape: tuple[int, int]) -> int:
    """An ``.npy`` of ``shape`` (its data zero-filled, sparse); returns where the data starts."""
    arr = np.lib.format.open_memmap(dest, "w+", dtype, shape)
    offset = int(arr.offset)
    del arr
    return offset


def _write_rows(out, header: int, src, targets: np.ndarray, rows: np.ndarray, dtype) -> None:
    """Source ``rows`` written at row positions ``targets`` (ascending) of the open file: one
    contiguous read of the source, one write per run of consecutive targets."""
    if len(rows) == 0:
        return
    lo = int(rows.min())
    if rows[-1] - rows[0] == len(rows) - 1 and (np.diff(rows) == 1).all():
        block = src[lo : lo + len(rows)]
    else:
        block = src[lo : int(rows.max()) + 1][rows - lo]
    block = np.ascontiguousarray(block, dtype=dtype)
    width = block.shape[1] * block.itemsize
    cuts = [0, *(np.flatnonzero(np.diff(targets) != 1) + 1).tolist(), len(targets)]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        out.seek(header + int(targets[a]) * width)
        out.write(memoryview(block[a:b]).cast("B"))


def save_registry(out: Path, sets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    reg = {"default": choose_defaults(sets), "sets": sets}
    write_json_atomic(out / REGISTRY, reg)
    return reg


def embed_kinds(reg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The embed step's ``kinds`` record for the default sets (what every step reads)."""
    kinds = {}
    for kind, set_name in reg.get("default", {}).items():
        info = reg["sets"][set_name]
        kinds[kind] = {
            "given_by_source": True,
            "source": "shipped",
            "set": set_name,
            "model": info["model"],
            "label": info["label"],
            "origin": info["origin"],
            "dim": info["dim"],
            "rows": info["rows"],
            "dtype": info["dtype"],
        }
    return kinds


def words(info: dict[str, Any]) -> str:
    """A set in words: ``OpenAI CLIP ViT-L/14, shipped (DataComp .npz, set l14_img)``."""
    label = info.get("label") or info.get("model") or "?"
    label = "a model it does not name" if label == UNKNOWN else label
    if info.get("source") == "shipped" or info.get("given_by_source"):
        return f"{label}, shipped ({info.get('origin', 'by the source')}, set {info.get('set')})"
    return f"{label}, computed here"


def summary(name: str, root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every set of ``name`` for ``info``: ``{set: {kind, dim, model, source, rows, default}}``
    (computed vectors appear under their kind, ``img`` or ``text``)."""
    reg = read_registry(name, root)
    out = {}
    for set_name, info in reg.get("sets", {}).items():
        out[set_name] = {
            "kind": info["kind"],
            "dim": info["dim"],
            "model": info["model"],
            "source": "shipped",
            "origin": info.get("origin"),
            "rows": info["rows"],
            "dtype": info.get("dtype"),
            "default": reg["default"].get(info["kind"]) == set_name,
        }
    for kind, info in describe(name, root).get("kinds", {}).items():
        if info.get("given_by_source"):
            continue
        out[kind] = {
            "kind": kind,
            "dim": info.get("dim"),
            "model": info.get("model"),
            "source": "computed",
            "rows": info.get("rows"),
            "dtype": "float16",
            "default": True,
        }
    return out


def use(name: str, wanted: str, root: Path | None = None) -> dict[str, Any]:
    """Make shipped set ``wanted`` (or every set of a model prefix: ``b32``) the default of its
    kind by renaming files; returns the new registry. The index and map must then be rebuilt."""
    from backend.manifest import update_manifest

    reg = read_registry(name, root)
    sets = reg.get("sets", {})
    chosen = [s for s in sets if s == wanted] or [s for s in sets if s.startswith(f"{wanted}_")]
    if not chosen:
        have = ", ".join(sets) or "none"
        raise ValueError(f"{name!r} has no shipped embedding set {wanted!r} (it has: {have})")
    folder = registry_path(name, root).parent
    for set_name in chosen:
        kind = sets[set_name]["kind"]
        old = reg["default"].get(kind)
        if old == set_name:
            continue
        if old is None and (folder / KIND_FILES[kind]).exists():  # computed here: keep them
            raise ValueError(
                f"{name!r}'s {kind} vectors were computed here ({KIND_FILES[kind]}); a shipped "
                f"set cannot replace them: rebuild the dataset to use {set_name}"
            )
        if old:
            aside = f"sets/{old}.npy"
            (folder / "sets").mkdir(exist_ok=True)
            os.replace(folder / sets[old]["file"], folder / aside)
            sets[old]["file"] = aside
        os.replace(folder / sets[set_name]["file"], folder / KIND_FILES[kind])
        sets[set_name]["file"] = KIND_FILES[kind]
        reg["default"][kind] = set_name
        write_json_atomic(registry_path(name, root), reg)  # after each rename: never stale
    _record(name, root, reg, update_manifest)
    return reg


def name_model(name: str, model: str, root: Path | None = None) -> dict[str, Any]:
    """Name the model of shipped sets whose model is unknown (clip-retrieval folders)."""
    from backend.manifest import update_manifest

    reg = read_registry(name, root)
    unknown = [s for s, v in reg.get("sets", {}).items() if v["model"] == UNKNOWN]
    if not unknown:
        raise ValueError(f"{name!r} has no shipped embedding set of unknown model to name")
    for s in unknown:
        reg["sets"][s].update(model=_model_name(model), label=model)
    write_json_atomic(registry_path(name, root), reg)
    _record(name, root, reg, update_manifest)
    return reg


def _record(name: str, root: Path | None, reg: dict[str, Any], update_manifest) -> None:
    rec = describe(name, root)
    kinds = {k: v for k, v in rec.get("kinds", {}).items() if not v.get("given_by_source")}
    kinds.update(embed_kinds(reg))
    rec.update(kinds=kinds, cross_modal=same_model(kinds))
    models = {
        "image": kinds.get("img", {}).get("model"),
        "text": kinds.get("text", {}).get("model"),
    }
    update_manifest(paths.manifest_path(name, root), "embed", rec, models)


def describe(name: str, root: Path | None = None) -> dict[str, Any]:
    """The embed step's manifest record (empty when it has not run)."""
    return json.loads(
        json.dumps(read_manifest(paths.manifest_path(name, root)).get("steps", {}).get("embed", {}))
    )


def same_model(kinds: dict[str, dict[str, Any]]) -> bool:
    """Image and text vectors in one space: both present and made by the same model."""
    img, text = kinds.get("img", {}).get("model"), kinds.get("text", {}).get("model")
    return bool(img and text and img == text)


def source_dict(src: VectorSource) -> dict[str, Any]:
    return asdict(src)
