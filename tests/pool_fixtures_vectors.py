"""Shipped vectors for the generated pools of :mod:`tests.pool_fixtures`, with planted truth.

:func:`datacomp_pool` writes DataComp shards (``<stem>.parquet`` from
:func:`tests.pool_fixtures.datacomp`) and the row-aligned ``<stem>.npz`` beside each
(``b32_img``, ``b32_txt``, ``l14_img``, ``l14_txt``, float16, unit length). Each row's image and
text vectors sit near the direction of its caption's concept (row ``i`` shows ``WORDS[i % 8]``),
so a caption's text vector points at the images of the same concept; ``twins`` pairs of rows
have near-identical image vectors (a planted semantic duplicate, found by nothing else).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.pool_fixtures import WORDS, datacomp

DIMS = {"b32": 512, "l14": 768}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def vectors_for(rows: int, seed: int, dim: int, concept_of: np.ndarray) -> dict[str, np.ndarray]:
    """Image and text vectors (float32, unit length) near each row's concept direction."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(len(WORDS), dim)))
    img = _unit(centres[concept_of] + 0.9 * rng.normal(size=(rows, dim)) / np.sqrt(dim))
    txt = _unit(centres[concept_of] + 0.9 * rng.normal(size=(rows, dim)) / np.sqrt(dim))
    return {"img": img, "txt": txt}


def datacomp_pool(
    folder: Path, shards: int = 2, rows: int = 150, seed: int = 0, twins: int = 3
) -> dict[str, Any]:
    """``shards`` DataComp shards of ``rows`` rows each, with their ``.npz``; returns the truth:
    ``twins`` (pairs of global source rows, in shard order), ``concept_of`` per row, ``uids``,
    ``paths`` (parquet, npz) per shard and the float32 vectors per set before float16."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1000)
    truth: dict[str, Any] = {"paths": [], "uids": [], "concept_of": [], "twins": [], "sets": {}}
    total = shards * rows

    concept_of = np.concatenate([np.arange(rows) % len(WORDS)] * shards)  # WORDS[i % 8]
    sets = {}
    for model, dim in DIMS.items():
        v = vectors_for(total, seed + dim, dim, concept_of)
        sets[f"{model}_img"], sets[f"{model}_txt"] = v["img"], v["txt"]
    # twins: row a's image vector copied to row b with a little noise, across shards when there
    # are several (b in the last shard), so the pair is found only through the vectors
    picks = rng.choice(rows, size=2 * twins, replace=False)
    for t in range(twins):
        a, b = int(picks[2 * t]), (shards - 1) * rows + int(picks[2 * t + 1])
        for model, dim in DIMS.items():
            noise = 0.002 * rng.normal(size=dim)
            sets[f"{model}_img"][b] = _unit(sets[f"{model}_img"][a] + noise)
        truth["twins"].append((a, b))
    for s in range(shards):
        path, meta = datacomp(folder, n=rows, seed=seed + s, stem=f"{s:08d}")
        lo = s * rows
        npz = path.with_suffix(".npz")
        np.savez(npz, **{k: v[lo : lo + rows].astype(np.float16) for k, v in sets.items()})
        truth["paths"].append((path, npz))
        truth["uids"] += meta["uids"]
    truth["concept_of"] = concept_of.tolist()
    truth["sets"] = sets
    return truth


def rewrite_npz(npz: Path, **changes: np.ndarray | None) -> None:
    """Rewrite one shard's npz with some arrays replaced (``None`` drops a key)."""
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k, None)
        else:
            arrays[k] = v
    np.savez(npz, **arrays)
