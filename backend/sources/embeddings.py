"""clip-retrieval embedding folders: ``img_emb/img_emb_{i}.npy``, ``text_emb/text_emb_{i}.npy``
and ``metadata/metadata_{i}.parquet``, aligned row by row. The vectors are kept as given."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from backend.sources.base import Item, Reject, Sample, Shard, SourceError
from backend.sources.table import TableSource

VECTOR_KINDS = {"img": "img_emb", "text": "text_emb"}
F16_MAX = float(np.finfo(np.float16).max)


def _index(path: Path) -> int | None:
    m = re.search(r"_(\d+)\.(npy|parquet)$", path.name)
    return int(m.group(1)) if m else None


class EmbeddingFolderSource:
    format = "embeddings"

    def shards(self, root: Path) -> list[Shard]:
        meta_dir = root / "metadata"
        if not meta_dir.is_dir():
            raise SourceError(f"{root} has no metadata/ folder (clip-retrieval layout expected)")
        metas = {_index(p): p for p in meta_dir.glob("*.parquet") if _index(p) is not None}
        if not metas:
            raise SourceError(f"{meta_dir} holds no metadata_N.parquet files")
        shards = []
        for i in sorted(metas):
            paths = [metas[i]]
            for folder in VECTOR_KINDS.values():
                p = root / folder / f"{folder}_{i}.npy"
                if p.is_file():
                    paths.append(p)
            shards.append(Shard(f"metadata_{i}", tuple(paths), root))
        return shards

    def read(self, shard: Shard) -> Iterator[Item]:
        meta = shard.paths[0]
        vectors: dict[str, np.ndarray] = {}
        for kind, folder in VECTOR_KINDS.items():
            p = next((q for q in shard.paths[1:] if q.parent.name == folder), None)
            if p is None:
                continue
            try:
                vectors[kind] = np.load(p, mmap_mode="r")
            except (ValueError, OSError) as e:
                yield Reject(f"{shard.name}#{kind}", "unreadable embeddings", f"{p.name}: {e}")
                return
            if vectors[kind].ndim != 2:
                yield Reject(f"{shard.name}#{kind}", "unreadable embeddings", f"{p.name} not 2-D")
                return
        table = TableSource()
        items = list(table.read(Shard(shard.name, (meta,), shard.root)))
        sizes = {k: v.shape[0] for k, v in vectors.items()}
        if any(n != len(items) for n in sizes.values()):
            yield Reject(
                shard.name,
                "embeddings misaligned",
                f"{meta.name} has {len(items)} rows but embeddings have {sizes}",
            )
            return
        for row, item in enumerate(items):
            if isinstance(item, Sample):
                item.vectors = {k: np.asarray(v[row], dtype=np.float32) for k, v in vectors.items()}
                bad = [k for k, v in item.vectors.items() if not np.isfinite(v).all()]
                if bad:
                    yield Reject(item.key, "non-finite embedding", ", ".join(bad))
                    continue
                big = [k for k, v in item.vectors.items() if np.abs(v).max(initial=0) > F16_MAX]
                if big:  # vectors are stored as float16, where these would become inf
                    detail = f"{', '.join(big)}: values beyond ±{F16_MAX:g} (float16)"
                    yield Reject(item.key, "embedding out of range", detail)
                    continue
            yield item
