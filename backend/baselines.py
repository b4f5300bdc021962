"""DataComp's filtering baselines as Selection recipes, with DataComp's names and rules.

Each rule follows ``baselines/apply_filter.py`` of mlfoundations/datacomp:

- ``no_filter``: every row.
- ``basic_filter``: fastText says English, caption has > 2 words (``str.split``) and > 5
  characters, the image's shorter side >= 200 px and longer/shorter side <= 3.
- ``clip_score_{b32,l14}_{N}_percent``: the top N % by the CLIP score: the threshold is the
  score at position ``int(rows * N / 100)`` of all rows sorted high to low (rows with no score
  count in ``rows`` and sort last), and every row with a score >= it is kept (ties included).
- ``clip_score_{b32,l14}_{T}_threshold``: score >= T (``0.28``, or ``28`` meaning 0.28).
- ``laion2b``: English and B/32 score >= 0.28 (``laion`` is accepted for it).
- ``text_based``: English and a caption word names an ImageNet-21k synset (:mod:`backend.synsets`).
- ``image_based``: image vectors in a k-means cluster that ImageNet lands in
  (:mod:`backend.baselines_image`); ``image_based_intersect_clip_score_{b32,l14}_{N}_percent``
  (and ``_threshold``) is it AND that CLIP-score rule, as DataComp's intersection baseline.
- ``A+B``: rows both keep (e.g. ``basic_filter+clip_score_l14_30_percent``).

Each compiles to Selection parts (``values``, ``ranges``, ``sql``; ``text_based``'s word test and
``image_based`` to ``row_ids``), so it shows in the Selection bar, saves as a subset and
exports like any filter. Where this is not exactly DataComp, :attr:`Baseline.notes` says so
(language ID for ``laion2b``; the word test of ``text_based``; ``image_based``'s targets and
centroids; a CLIP score computed by another model). A baseline whose
column is missing is refused with one line naming the command that makes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from backend.selection import Selection, quote_ident

LANGUAGE = "language"
SCORE_COLUMN = {"b32": "clip_similarity", "l14": "clip_similarity_l14"}
SCORE_MODEL = {"b32": "ViT-B/32", "l14": "ViT-L/14"}
LAION_THRESHOLD = 0.28
# Python's str.split() whitespace (str.isspace), as RE2 character-class items.
_SPACE = (r"\s\x{0b}\x{1c}-\x{1f}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
          r"\x{202f}\x{205f}\x{3000}")  # fmt: skip
CAPTION_SQL = (f"len(regexp_extract_all(coalesce(caption, ''), '[^{_SPACE}]+')) > 2 "
               "AND length(coalesce(caption, '')) > 5")  # fmt: skip
IMAGE_SQL = "least(width, height) >= 200 AND greatest(width, height) / least(width, height) <= 3.0"
SHOWN = ("no_filter", "basic_filter", "laion2b", "clip_score_b32_30_percent",
         "clip_score_l14_30_percent", "clip_score_l14_0.3_threshold", "text_based",
         "basic_filter+clip_score_l14_30_percent")  # fmt: skip
_CLIP = re.compile(r"^clip_score_(b32|l14)_(\d+(?:\.\d+)?)_(percent|threshold)$")
_IMAGE_CLIP = "image_based_intersect_"


class BaselineUnavailable(ValueError):
    """The dataset lacks what the baseline reads; the message names the command to run."""


@dataclass(frozen=True)
class Baseline:
    """A baseline compiled for one dataset: its Selection and what to know about it."""

    name: str
    selection: Selection
    notes: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # the columns it reads

    def describe(self) -> str:
        return f"DataComp {self.name}" + (f" ({'; '.join(self.notes)})" if self.notes else "")


def names() -> list[str]:
    """The baselines a page offers as one-click buttons (any N or T works by name)."""
    return list(SHOWN)


def _need(cols: dict[str, str], col: str, dataset: str, how: str) -> None:
    if col not in cols:
        raise BaselineUnavailable(f"{dataset} has no {col} column: run {how}")


def _english(cols: dict[str, str], dataset: str) -> Selection:
    _need(cols, LANGUAGE, dataset, f"python -m backend score {dataset} --scorers language")
    return Selection(values={LANGUAGE: ["en"]})


def _clip_column(cols: dict[str, str], dataset: str, arch: str, notes: list[str],
                 catalog: dict[str, dict]) -> str:  # fmt: skip
    col = SCORE_COLUMN[arch]
    how = (f"python -m backend score {dataset} --scorers clip (or build from a pool that ships "
           "DataComp's clip_b32_similarity_score)") if arch == "b32" else (
        f"python -m backend build {dataset} --source DATACOMP_METADATA (DataComp ships "
        "clip_l14_similarity_score; the clip scorer writes clip_similarity only)")  # fmt: skip
    _need(cols, col, dataset, how)
    info = catalog.get(col) or {}
    model = str(info.get("model") or "unknown model")
    if SCORE_MODEL[arch] not in model:
        notes.append(f"{col} here is {info.get('label') or model}, not OpenAI CLIP "
                     f"{SCORE_MODEL[arch]}: DataComp's thresholds assume that model")  # fmt: skip
    return col


def percentile_threshold(con: Any, col: str, fraction: float) -> float | None:
    """DataComp's ``get_threshold``: the score at position ``int(n * fraction)`` of all ``n``
    rows sorted high to low, missing scores last; None when that position has no score."""
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    k = int(n * fraction)
    got = con.execute(
        f"SELECT {quote_ident(col)} FROM samples WHERE {quote_ident(col)} IS NOT NULL "
        f"AND NOT isnan({quote_ident(col)}) "
        f"ORDER BY {quote_ident(col)} DESC LIMIT 1 OFFSET ?", [k]).fetchall()  # fmt: skip
    return None if not got else float(got[0][0])


def _clip(con: Any, cols: dict[str, str], dataset: str, m: re.Match, notes: list[str],
          catalog: dict[str, dict]) -> Selection:  # fmt: skip
    arch, num, kind = m.group(1), float(m.group(2)), m.group(3)
    col = _clip_column(cols, dataset, arch, notes, catalog)
    if kind == "percent":
        thr = percentile_threshold(con, col, num / 100)
        if thr is None:  # DataComp's threshold would be NaN: nothing passes
            return Selection(row_ids=(), row_ids_label=f"no {col} at the top-{num:g}% position")
        notes.append(f"top {num:g}% by {col}: {col} >= {thr:.6g}")
    else:
        thr = num / 100 if num > 1 else num
    return Selection(ranges={col: (thr, None)})


def _text_based(con: Any, cols: dict[str, str], dataset: str, notes: list[str]) -> Selection:
    from backend.synsets import caption_matches, vocabulary

    words, source = vocabulary()
    ids = caption_matches(con, words)
    notes.append(f"a caption word (lower-cased, plurals folded) is the first lemma of one of "
                 f"the {source}; DataComp asks WordNet for the word's first sense instead")
    sel = _english(cols, dataset)
    return replace(sel, row_ids=tuple(int(i) for i in ids),
                   row_ids_label="caption names an ImageNet-21k synset")


def _image_based(con: Any, cols: dict[str, str], dataset: str, notes: list[str],
                 opts: dict[str, Any]) -> Selection:  # fmt: skip
    from backend.baselines_image import image_based_ids

    _english(cols, dataset)  # its caption filter reads the language column
    ids = image_based_ids(con, dataset, opts.get("root"), notes, opts.get("targets"),
                          opts.get("clusters"))  # fmt: skip
    return Selection(row_ids=tuple(int(i) for i in ids),
                     row_ids_label="image in a cluster ImageNet lands in")  # fmt: skip


def _one(con: Any, cols: dict[str, str], dataset: str, name: str, notes: list[str],
         catalog: dict[str, dict], opts: dict[str, Any]) -> Selection:  # fmt: skip
    if name == "no_filter":
        return Selection()
    if name == "basic_filter":
        _need(cols, "width", dataset, "a source with image sizes (width, height)")
        _need(cols, "height", dataset, "a source with image sizes (width, height)")
        return replace(_english(cols, dataset), sql=f"{CAPTION_SQL} AND {IMAGE_SQL}")
    if name in ("laion2b", "laion"):
        notes.append("English by fastText lid.176; DataComp's laion2b reproduction uses gcld3")
        col = _clip_column(cols, dataset, "b32", notes, catalog)
        return replace(_english(cols, dataset), ranges={col: (LAION_THRESHOLD, None)})
    if name == "text_based":
        return _text_based(con, cols, dataset, notes)
    if name == "image_based":
        return _image_based(con, cols, dataset, notes, opts)
    if name.startswith(_IMAGE_CLIP) and _CLIP.match(name.removeprefix(_IMAGE_CLIP)):
        clip = _clip(con, cols, dataset, _CLIP.match(name.removeprefix(_IMAGE_CLIP)), notes,
                     catalog)  # fmt: skip
        return intersect(_image_based(con, cols, dataset, notes, opts), clip)
    m = _CLIP.match(name)
    if m:
        return _clip(con, cols, dataset, m, notes, catalog)
    raise BaselineUnavailable(
        f"unknown baseline {name!r}: choose no_filter, basic_filter, laion2b, text_based, "
        "image_based, clip_score_{b32,l14}_{N}_percent, clip_score_{b32,l14}_{T}_threshold, "
        "image_based_intersect_clip_score_{b32,l14}_{N}_percent, or A+B")


def intersect(a: Selection, b: Selection) -> Selection:
    """Rows both Selections keep (their parts ANDed; same-column parts narrowed)."""
    ranges = dict(a.ranges)
    for col, (lo, hi) in b.ranges.items():
        if col in ranges:
            lo0, hi0 = ranges[col]
            lo = lo0 if lo is None else lo if lo0 is None else max(lo, lo0)
            hi = hi0 if hi is None else hi if hi0 is None else min(hi, hi0)
        ranges[col] = (lo, hi)
    values = dict(a.values)
    for col, vals in b.values.items():
        values[col] = [v for v in values[col] if v in vals] if col in values else list(vals)
    sql = " AND ".join(f"({s})" for s in (a.sql, b.sql) if s.strip())
    ids, label = a.row_ids, a.row_ids_label
    if b.row_ids is not None:
        ids = b.row_ids if ids is None else tuple(sorted(set(ids) & set(b.row_ids)))
        label = " and ".join(x for x in (label, b.row_ids_label) if x)
    return replace(a, ranges=ranges, values=values, sql=sql, row_ids=ids, row_ids_label=label)


def compile_baseline(con: Any, dataset: str, name: str, catalog: dict[str, dict] | None = None,
                     **opts: Any) -> Baseline:  # fmt: skip
    """Baseline ``name`` (``A+B`` for an intersection) as a Selection over ``con``'s store.

    ``catalog``: the dataset's score provenance (:func:`backend.scores.catalog`), so a CLIP
    score made by another model than DataComp's is said in the notes. ``opts`` of
    ``image_based``: ``root``, ``targets`` (ImageNet embeddings file), ``clusters``."""
    from backend.browse import columns

    cols = columns(con)
    notes: list[str] = []
    parts = [p.strip() for p in name.split("+") if p.strip()]
    if not parts:
        raise BaselineUnavailable("name a baseline, e.g. basic_filter")
    sel = _one(con, cols, dataset, parts[0], notes, catalog or {}, opts)
    for p in parts[1:]:
        sel = intersect(sel, _one(con, cols, dataset, p, notes, catalog or {}, opts))
    read = [*sel.ranges, *sel.values] + (["caption", "width", "height"] if sel.sql else [])
    return Baseline("+".join(parts), sel, notes, list(dict.fromkeys(read)))


def for_dataset(dataset: str, name: str, root: Any = None, **opts: Any) -> Baseline:
    """:func:`compile_baseline` on dataset ``dataset``'s store, with its score provenance."""
    from backend import bounded, paths
    from backend.browse import columns
    from backend.manifest import read_manifest
    from backend.scores import catalog
    from backend.store import connect

    con = bounded.wrap(connect(dataset, root))  # its SQL is bounded like any user query
    try:
        cat = catalog(read_manifest(paths.manifest_path(dataset, root)), columns(con))
        return compile_baseline(con, dataset, name, cat, root=root, **opts)
    finally:
        con.close()
