"""clip-retrieval embedding folders: ``img_emb/img_emb_{i}.npy``, ``text_emb/text_emb_{i}.npy``
and ``metadata/metadata_{i}.parquet``, aligned row by row. Each folder is an embedding set
(``img``, ``text``) whose model is read from the folder when it says (a ``*.json`` file with a
``clip_model``/``model`` key, or the metadata parquet's key-value metadata), else "unknown"
(``python -m backend build ... --embedding-model`` names it)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from backend.sources.base import Item, Reject, Shard, SourceError
from backend.sources.table import TableSource
from backend.sources.vectors import UNKNOWN, VectorSource, check_dims, with_vectors

VECTOR_KINDS = {"img": "img_emb", "text": "text_emb"}
MODEL_KEYS = ("clip_model", "model", "model_name")


def _index(path: Path) -> int | None:
    m = re.search(r"_(\d+)\.(npy|parquet)$", path.name)
    return int(m.group(1)) if m else None


def folder_model(root: Path, meta: Path | None = None) -> str:
    """The model a clip-retrieval folder names, or ``unknown``."""
    for p in sorted(root.glob("*.json")):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            found = next((str(data[k]) for k in MODEL_KEYS if data.get(k)), None)
            if found:
                return found
    if meta is not None:
        try:
            kv = pq.read_schema(meta).metadata or {}
        except (OSError, ValueError):
            kv = {}
        for k in MODEL_KEYS:
            if k.encode() in kv:
                return kv[k.encode()].decode("utf-8", "replace")
    return UNKNOWN


class EmbeddingFolderSource:
    format = "embeddings"

    def shards(self, root: Path) -> list[Shard]:
        meta_dir = root / "metadata"
        if not meta_dir.is_dir():
            raise SourceError(f"{root} has no metadata/ folder (clip-retrieval layout expected)")
        metas = {_index(p): p for p in meta_dir.glob("*.parquet") if _index(p) is not None}
        if not metas:
            raise SourceError(f"{meta_dir} holds no metadata_N.parquet files")
        present = [k for k, folder in VECTOR_KINDS.items() if (root / folder).is_dir()]
        model = folder_model(root, metas[min(metas)])
        shards = []
        for i in sorted(metas):
            paths, sources = [metas[i]], []
            for kind in present:
                folder = VECTOR_KINDS[kind]
                p = root / folder / f"{folder}_{i}.npy"
                paths.append(p)
                sources.append(
                    VectorSource(kind, kind, model, model, "clip-retrieval folder", str(p))
                )
            shards.append(Shard(f"metadata_{i}", tuple(paths), root, tuple(sources)))
        check_dims([s.vectors for s in shards])
        return shards

    def read(self, shard: Shard) -> Iterator[Item]:
        meta = shard.paths[0]
        try:
            rows = pq.ParquetFile(meta).metadata.num_rows
        except (OSError, ValueError) as e:
            yield Reject(shard.name, "unreadable table", str(e)[:300])
            return
        items = TableSource().read(Shard(shard.name, (meta,), shard.root))
        yield from with_vectors(shard, items, rows)
