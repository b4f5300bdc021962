"""Search that needs no model weights: the vectors a pool shipped answer on their own.

Text→image search needs the text tower of the image vectors' model. When its weights do not
load, two honest searches remain, each saying that it ran instead:

- *by caption keywords*: the rows whose captions best match the words (BM25), the mean of
  their shipped text vectors, searched against the image vectors;
- *images like this caption*: one row's shipped text vector against the image vectors.

And the messages for what cannot run: which vectors are missing and what would provide them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from backend import keyword
from backend.embed import load_vectors
from backend.embedding_sets import words
from backend.search_result import Result, SearchError

if TYPE_CHECKING:
    from backend.selection import Selection

MATCH_ROWS = 200  # captions whose text vectors make the keyword query's vector


class Searcher(Protocol):
    """What these searches use of :class:`backend.search.Searcher`, which calls them."""

    name: str
    root: Path | None
    embed: dict[str, Any]

    def _index(self, kind: str) -> Any: ...

    def _hits(self, ids: list[int], scores: list[float]) -> list[dict[str, Any]]: ...

    def _vector_search(self, kind: str, vec: np.ndarray, k: int, sel: Selection | None,
                       exclude: int | None = None,
                       cross_modal: bool = False) -> tuple[list[int], list[float]]: ...


def _label(info: dict[str, Any]) -> str:
    return info.get("label") or info.get("model") or "?"


def text_target(embed: dict[str, Any]) -> str:
    """Which index a shipped text vector is searched against: the images when both towers come
    from one model, else the captions."""
    return "img" if embed.get("cross_modal") and "img" in embed.get("kinds", {}) else "text"


def no_text_vectors(name: str, embed: dict[str, Any], why: str | None) -> str:
    """Why text search cannot run on image vectors alone, and what would make it run."""
    img = embed.get("kinds", {}).get("img", {})
    unknown = img.get("model") in (None, "unknown")
    tower = (
        "the text tower of the model that made them"
        if unknown
        else f"the text tower of {_label(img)}"
    )
    if unknown:
        fix = (
            f"name the image vectors' model (`python -m backend embeddings {name} --model "
            f"ViT-B-32/openai`, then `python -m backend index {name}`) so its text tower can load"
        )
    else:
        fix = f"load {img.get('model')} ({why or 'its weights are not here'})"
    return (
        f"{name!r} holds image vectors only ({words(img)}): text search needs {tower}; "
        f"{fix}, or compute caption vectors with `python -m backend embed {name}` "
        "(then search finds captions by meaning)"
    )


def by_keyword_captions(s: Searcher, query: str, k: int, sel: Selection | None, why: str) -> Result:
    """The mean shipped text vector of the captions that best match ``query`` as keywords,
    searched against the image vectors (or the captions when the towers differ)."""
    import time

    t0 = time.perf_counter()
    ix = keyword.KeywordIndex.open(keyword.index_dir(s.name, s.root))
    matched = [h[0] for h in ix.search(query, k=MATCH_ROWS)]
    text = s.embed["kinds"]["text"]
    if not matched:
        raise SearchError(
            f"no caption matches {query!r}: {_label(text)}'s text tower is not loaded ({why}), "
            "so search by meaning starts from the captions that match your words; try others"
        )
    vecs = np.asarray(load_vectors(s.name, "text", s.root)[np.sort(matched)], np.float32)
    query_vec = vecs.mean(axis=0)
    query_vec /= max(float(np.linalg.norm(query_vec)), 1e-12)
    target = text_target(s.embed)
    ids, scores = s._vector_search(target, query_vec, k, sel)
    what = "images" if target == "img" else "captions"
    space = (
        f"{what} by the shipped caption vectors of the {len(matched)} rows matching "
        f"{query!r} (keywords → mean {text.get('set', 'text')} vector)"
    )
    note = (
        f"Searched by caption keywords, not by your words' own vector: {_label(text)}'s text "
        f"tower is not loaded ({why}). The {len(matched)} captions that best match the keywords "
        f"gave the mean of their shipped text vectors, searched against the {what}."
    )
    return Result(
        s._hits(ids, scores),
        space,
        time.perf_counter() - t0,
        [note],
        target,
        s.embed["kinds"][target].get("model"),
    )


def like_caption(s: Searcher, row_id: int, k: int, sel: Selection | None) -> Result:
    """Images like this caption: row ``row_id``'s shipped text vector against the images."""
    import time

    t0 = time.perf_counter()
    kinds = s.embed.get("kinds", {})
    if "text" not in kinds:
        raise SearchError(
            f"{s.name!r} has no caption vectors: run `python -m backend embed {s.name}`"
        )
    target = text_target(s.embed)
    _, vectors = s._index(target)
    text = load_vectors(s.name, "text", s.root)
    if not 0 <= int(row_id) < len(text):
        raise SearchError(f"there is no row {row_id} (rows are 0..{len(text) - 1})")
    vec = np.asarray(text[int(row_id)], np.float32)
    ids, scores = s._vector_search(target, vec, k, sel)
    what = "images" if target == "img" else "captions"
    return Result(
        s._hits(ids, scores),
        f"{what} like the caption of row {row_id} ({kinds['text'].get('set', 'text')} vector)",
        time.perf_counter() - t0,
        [],
        target,
        kinds[target].get("model"),
    )


def upload_refused(name: str, info: dict[str, Any], why: str) -> str:
    """Why an uploaded image cannot be searched: no image tower for the shipped vectors."""
    model = "the model of the shipped vectors" if info.get("model") == "unknown" else _label(info)
    return (
        f"An uploaded image needs the image tower of {model} to become a vector, and it is not "
        f"loaded here ({why}). The shipped image vectors of {name} still answer “more like "
        "this” on any row"
    )
