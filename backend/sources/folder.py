"""An image folder with sidecar captions: ``x.jpg`` + ``x.txt`` (+ optional ``x.json``)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from backend.sources.base import STORAGE_FILE, Item, Reject, Sample, Shard
from backend.sources.common import (
    URL_ALIASES,
    extra_columns,
    item_caption,
    parse_sidecar,
    pick,
)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
SIDECAR_EXTS = {".txt", ".json"}
FILES_PER_SHARD = 10_000


def _stems(root: Path) -> dict[str, dict[str, Path]]:
    """Group files by their path without extension, relative to ``root``."""
    groups: dict[str, dict[str, Path]] = defaultdict(dict)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            p = Path(dirpath) / fname
            ext = p.suffix.lower()
            if ext in IMAGE_EXTS or ext in SIDECAR_EXTS:
                stem = str(p.relative_to(root).with_suffix(""))
                groups[stem][ext] = p
    return groups


class FolderSource:
    format = "folder"

    def shards(self, root: Path) -> list[Shard]:
        groups = _stems(root)
        stems = sorted(groups)
        out = []
        for i in range(0, len(stems), FILES_PER_SHARD):
            chunk = stems[i : i + FILES_PER_SHARD]
            paths = tuple(p for s in chunk for p in sorted(groups[s].values()))
            out.append(Shard(f"{root.name}[{i // FILES_PER_SHARD}]", paths, root=root))
        return out

    def read(self, shard: Shard) -> Iterator[Item]:
        assert shard.root is not None
        root = shard.root.resolve()
        groups: dict[str, dict[str, Path]] = defaultdict(dict)
        for p in shard.paths:
            groups[str(p.relative_to(shard.root).with_suffix(""))][p.suffix.lower()] = p
        for stem in sorted(groups):
            files = groups[stem]
            images = [files[e] for e in sorted(files) if e in IMAGE_EXTS]
            if not images:
                yield Reject(stem, "missing image", "caption without an image file")
                continue
            img_path = images[0]
            for other in images[1:]:  # x.jpg and x.png: keep the first, account for the rest
                yield Reject(
                    f"{stem}{other.suffix}", "duplicate key", f"same name as {img_path.name}, kept"
                )
            bad_link = next(
                (p for p in files.values() if p.is_symlink() and not _inside(p, root)), None
            )
            if bad_link is not None:
                yield Reject(stem, "symlink outside source", str(bad_link))
                continue
            meta: dict = {}
            if ".json" in files:
                meta, problem = parse_sidecar(files[".json"].read_bytes())
                if problem:
                    yield Reject(stem, "bad metadata", problem)
                    continue
            txt = files[".txt"].read_bytes() if ".txt" in files else None
            caption, encoding, field = item_caption(txt, meta)
            used: set[str] = {field} if field else set()
            if caption is None:
                yield Reject(stem, "missing caption", img_path.name)
                continue
            url_name, url = pick(meta, URL_ALIASES)
            used |= {url_name} if url_name else set()
            try:
                data = img_path.read_bytes()
            except OSError as e:
                yield Reject(stem, "unreadable file", str(e)[:200])
                continue
            yield Sample(
                key=stem,
                caption=caption,
                caption_encoding=encoding,
                url=str(url) if url else None,
                storage=STORAGE_FILE,
                path=str(img_path.resolve()),
                image=data,
                extra=extra_columns(meta, used | {"caption", "key"}),
            )


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False
