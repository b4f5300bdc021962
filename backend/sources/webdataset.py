"""WebDataset tar shards in img2dataset's layout: ``{key}.jpg``, ``{key}.txt``, ``{key}.json``.

Each image's byte offset and size inside its tar are recorded, so the app can show one image
with a single seek and read instead of scanning the tar.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from backend.sources.base import STORAGE_TAR, Item, Reject, Sample, Shard
from backend.sources.common import (
    URL_ALIASES,
    extra_columns,
    item_caption,
    parse_sidecar,
    pick,
)
from backend.sources.folder import IMAGE_EXTS


def split_member(name: str) -> tuple[str, str]:
    """WebDataset's rule: the key is the path up to the first dot of the base name."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{head}/{stem}" if head else stem
    return key, (dot + ext).lower()


def unsafe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return p.is_absolute() or ".." in p.parts or name.startswith("\\") or ":" in p.parts[0]


def _is_image(ext: str) -> bool:
    return "." + ext.rsplit(".", 1)[-1] in IMAGE_EXTS


def _clash(group: dict, ext: str) -> str | None:
    """The member already in ``group`` that a new ``ext`` member would silently replace."""
    if ext in group:
        return ext
    return next((e for e in group if _is_image(e)), None) if _is_image(ext) else None


class WebDatasetSource:
    format = "webdataset"

    def shards(self, root: Path) -> list[Shard]:
        tars = [root] if root.is_file() else sorted(root.rglob("*.tar"))
        return [Shard(str(t.relative_to(root)) if t != root else t.name, (t,), root) for t in tars]

    def read(self, shard: Shard) -> Iterator[Item]:
        path = shard.paths[0]
        group_key: str | None = None
        group: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
        seen = 0
        try:
            with tarfile.open(path, mode="r:") as tar:
                for member in tar:
                    seen += 1
                    if member.isdir():
                        continue
                    key, ext = split_member(member.name)
                    if key != group_key:
                        if group_key is not None:
                            yield self._item(group_key, group, path)
                        group_key, group = key, {}
                    if unsafe_name(member.name):
                        group["!unsafe"] = (member, b"")
                        continue
                    if not member.isfile():
                        group["!link"] = (member, b"")
                        continue
                    clash = _clash(group, ext)
                    if clash:  # x.jpg twice, or x.jpg and x.png: keep the first, say so
                        yield Reject(
                            f"{key}{ext}",
                            "duplicate key",
                            f"{key} appears twice in {path.name}: {key}{clash} is kept",
                        )
                        continue
                    fh = tar.extractfile(member)
                    data = fh.read() if fh is not None else b""
                    if len(data) != member.size:
                        raise tarfile.ReadError("unexpected end of data")
                    group[ext] = (member, data)
                if group_key is not None:
                    yield self._item(group_key, group, path)
                    group_key = None
        except (tarfile.ReadError, EOFError, OSError) as e:
            if group_key is not None and group:
                yield Reject(group_key, "truncated tar", f"item cut off: {e}")
            yield Reject(
                f"{shard.name}#end",
                "truncated tar",
                f"reading stopped after {seen} members: {e}; later members are unreadable",
            )

    @staticmethod
    def _item(key: str, group: dict[str, tuple[tarfile.TarInfo, bytes]], path: Path) -> Item:
        if "!unsafe" in group:
            return Reject(key, "unsafe member name", group["!unsafe"][0].name[:300])
        if "!link" in group:
            return Reject(key, "not a regular file", group["!link"][0].name[:300])
        image_ext = next((e for e in group if _is_image(e)), None)
        if image_ext is None:
            return Reject(key, "missing image", ", ".join(sorted(group)) or "no members")
        meta: dict = {}
        if ".json" in group:
            meta, problem = parse_sidecar(group[".json"][1])
            if problem:
                return Reject(key, "bad metadata", problem)
        txt = group[".txt"][1] if ".txt" in group else None
        caption, encoding, _ = item_caption(txt, meta)
        used = {"caption", "key"}
        if caption is None:
            return Reject(key, "missing caption", f"{key}{image_ext}")
        url_name, url = pick(meta, URL_ALIASES)
        if url_name:
            used.add(url_name)
        member, data = group[image_ext]
        return Sample(
            key=key,
            caption=caption,
            caption_encoding=encoding,
            url=str(url) if url else None,
            storage=STORAGE_TAR,
            path=str(path.resolve()),
            byte_offset=member.offset_data,
            byte_size=member.size,
            image=data,
            extra=extra_columns(meta, used),
        )
