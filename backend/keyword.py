"""Full-text search over captions: a tantivy (BM25) index kept beside the dataset's store.

Why a separate index: a DuckDB ``ILIKE '%word%'`` scans every caption (1-2 s per query at 10^7
rows on 2 cores) and cannot rank; an inverted index answers in milliseconds and ranks with BM25
(``bench/keyword.py``). The store stays the source of truth; the index only maps words to
``row_id``.

Layout: ``<dataset>/keyword`` is a symlink to ``<dataset>/.keyword.<stamp>/`` holding our
``meta.json`` (build stats) and ``tantivy/`` (the index). A build writes a new folder aside and
swaps the link with one atomic rename, so readers see the old index or the new one, never half
of one, and a failed build leaves the previous index untouched.

Query syntax: :mod:`backend.keyword_query`; the build: :mod:`backend.keyword_build`.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tantivy

from backend import paths
from backend.keyword_errors import KeywordIndexMissing, KeywordQueryError
from backend.keyword_query import Clause, _short, parse_query
from backend.keyword_schema import FORMAT, ROW_FIELD, TEXT_FIELD
from backend.keyword_stale import _check_store, build_command

# ``allowed`` filters (see KeywordIndex.search) pick the cheapest plan by these costs, measured
# at 10^7 rows on 2 cores: over-fetching ~1.5 us per hit fetched and checked; a term-set filter
# ~11 us per allowed id; a range filter ~1 ns per indexed row per contiguous run (a scan of the
# row_id column).
ROUND_NS = 1_500
TERMSET_NS = 11_000
RANGE_NS = 1
TERMSET_MAX = 100_000  # ~1 s of term-set filter: beyond it, keep over-fetching instead
ROUND_MAX = 200_000  # hits per over-fetch round before an in-index filter is considered

Hits = list[tuple[int, float]]


def index_dir(name: str, root: Path | None = None) -> Path:
    """Where dataset ``name`` keeps its keyword index (a symlink to the current build)."""
    return paths.dataset_dir(name, root) / "keyword"


_CACHE: OrderedDict[str, tuple[str, KeywordIndex]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


class KeywordIndex:
    """An open index: cheap to share between threads and Streamlit sessions.

    :meth:`open` caches one object per folder and returns it again until a rebuild swaps the
    link, so callers can simply call ``KeywordIndex.open(path)`` on every rerun.
    """

    def __init__(self, out_dir: Path, real: Path, index: tantivy.Index, meta: dict) -> None:
        self.path = out_dir
        self.real_path = real  # changes with every build: a good cache key
        self.meta = meta
        self._index = index
        self._schema = index.schema
        self._tokenizer = meta.get("tokenizer", "default")
        self._searcher = index.searcher()

    @property
    def num_docs(self) -> int:
        return self._searcher.num_docs

    @classmethod
    def open(cls, out_dir: Path) -> KeywordIndex:
        """The index at ``out_dir``, or :class:`KeywordIndexMissing` naming the build command
        (:class:`KeywordIndexStale` when the store beside it was rebuilt since)."""
        out_dir = Path(out_dir).absolute()
        key = str(out_dir)
        for attempt in range(2):  # a concurrent rebuild may delete the folder we just resolved
            real = out_dir.resolve()
            with _CACHE_LOCK:
                hit = _CACHE.get(key)
                if hit is not None and hit[0] == str(real):
                    _CACHE.move_to_end(key)
            if hit is not None and hit[0] == str(real):
                _check_store(out_dir, hit[1].meta)  # outside the lock: it takes it too
                return hit[1]
            try:
                obj = cls._load(out_dir, real)
                break
            except KeywordIndexMissing:
                if attempt or out_dir.resolve() == real:
                    raise
        with _CACHE_LOCK:
            _CACHE[key] = (str(real), obj)
            _CACHE.move_to_end(key)
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        _check_store(out_dir, obj.meta)
        return obj

    @classmethod
    def _load(cls, out_dir: Path, real: Path) -> KeywordIndex:
        how = f"run `{build_command(out_dir)}`"
        if not (real / "meta.json").is_file():
            raise KeywordIndexMissing(f"no keyword index at {out_dir}: {how}")
        try:
            meta = json.loads((real / "meta.json").read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("meta.json is not an object")
            if meta.get("format") != FORMAT:
                raise ValueError(f"index format {meta.get('format')!r}, expected {FORMAT}")
            index = tantivy.Index.open(str(real / "tantivy"))
            index.config_reader(reload_policy="manual")  # immutable once built: no watcher
            names = _field_names(index.schema)
            if names is not None and not {ROW_FIELD, TEXT_FIELD} <= names:
                raise ValueError(f"unexpected fields {sorted(names)}")
            obj = cls(out_dir, real, index, meta)
            if obj.num_docs != meta.get("docs"):
                raise ValueError(f"{obj.num_docs} docs, meta.json says {meta.get('docs')}")
        except BaseException as e:
            if not _is_library_error(e):
                raise
            raise KeywordIndexMissing(
                f"the keyword index at {out_dir} is unreadable ({_first_line(e)}): "
                f"rebuild it with `{build_command(out_dir)}`"
            ) from e
        return obj

    # -- queries --------------------------------------------------------------------------

    def compile(self, query: str) -> tantivy.Query:
        """The tantivy query for user text (raises :class:`KeywordQueryError`)."""
        return self._compile(query)[0]

    def _compile(self, query: str) -> tuple[tantivy.Query, bool]:
        """The query, and whether every hit scores the same (prefix-only or exclusion-only)."""
        clauses = parse_query(query, self._tokenizer)
        constant = all(c.occur == "-" or (c.prefix and not c.terms) for c in clauses)
        try:
            return self._to_query(clauses), constant
        except BaseException as e:
            if not _is_library_error(e):
                raise
            raise KeywordQueryError(f"cannot search for {_short(query)}: {_first_line(e)}") from e

    def describe(self, query: str) -> str:
        """How the query was understood (e.g. ``+cat "red car" coff*``), for showing to users."""
        return " ".join(c.describe() for c in parse_query(query, self._tokenizer))

    def _to_query(self, clauses: Sequence[Clause]) -> tantivy.Query:
        Occur = tantivy.Occur
        occurs = {"": Occur.Should, "+": Occur.Must, "-": Occur.MustNot}
        subs = [(occurs[c.occur], self._clause_query(c)) for c in clauses]
        if len(subs) == 1 and subs[0][0] != Occur.MustNot:
            return subs[0][1]
        if all(o == Occur.MustNot for o, _ in subs):  # "-word" alone: every row without it
            subs.insert(0, (Occur.Must, tantivy.Query.all_query()))
        return tantivy.Query.boolean_query(subs)

    def _clause_query(self, c: Clause) -> tantivy.Query:
        Q, s, f = tantivy.Query, self._schema, TEXT_FIELD
        if not c.prefix:
            if len(c.terms) == 1:
                return Q.term_query(s, f, c.terms[0][1])
            return Q.phrase_query(s, f, list(c.terms))
        # Terms are alphanumeric (the tokenizer splits on everything else): safe inside a regex.
        pattern = "(?:" + "|".join(c.prefix) + ").*"
        if not c.terms:
            return Q.regex_query(s, f, pattern)
        last = c.terms[-1][0] + 1
        return Q.regex_phrase_query(s, f, [*c.terms, (last, pattern)])

    def _top(self, q: tantivy.Query, limit: int) -> tuple[list[tuple[float, int]], int]:
        """At least ``limit`` (score, row_id) best first (when there are), and how many came back.

        Hits tied with the ``limit``-th are fetched too, in growing rounds up to ``ROUND_MAX``:
        tantivy breaks ties by segment, and segments differ between two builds of the same rows,
        so only with every tied hit in hand can ``_finish`` cut at the same rows (ties by row_id).
        """
        want = max(1, limit)
        fetch = want
        while True:
            hits = self._searcher.search(q, fetch, count=False).hits
            if len(hits) < fetch or hits[-1][0] < hits[want - 1][0] or fetch >= ROUND_MAX:
                break
            fetch = min(4 * fetch, max(ROUND_MAX, want))
        if not hits:
            return [], 0
        ids = self._searcher.fast_field_values(ROW_FIELD, [a for _, a in hits])
        return [(float(sc), int(r)) for (sc, _), r in zip(hits, ids, strict=True)], len(hits)

    def search(self, query: str, k: int = 50, allowed: np.ndarray | None = None) -> Hits:
        """The ``k`` best (row_id, BM25 score) for ``query``, best first, ties by row_id.

        ``allowed`` (sorted int64 row ids from the other filters) restricts the hits; you still
        get ``k`` when at least ``k`` allowed rows match. Whichever is cheaper: ids in a few
        contiguous runs become range filters inside tantivy; a small scattered set a term-set
        filter; otherwise unfiltered hits are over-fetched in growing rounds and checked
        against ``allowed``, switching to the term set if the rounds grow past ``ROUND_MAX``
        (a filter that rejects most matches). Worst case, over 100k scattered ids that reject
        almost every match, the rounds grow until every match has been fetched.
        """
        if not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"k must be a non-negative int, got {k!r}")
        q, constant = self._compile(query)
        if k == 0:
            return []
        try:
            return self._search(q, int(k), allowed, constant)
        except BaseException as e:
            if not _is_library_error(e):
                raise
            raise KeywordQueryError(f"cannot search for {_short(query)}: {_first_line(e)}") from e

    def _search(
        self, q: tantivy.Query, k: int, allowed: np.ndarray | None, constant: bool = False
    ) -> Hits:
        n = self.num_docs
        if allowed is None:
            return _finish(self._top(q, k)[0], k)
        ids = np.asarray(allowed, dtype=np.int64).ravel()
        if ids.size == 0 or n == 0:
            return []
        if ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            ids = np.unique(ids)
        m = int(ids.size)
        breaks = np.flatnonzero(np.diff(ids) != 1)
        runs = int(breaks.size) + 1
        plan, need = _plan(n, m, runs, k, constant)
        if plan != "rounds":
            return self._in_index(q, plan, ids, breaks, k)
        limit = min(need, ROUND_MAX)
        while True:
            top, got = self._top(q, limit)
            keep = [h for h, ok in zip(top, _member(ids, [r for _, r in top]), strict=True) if ok]
            if len(keep) >= k or got < limit:
                return _finish(keep, k)
            if limit < ROUND_MAX:
                limit = min(4 * limit, ROUND_MAX)
                continue
            # The filter rejects most of the best matches (or ties are in row order and the
            # allowed rows come late): filter inside the index if that beats another round.
            alt, cost = _in_index_plan(n, m, runs)
            if cost < 4 * limit * ROUND_NS:
                return self._in_index(q, alt, ids, breaks, k)
            limit *= 4

    def _in_index(
        self, q: tantivy.Query, plan: str, ids: np.ndarray, breaks: np.ndarray, k: int
    ) -> Hits:
        """Top ``k`` of ``q`` restricted to ``ids`` by a filter inside tantivy (one pass)."""
        Q = tantivy.Query
        if plan == "termset":
            f = Q.term_set_query(self._schema, ROW_FIELD, ids.tolist())
        else:
            starts = ids[np.r_[0, breaks + 1]].tolist()
            ends = ids[np.r_[breaks, ids.size - 1]].tolist()
            Int = tantivy.FieldType.Integer
            ranges = [
                Q.range_query(self._schema, ROW_FIELD, Int, a, b)
                for a, b in zip(starts, ends, strict=True)
            ]
            f = (
                ranges[0]
                if len(ranges) == 1
                else Q.boolean_query([(tantivy.Occur.Should, r) for r in ranges])
            )
        return _finish(self._top(self._filtered(q, f), k)[0], k)

    @staticmethod
    def _filtered(q: tantivy.Query, f: tantivy.Query) -> tantivy.Query:
        # Score 0 for the filter: the BM25 scores stay those of the unfiltered query.
        zero = tantivy.Query.const_score_query(f, 0.0)
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, q), (tantivy.Occur.Must, zero)])

    def count(self, query: str) -> int:
        """How many rows match ``query`` (exact; costs a full pass over the matching postings)."""
        q = self.compile(query)
        try:
            return int(self._searcher.search(q, 1, count=True).count)
        except BaseException as e:
            if not _is_library_error(e):
                raise
            raise KeywordQueryError(f"cannot count {_short(query)}: {_first_line(e)}") from e


def _plan(n: int, m: int, runs: int, k: int, constant: bool = False) -> tuple[str, int]:
    """Cheapest way to apply ``m`` allowed ids in ``runs`` contiguous runs to ``n`` rows.

    Returns the plan and the hits over-fetching expects to need: about k / density to find k
    allowed ones, doubled for luck. That estimate assumes the filter is unrelated to the
    ranking; when every hit scores the same (``constant``), ties come back in index order,
    which follows row_id, so a clustered filter can sit behind millions of tied hits: then an
    in-index filter is used whenever it is affordable.
    """
    need = max(4 * k, -(-2 * k * n // m))
    alt, alt_cost = _in_index_plan(n, m, runs)
    rounds = min(need, ROUND_MAX) * ROUND_NS
    if alt_cost <= rounds or (constant and alt_cost <= ROUND_MAX * ROUND_NS):
        return alt, need
    return "rounds", need


def _in_index_plan(n: int, m: int, runs: int) -> tuple[str, float]:
    """The cheaper in-index filter (``range`` or ``termset``) and its estimated cost in ns."""
    termset = m * TERMSET_NS if m <= TERMSET_MAX else float("inf")
    ranges = runs * n * RANGE_NS
    return ("range", ranges) if ranges <= termset else ("termset", termset)


def _member(sorted_ids: np.ndarray, values: list[int]) -> np.ndarray:
    v = np.asarray(values, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, v)
    pos[pos == sorted_ids.size] = 0
    return sorted_ids[pos] == v


def _finish(hits: list[tuple[float, int]], k: int) -> Hits:
    hits.sort(key=lambda h: (-h[0], h[1]))
    return [(r, s) for s, r in hits[:k]]


def _field_names(schema: tantivy.Schema) -> set[str] | None:
    """Field names from the schema's repr (the bindings expose no accessor); None if unknown."""
    names = set(re.findall(r'name: "([^"]+)"', repr(schema)))
    return names or None


def _is_library_error(e: BaseException) -> bool:
    """Errors tantivy/IO raise for bad data (incl. pyo3 panics), not bugs or Ctrl-C."""
    return isinstance(e, ValueError | OSError | KeyError | TypeError | RuntimeError) or (
        type(e).__name__ == "PanicException"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    return line if len(line) <= 160 else line[:157] + "..."
