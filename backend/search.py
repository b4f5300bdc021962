"""Search a dataset: by text, image, row ("more like this") or keywords, within a Selection.

Ties the pieces together: the embed step's models (from the manifest), the FAISS indexes of
each embedding kind, the keyword index, and the Selection's row ids as a filter.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from backend import (
    bounded,
    index_search,
    keyword,
    keyword_build,
    paths,
    rank_fusion,
    shipped_search,
)
from backend import index as vindex
from backend.embed import load_vectors, vector_shards
from backend.embedding_sets import describe
from backend.executor import Executor
from backend.manifest import now, update_manifest, write_json_atomic
from backend.models import (
    Encoder,
    ModelUnavailable,
    checkpoint_changed,
    load_clip,
    load_effnet,
    load_minilm,
)
from backend.provenance import SYNTHETIC_NOTE, SYNTHETIC_SPACE, search_notes, synthetic_mark
from backend.search_result import Result, SearchError
from backend.selection import Selection
from backend.store import cursor

KINDS = ("img", "text")


def index_path(name: str, kind: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / "index" / f"{kind}.faiss"


def ondisk_path(name: str, kind: str, root: Path | None = None) -> Path:
    """The folder of an index built shard by shard, its lists on disk (vectors per shard)."""
    return paths.dataset_dir(name, root) / "index" / f"{kind}.ondisk"


SHARDED_TRAIN_SEED = 1234


def _build_sharded(
    name: str, kind: str, root: Path | None, executor: Executor | None, progress, mark: dict
) -> dict[str, Any]:
    """IVF over vectors kept per shard: train on a seeded sample, one ``add_shard`` unit per
    shard on ``executor``, merge into on-disk lists, swap the folder in. Resumable: the trained
    index and finished shards of an interrupted build are kept in ``.<kind>.build``."""
    from backend import index_shards

    files = vector_shards(name, kind, root)
    vectors = load_vectors(name, kind, root)
    n, d = vectors.shape
    plan = vindex.choose(n, d, kind="ivf-sq8")
    work = paths.dataset_dir(name, root) / "index" / f".{kind}.build"
    work.mkdir(parents=True, exist_ok=True)
    trained = work / "trained.index"
    if not trained.is_file():
        rows = np.sort(
            np.random.default_rng(SHARDED_TRAIN_SEED).choice(n, min(n, plan.train_size), False)
        )
        index_shards.save_trained(index_shards.train(vectors[rows], plan.factory), trained,
                                  plan.factory)  # fmt: skip
    done = 0

    def finished(_key: str, result: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(kind, done, len(files))

    added = index_shards.add_shards(
        trained, [p for _, p in files], work / "shards", executor, done=finished
    )
    final = ondisk_path(name, kind, root)
    new = final.with_name(f".{final.name}.new")
    shutil.rmtree(new, ignore_errors=True)
    meta = {**index_shards.merge(trained, added["paths"], new, params=plan.params), **mark}
    write_json_atomic(new / index_shards.META, meta)  # the sidecar, with what the vectors are
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    index_path(name, kind, root).unlink(missing_ok=True)  # one index per kind
    return {**meta, "layout": "on-disk lists", "shards": len(files)}


def build_indexes(
    name: str,
    root: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """FAISS index for each embedding kind and the keyword index; recorded in the manifest.

    Vectors kept per shard (the embed step's layout past ``CONCAT_MAX_ROWS``) get an IVF
    index built shard by shard on ``executor`` with its lists on disk (``ondisk_path``)."""
    t0, started = time.perf_counter(), now()
    kinds = describe(name, root).get("kinds", {})
    if not kinds:
        raise SearchError(f"{name!r} has no embeddings: run `python -m backend embed {name}`")
    built: dict[str, Any] = {}
    for kind, info in kinds.items():
        mark = synthetic_mark(info)  # synthetic vectors (backend.synth_vectors) say so
        if vector_shards(name, kind, root):
            built[kind] = _build_sharded(name, kind, root, executor, progress, mark)
            built[kind]["model"] = info.get("model")
            continue
        vectors = load_vectors(name, kind, root)
        plan = vindex.choose(*vectors.shape)
        idx = vindex.build(
            vectors, plan, progress=(lambda d, n, k=kind: progress(k, d, n)) if progress else None
        )
        meta = {"model": info.get("model"), "dataset": name, "kind": kind, **mark}
        built[kind] = vindex.save(idx, index_path(name, kind, root), meta)
    kw = keyword_build.build_dataset(
        name, root, (lambda d, n: progress("keyword", d, n)) if progress else None
    )
    record = {
        "status": "done",
        "params": {"kinds": sorted(built)},
        "faiss": built,
        "keyword": kw,
        "started_at": started,
        "finished_at": now(),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    update_manifest(paths.manifest_path(name, root), "index", record)
    return record


@lru_cache(maxsize=8)
def encoder_for(model_name: str, checkpoint: str | None = None) -> Encoder:
    """Load the encoder a manifest names (cached per process); ``checkpoint`` for local CLIP."""
    if model_name.startswith("open_clip:"):
        arch, _, tag = model_name.removeprefix("open_clip:").partition("/")
        if checkpoint:
            return load_clip(arch, None, checkpoint=checkpoint)
        return load_clip(arch, tag or None)
    if model_name.startswith("sentence-transformers/all-MiniLM-L6-v2"):
        return load_minilm()
    if model_name.startswith("efficientnet-lite0"):
        return load_effnet()
    raise ModelUnavailable(f"no encoder for {model_name!r} (embeddings given by the source?)")


def same_checkpoint(name: str, info: dict[str, Any]) -> None:
    """Refuse to encode a query with a CLIP checkpoint other than the one that made the stored
    vectors (a retrained or replaced file at the same path)."""
    if why := checkpoint_changed(name, info):
        raise SearchError(why)


def _provenance(embed: dict[str, Any], kind: str) -> tuple[str | None, list[str]]:
    """The model of ``kind``'s vectors and the notes every result from them carries (the demo
    CLIP says what it is: it knows generated scenes, nothing else; synthetic vectors say so)."""
    info = embed.get("kinds", {}).get(kind, {})
    return info.get("model"), search_notes(info)


KEYWORD_FILTER_MAX = 1_000_000
KEYWORD_MODEL = "BM25 over captions (tantivy)"


def resolve_keywords(name: str, sel: Selection, root: Path | None = None) -> Selection:
    """``sel`` with its keyword query turned into the matching row ids (sorted).

    Raises :class:`backend.keyword_errors.KeywordQueryError` for a bad query,
    KeywordIndexMissing when the index is not built, and SearchError when the query matches too
    many rows to filter by.
    """
    if not sel.keywords.strip() or sel.keyword_ids is not None:
        return sel
    ix = keyword.KeywordIndex.open(keyword.index_dir(name, root))
    n = ix.count(sel.keywords)
    if n > KEYWORD_FILTER_MAX:
        raise SearchError(
            f"keywords {sel.keywords!r} match {n:,} rows; narrow them to at most "
            f"{KEYWORD_FILTER_MAX:,} to use them as a filter"
        )
    ids = sorted(h[0] for h in ix.search(sel.keywords, k=n)) if n else []
    return replace(sel, keyword_ids=tuple(ids))


def hits(
    name: str, ids: list[int], scores: list[float], root: Path | None = None
) -> list[dict[str, Any]]:
    """Search results as card rows (ranked, each with its score): what every search returns.
    The rows are read by id (on a store with added column files: by position, backend.rowfetch),
    under the query limits."""
    from backend.browse import rows_by_id

    if not ids:
        return []
    con = bounded.wrap(cursor(name, root))
    try:
        by_id = rows_by_id(con, ids)
    finally:
        con.close()
    return [{**by_id[i], "score": float(s)} for i, s in zip(ids, scores, strict=True) if i in by_id]


class Searcher:
    """One dataset's search entry points; cheap to keep around (the app caches it)."""

    def __init__(self, name: str, root: Path | None = None) -> None:
        self.name, self.root = name, root
        self.embed = describe(name, root)
        self._indexes: dict[str, Any] = {}

    def _index(self, kind: str):
        if kind not in self._indexes:
            path = index_path(self.name, kind, self.root)
            model = self.embed.get("kinds", {}).get(kind, {}).get("model")
            ondisk = ondisk_path(self.name, kind, self.root)
            if not path.is_file() and ondisk.is_dir():  # lists stay on disk, page-cached
                from backend import index_shards

                idx, _ = index_shards.open_index(ondisk)
            else:
                idx, _ = vindex.load(path, mmap=False, expect_model=model, name=self.name)
            self._indexes[kind] = (idx, load_vectors(self.name, kind, self.root))
        return self._indexes[kind]

    def _allowed(self, sel: Selection | None) -> np.ndarray | None:
        if sel is None or sel.is_empty():
            return None
        from backend.browse import columns

        sel = resolve_keywords(self.name, sel, self.root)
        con = bounded.wrap(cursor(self.name, self.root))  # the user's filters: bounded
        try:
            where, params = sel.where(columns(con))
            ids = con.execute(
                f"SELECT row_id FROM samples WHERE {where} ORDER BY row_id", params
            ).fetchnumpy()["row_id"]
        finally:
            con.close()
        return np.asarray(ids, dtype=np.int64)

    def _hits(self, ids: list[int], scores: list[float]) -> list[dict[str, Any]]:
        return hits(self.name, ids, scores, self.root)

    def _vector_search(
        self, kind: str, vec: np.ndarray, k: int, sel: Selection | None, exclude: int | None = None,
        cross_modal: bool = False,
    ) -> tuple[list[int], list[float]]:
        """``cross_modal``: a text vector against image vectors (IVF probes more lists)."""
        idx, vectors = self._index(kind)
        allowed = self._allowed(sel)
        scores, ids = index_search.search(
            idx, vec[None], k + (1 if exclude is not None else 0), allowed=allowed,
            vectors=vectors, cross_modal=cross_modal,
        )
        pairs = [
            (int(i), float(s))
            for i, s in zip(ids[0], scores[0], strict=True)
            if i >= 0 and i != exclude
        ][:k]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def text(self, query: str, k: int = 24, sel: Selection | None = None) -> Result:
        """Semantic text search: text→image with CLIP, else text→caption (said in ``space``)."""
        t0 = time.perf_counter()
        if not query or not query.strip():
            raise SearchError("type something to search for")
        kinds = self.embed.get("kinds", {})
        if not kinds:
            raise SearchError(f"no embeddings yet: run `python -m backend embed {self.name}`")
        notes = []
        if "text" not in kinds:  # image vectors alone (a clip-retrieval img_emb folder)
            kind, space = "img", "images (text tower of the image vectors' model)"
        elif self.embed.get("cross_modal"):
            kind, space = "img", "images (CLIP text→image)"
        else:
            kind, space = "text", "captions (semantic text→caption)"
            notes.append(
                "Text→image search needs CLIP, which is not loaded for this dataset: "
                + (self.embed.get("clip_unavailable") or "this dataset's embeddings are not CLIP.")
                + " Searching caption meaning instead."
            )
        space = SYNTHETIC_SPACE if kinds[kind].get("synthetic") else space
        same_checkpoint(self.name, kinds[kind])
        try:
            enc = encoder_for(kinds[kind]["model"], kinds[kind].get("checkpoint"))
            if kind == "img" and not enc.cross_modal:
                raise ModelUnavailable(f"{enc.name} has no text tower")
        except ModelUnavailable as e:  # no weights: shipped caption vectors still answer
            if "text" not in kinds:
                why = shipped_search.no_text_vectors(self.name, self.embed, str(e))
                raise SearchError(why) from None
            if not kinds["text"].get("given_by_source"):
                raise
            return shipped_search.by_keyword_captions(self, query.strip(), k, sel, str(e))
        ids, scores = self._vector_search(kind, enc.encode_texts([query.strip()])[0], k, sel,
                                          cross_modal=kind == "img")  # fmt: skip
        model, more = _provenance(self.embed, kind)
        return Result(self._hits(ids, scores), space, time.perf_counter() - t0, notes + more,
                      kind, model)  # fmt: skip

    def image(self, data: bytes, k: int = 24, sel: Selection | None = None) -> Result:
        """Images like an uploaded one."""
        from backend.images import BadImage, probe

        t0 = time.perf_counter()
        try:
            probe(data)
        except BadImage as e:
            raise SearchError(f"that file is not a usable image ({e})") from None
        info = self.embed.get("kinds", {}).get("img")
        if not info:
            raise SearchError(f"no image embeddings: run `python -m backend embed {self.name}`")
        same_checkpoint(self.name, info)
        try:
            enc = encoder_for(info["model"], info.get("checkpoint"))
        except ModelUnavailable as e:
            if not info.get("given_by_source"):
                raise
            raise SearchError(shipped_search.upload_refused(self.name, info, str(e))) from None
        vec = enc.encode_images([data])[0]
        ids, scores = self._vector_search("img", vec, k, sel)
        model, notes = _provenance(self.embed, "img")
        return Result(self._hits(ids, scores), "images (image→image)", time.perf_counter() - t0,
                      notes, "img", model)  # fmt: skip

    def like_row(self, row_id: int, k: int = 24, sel: Selection | None = None) -> Result:
        """More like this: the row's own image vector against all others."""
        t0 = time.perf_counter()
        if "img" not in self.embed.get("kinds", {}):
            raise SearchError(
                f"{self.name!r} has no image vectors for “more like this”: run "
                f"`python -m backend embed {self.name}`"
            )
        _, vectors = self._index("img")
        if not 0 <= int(row_id) < len(vectors):
            raise SearchError(f"there is no row {row_id} (rows are 0..{len(vectors) - 1})")
        vec = np.asarray(vectors[int(row_id)], dtype=np.float32)
        ids, scores = self._vector_search("img", vec, k, sel, exclude=int(row_id))
        model, notes = _provenance(self.embed, "img")
        space = f"{SYNTHETIC_SPACE if SYNTHETIC_NOTE in notes else 'images'} (more like this)"
        return Result(self._hits(ids, scores), space, time.perf_counter() - t0, notes, "img",
                      model)  # fmt: skip

    def like_caption(self, row_id: int, k: int = 24, sel: Selection | None = None) -> Result:
        """Images like this caption: the row's text vector against the image vectors (shipped
        vectors need no model)."""
        return shipped_search.like_caption(self, row_id, k, sel)

    def keywords(self, query: str, k: int = 24, sel: Selection | None = None) -> Result:
        """BM25 keyword search over captions (phrases, +/-, prefix*)."""
        t0 = time.perf_counter()
        ix = keyword.KeywordIndex.open(keyword.index_dir(self.name, self.root))
        hits = ix.search(query, k=k, allowed=self._allowed(sel))
        return Result(
            self._hits([h[0] for h in hits], [h[1] for h in hits]),
            "captions (keywords, BM25)",
            time.perf_counter() - t0,
            model=KEYWORD_MODEL,
        )

    def hybrid(self, query: str, k: int = 24, sel: Selection | None = None) -> Result:
        """Keywords and meaning together: reciprocal-rank fusion of both result lists."""
        t0 = time.perf_counter()
        kw = self.keywords(query, 2 * k, sel)
        sem = self.text(query, 2 * k, sel)
        fused = rank_fusion.hybrid(
            [(h["row_id"], h["score"]) for h in kw.hits],
            [(h["row_id"], h["score"]) for h in sem.hits],
            k,
        )
        by_id = {h["row_id"]: h for h in [*sem.hits, *kw.hits]}
        hits = [{**by_id[i], "score": float(score)} for i, score in fused]
        return Result(
            hits, f"keywords + {sem.space} (rank fusion)", time.perf_counter() - t0, sem.notes,
            sem.vectors, sem.model,
        )
