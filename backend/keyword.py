"""Full-text search over captions: a tantivy (BM25) index kept beside the dataset's store.

Why a separate index: a DuckDB ``ILIKE '%word%'`` scans every caption (1-2 s per query at 10^7
rows on 2 cores) and cannot rank; an inverted index answers in milliseconds and ranks with BM25
(``bench/keyword.py``). The store stays the source of truth; the index only maps words to
``row_id``.

Layout: ``<dataset>/keyword`` is a symlink to ``<dataset>/.keyword.<stamp>/`` holding our
``meta.json`` (build stats) and ``tantivy/`` (the index). A build writes a new folder aside and
swaps the link with one atomic rename, so readers see the old index or the new one, never half
of one, and a failed build leaves the previous index untouched.

Query syntax (see :func:`parse_query`), written for people rather than for tantivy's parser:

* ``red car``        any of the words; rows with more of them, rarer ones, shorter captions rank
  first (BM25). Words are lowercased and English-stemmed: ``cats`` finds ``cat`` and back.
* ``+red car``       ``+`` makes a word (or phrase) required; ``-word`` excludes it.
* ``"red car"``      an exact phrase (stemmed words, in this order, adjacent).
* ``coff*``          a prefix (at least 2 letters); ``"red ca"*`` a phrase whose last word is a
  prefix. Prefix matches all score the same (1.0 each).
* ``AND`` / ``OR`` / ``NOT`` in capitals: ``a AND b`` = ``+a +b``, ``NOT a`` = ``-a``, ``OR`` is
  the default. Lowercase ``and``/``or``/``not`` are ordinary words.
* Anything else is text: punctuation splits words, and a word that punctuation splits into
  several (``e-mail``, ``caption:cat``) is searched as a phrase. There are no fields, regexes,
  ranges or boosts, so no input can reach tantivy's own query language.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import tantivy

from backend import paths

FORMAT = 1  # bump when the schema or layout changes: older indexes then read as missing
ROW_FIELD, TEXT_FIELD = "row_id", "caption"
MAX_QUERY_CHARS = 1000
MAX_CLAUSES = 64
MAX_WORD = 40  # tantivy's analyzers drop tokens of this many bytes or more (remove_long)
MAX_PHRASE_WORDS = 32
MIN_PREFIX = 2
RRF_K = 60
# ``allowed`` filters (see KeywordIndex.search) pick the cheapest plan by these costs, measured
# at 10^7 rows on 2 cores: over-fetching ~1.5 us per hit fetched and checked; a term-set filter
# ~11 us per allowed id; a range filter ~1 ns per indexed row per contiguous run (a scan of the
# row_id column).
ROUND_NS = 1_500
TERMSET_NS = 11_000
RANGE_NS = 1
TERMSET_MAX = 100_000  # ~1 s of term-set filter: beyond it, keep over-fetching instead
ROUND_MAX = 200_000  # hits per over-fetch round before an in-index filter is considered
READ_SQL = "SELECT row_id, caption FROM samples WHERE row_id >= ? AND row_id < ? ORDER BY row_id"

Progress = Callable[[int, int], None]  # (rows indexed so far, rows in total)
Hits = list[tuple[int, float]]


class KeywordError(Exception):
    """Base of the errors this module shows to users."""


class KeywordQueryError(KeywordError, ValueError):
    """The search text cannot be run; the message says why in plain words."""


class KeywordIndexMissing(KeywordError, FileNotFoundError):
    """No usable index (never built, corrupt, or built by an older format): say how to build."""


class KeywordIndexStale(KeywordIndexMissing):
    """The index was built from an earlier build of the store: its row ids would be wrong."""


def index_dir(name: str, root: Path | None = None) -> Path:
    """Where dataset ``name`` keeps its keyword index (a symlink to the current build)."""
    return paths.dataset_dir(name, root) / "keyword"


_BUILDS: dict[tuple[str, str], str] = {}  # (dataset folder, store file) -> ingest build id


def store_build(out_dir: Path) -> str | None:
    """The ingest build id (:func:`backend.subsets.build_fingerprint`) of the store beside the
    index at ``out_dir``, or None where there is none (an index built on its own). Derived
    columns (map, scores) swap in a new store file but keep the build; a rebuild changes it.
    Cached per store file, so a check on every query costs a readlink."""
    from backend.subsets import build_fingerprint

    ds = Path(out_dir).absolute().parent
    try:
        key = (str(ds), (ds / "store.duckdb").resolve(strict=True).name)
    except OSError:
        return None
    with _CACHE_LOCK:
        if key in _BUILDS:
            return _BUILDS[key]
    try:
        fp = build_fingerprint(ds.name, ds.parent)
    except (duckdb.Error, OSError, ValueError):  # a store being swapped, or not one of ours
        return None
    with _CACHE_LOCK:
        if len(_BUILDS) > 256:
            _BUILDS.clear()
        _BUILDS[key] = fp
    return fp


def _fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    from backend.subsets import fingerprint_of

    try:
        return fingerprint_of(con)
    except duckdb.Error:  # a bare table without our build_manifest (tests, benches)
        return None


def _older_than_ingest(out_dir: Path, meta: dict) -> bool:
    """For an index from before build ids were recorded: built before the store's ingest?"""
    from datetime import datetime

    ingest = paths.manifest_path(Path(out_dir).absolute().parent.name,
                                 Path(out_dir).absolute().parent.parent)  # fmt: skip
    try:
        steps = json.loads(ingest.read_text(encoding="utf-8")).get("steps", {})
        store_at = datetime.fromisoformat(steps["ingest"]["finished_at"])
        index_at = datetime.strptime(str(meta.get("built_at")), "%Y-%m-%dT%H:%M:%S%z")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # nothing to judge by: keep the index
    return index_at < store_at


def _check_store(out_dir: Path, meta: dict) -> None:
    """Refuse an index built from another ingest build of the store: a rebuild renumbers rows
    and changes captions, so its hits would be stale."""
    built = meta.get("store_build")
    if built is None and not _older_than_ingest(out_dir, meta):
        return
    now = store_build(out_dir)
    if now is None or built == now:
        return
    raise KeywordIndexStale(
        f"the keyword index of {Path(out_dir).absolute().parent.name!r} was built from an "
        f"earlier build of the store, so its hits would be wrong: rebuild it with "
        f"`{build_command(out_dir)}`"
    )


def build_command(out_dir: Path) -> str:
    """The command that (re)builds the index at ``out_dir`` (``<dataset>/keyword``)."""
    return f"python -m backend index {Path(out_dir).absolute().parent.name}"


# --------------------------------------------------------------------------------------------
# Analysis: the query side must turn words into exactly the terms the index holds.


def _analyzer(tokenizer: str, stem: bool) -> tantivy.TextAnalyzer:
    """Python twin of tantivy's built-in ``default``/``en_stem`` analyzers (same filter chain)."""
    b = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_WORD))
        .filter(tantivy.Filter.lowercase())
    )
    if stem and tokenizer == "en_stem":
        b = b.filter(tantivy.Filter.stemmer("english"))
    return b.build()


def _schema(tokenizer: str) -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    # indexed: term-set filters on ``allowed``; fast: row id of a hit and range filters.
    sb.add_integer_field(ROW_FIELD, stored=False, indexed=True, fast=True)
    # positions: phrase queries. Not stored: the caption text lives in the DuckDB store.
    sb.add_text_field(TEXT_FIELD, stored=False, tokenizer_name=tokenizer, index_option="position")
    return sb.build()


def _pick_tokenizer() -> str:
    """``en_stem`` (lowercase + English stemmer) when these bindings have it, else ``default``."""
    try:
        probe = tantivy.Index(_schema("en_stem"))  # in RAM
        w = probe.writer(heap_size=15_000_000, num_threads=1)
        w.add_document(tantivy.Document(**{ROW_FIELD: 0, TEXT_FIELD: "cats"}))
        w.commit()
        probe.reload()
        return "en_stem" if probe.searcher().doc_freq(TEXT_FIELD, "cat") == 1 else "default"
    except Exception:  # noqa: BLE001 - any failure means: use the plain tokenizer
        return "default"


# --------------------------------------------------------------------------------------------
# Build


def build_index(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    progress: Progress | None = None,
    heap_mb: int = 256,
    *,
    chunk_rows: int = 100_000,
    commit_rows: int = 2_000_000,
) -> dict:
    """Index every caption of ``samples`` into ``out_dir``; return the stats (also in meta.json).

    Captions are read in ``row_id`` chunks so memory stays flat at any table size; the writer's
    arena is ``heap_mb`` in total (tantivy flushes a segment whenever a thread's share fills) and
    we commit every ``commit_rows`` rows. One indexing thread per core, up to 8. All of it goes
    into a fresh folder that only becomes visible through the final link swap.
    """
    out_dir = Path(out_dir).absolute()
    threads = max(1, min(os.cpu_count() or 1, 8, heap_mb // 16))
    if heap_mb < 16:
        raise ValueError(f"heap_mb={heap_mb} is too small: tantivy needs at least 16 MB")
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out_dir)
    tmp = parent / f".{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    store = _fingerprint(con)  # the build this index is made from
    try:
        stats = _write(con, tmp, progress, heap_mb, threads, chunk_rows, commit_rows, store)
        final = parent / f".{out_dir.name}.{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        os.rename(tmp, final)
        _fsync_dir(parent)
        try:
            _swap_link(out_dir, final)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def _write(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    progress: Progress | None,
    heap_mb: int,
    threads: int,
    chunk_rows: int,
    commit_rows: int,
    store: str | None = None,
) -> dict:
    t0 = time.perf_counter()
    total, lo, hi = con.execute("SELECT count(*), min(row_id), max(row_id) FROM samples").fetchone()
    tokenizer = _pick_tokenizer()
    (folder / "tantivy").mkdir()
    index = tantivy.Index(_schema(tokenizer), path=str(folder / "tantivy"), reuse=False)
    heap = min(heap_mb, 4000 * threads) * 1_000_000  # tantivy: 15 MB..4 GB per thread
    writer = index.writer(heap_size=heap, num_threads=threads)
    done = since_commit = 0
    doc_cls = tantivy.Document
    try:
        if total:
            for start in range(lo, hi + 1, chunk_rows):
                rows = con.execute(READ_SQL, [start, start + chunk_rows]).fetchall()
                for row_id, caption in rows:
                    doc = doc_cls()
                    doc.add_integer(ROW_FIELD, row_id)
                    if caption:
                        doc.add_text(TEXT_FIELD, caption)
                    writer.add_document(doc)
                done += len(rows)
                since_commit += len(rows)
                if since_commit >= commit_rows:
                    writer.commit()
                    since_commit = 0
                if progress:
                    progress(done, total)
        writer.commit()
        writer.wait_merging_threads()  # consumes the writer: merges finish, lock released
    except BaseException:
        try:
            writer.rollback()
        except BaseException:  # noqa: BLE001 - already failing; the folder is deleted anyway
            pass
        raise
    del writer
    index.reload()
    searcher = index.searcher()
    if searcher.num_docs != done:
        raise RuntimeError(f"keyword index holds {searcher.num_docs} docs, expected {done}")
    stats = {
        "format": FORMAT,
        "docs": done,
        "seconds": round(time.perf_counter() - t0, 3),
        "size_bytes": _du(folder / "tantivy"),
        "segments": searcher.num_segments,
        "tokenizer": tokenizer,
        "threads": threads,
        "heap_mb": heap_mb,
        "tantivy": getattr(tantivy, "__version__", "?"),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "store_build": store,
    }
    meta = folder / "meta.json"
    with open(meta, "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    return stats


def _du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _swap_link(out_dir: Path, final: Path) -> None:
    """Point ``out_dir`` at ``final`` with one rename; then delete what it pointed at before."""
    parent, name = out_dir.parent, out_dir.name
    old: Path | None = None
    if out_dir.is_symlink():
        old = parent / os.readlink(out_dir)
    elif out_dir.exists():  # a plain folder (copied in by hand): move it aside first
        old = parent / f".{name}.old-{secrets.token_hex(4)}"
        os.rename(out_dir, old)
    link = parent / f".{name}.link-{os.getpid()}-{secrets.token_hex(4)}"
    os.symlink(final.name, link)  # relative: the dataset folder can move
    os.replace(link, out_dir)
    _fsync_dir(parent)
    if old is not None and old.resolve() != final.resolve():
        # Open readers keep working: their files are mmapped and unlinking keeps the data.
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale(out_dir: Path, min_age_s: float = 600) -> None:
    """Delete leftovers of crashed builds: temp folders of dead processes, unlinked builds.

    A finished build not (yet) linked is kept for ``min_age_s``: it may be another process's
    build between its rename and its link swap.
    """
    parent, name = out_dir.parent, out_dir.name
    current = out_dir.resolve() if out_dir.is_symlink() else None
    for p in parent.glob(f".{name}.*"):
        rest = p.name[len(name) + 2 :]
        if rest.startswith(("tmp-", "link-")):
            pid = rest.split("-")[1]
            if pid.isdigit() and _alive(int(pid)):
                continue
        elif (current is not None and p.resolve() == current) or _age(p) < min_age_s:
            continue
        if p.is_symlink() or p.is_file():
            p.unlink(missing_ok=True)
        else:
            shutil.rmtree(p, ignore_errors=True)


def _age(p: Path) -> float:
    try:
        return time.time() - p.lstat().st_mtime
    except OSError:
        return float("inf")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_dataset(
    name: str,
    root: Path | None = None,
    progress: Progress | None = None,
    heap_mb: int = 256,
    duckdb_mb: int = 256,
) -> dict:
    """Build the keyword index of dataset ``name`` from its store (what ``index NAME`` runs).

    The store is opened read-only with a ``duckdb_mb`` memory limit: a scan of every caption
    otherwise fills DuckDB's block cache (~0.9 GB more at 10^7 rows, growing with the table).
    """
    from backend.store import connect, parquet_parts

    connect(name, root).close()  # raises StoreMissing with the build command when absent
    if parquet_parts(name, root):  # samples is a view over parquet: the allowed-files connection
        con = connect(name, root)
        try:
            con.execute(f"SET memory_limit = '{int(duckdb_mb)}MB'")
        except duckdb.Error:  # configuration locked: keep the default limit
            pass
        try:
            return build_index(con, index_dir(name, root), progress=progress, heap_mb=heap_mb)
        finally:
            con.close()
    try:
        con = duckdb.connect(
            str(paths.store_path(name, root).resolve()),
            read_only=True,
            config={
                "memory_limit": f"{duckdb_mb}MB",
                "enable_external_access": False,
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
            },
        )
    except duckdb.Error:  # already open in this process with other settings: share those
        con = connect(name, root)
    try:
        return build_index(con, index_dir(name, root), progress=progress, heap_mb=heap_mb)
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# Query parsing


@dataclass(frozen=True)
class Clause:
    """One unit of a parsed query: ``occur`` is ``+`` (must), ``-`` (must not) or ``""``."""

    occur: str
    terms: tuple[tuple[int, str], ...]  # (position, analysed term) of the non-prefix words
    prefix: tuple[str, ...] = ()  # forms of the last word's prefix when it ends with ``*``
    label: str = ""  # the words as typed, lowercased, for showing back to the user

    def describe(self) -> str:
        text = self.label + ("*" if self.prefix else "")
        quoted = f'"{self.label}"' + ("*" if self.prefix else "") if " " in self.label else text
        return self.occur + quoted


_LEX = re.compile(r'\s*([+-]*)(?:"([^"]*)("?)(\**)|([^\s"]+))')


def parse_query(query: object, tokenizer: str = "en_stem") -> list[Clause]:
    """Turn user text into clauses, or raise :class:`KeywordQueryError` saying what is wrong.

    Lenient by design: unbalanced quotes close at the end, punctuation is a word separator,
    stray operators are ignored. Errors are kept for what we cannot guess: nothing to search for,
    a query too long to be a search, a prefix too short to be useful.
    """
    if not isinstance(query, str):
        raise KeywordQueryError("the search text must be a string")
    if len(query) > MAX_QUERY_CHARS:
        raise KeywordQueryError(
            f"the search text is {len(query):,} characters long; keep it under "
            f"{MAX_QUERY_CHARS:,} (a few words, phrases in quotes)"
        )
    if not query.strip():
        raise KeywordQueryError("type a word to search for")
    stem = _analyzer(tokenizer, stem=True)
    lower = _analyzer(tokenizer, stem=False)
    clauses: list[Clause] = []
    next_occur = ""
    and_pending = False
    pos = 0
    while pos < len(query):
        m = _LEX.match(query, pos)
        if m is None:  # only trailing whitespace left
            break
        pos = m.end()
        signs, phrase, _closed, stars, word = m.groups()
        if word in ("AND", "OR", "NOT") and not signs:
            if word == "NOT":
                next_occur = "-"
            elif word == "AND":
                and_pending = True
                if clauses and clauses[-1].occur == "":
                    clauses[-1] = replace(clauses[-1], occur="+")
            continue
        occur = "-" if "-" in signs[:1] else "+" if signs[:1] == "+" else ""
        if next_occur:
            occur, next_occur = next_occur, ""
        elif and_pending and occur == "":
            occur = "+"
        and_pending = False
        if phrase is not None:
            text, is_prefix = phrase, bool(stars)
        else:
            text, is_prefix = word.rstrip("*"), word.endswith("*")
        clause = _clause(occur, text, is_prefix, stem, lower)
        if clause is not None:
            clauses.append(clause)
        if len(clauses) > MAX_CLAUSES:
            raise KeywordQueryError(f"too many words: use at most {MAX_CLAUSES}")
    if not clauses:
        if re.search(rf"\w{{{MAX_WORD},}}", query):
            raise KeywordQueryError(
                f"words of {MAX_WORD} or more characters are not indexed: search for shorter ones"
            )
        raise KeywordQueryError(
            f"nothing to search for in {_short(query)}: use letters or digits "
            '(e.g. cat, "red car", coff*)'
        )
    return clauses


def _clause(
    occur: str, text: str, is_prefix: bool, stem: tantivy.TextAnalyzer, lower: tantivy.TextAnalyzer
) -> Clause | None:
    toks = [(t.position, t.text) for t in stem.pre_tokenize(text).tokens]
    if not toks:
        return None
    if len(toks) > MAX_PHRASE_WORDS:
        raise KeywordQueryError(f"a phrase can have at most {MAX_PHRASE_WORDS} words")
    base = toks[0][0]
    toks = [(p - base, t) for p, t in toks]
    words = lower.analyze(text)  # as typed (lowercased), not stemmed
    label = " ".join(words)
    if not is_prefix:
        return Clause(occur, tuple(toks), label=label)
    raw = words[-1]
    if len(raw) < MIN_PREFIX:
        raise KeywordQueryError(
            f"a prefix needs at least {MIN_PREFIX} letters before the * (got {raw!r}*)"
        )
    # Indexed words are stemmed ("coffee" -> "coffe"), so "coffee*" must also try its stem.
    forms = tuple(dict.fromkeys([raw, toks[-1][1]]))
    return Clause(occur, tuple(toks[:-1]), forms, label)


def _short(query: str) -> str:
    return repr(query if len(query) <= 40 else query[:37] + "...")


# --------------------------------------------------------------------------------------------
# Search


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
        """Up to ``limit`` (score, row_id) best first, and how many hits came back."""
        res = self._searcher.search(q, max(1, limit), count=False)
        hits = res.hits
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


# --------------------------------------------------------------------------------------------
# Fusion


def hybrid(keyword_hits: Hits, semantic_hits: Hits, k: int) -> Hits:
    """Merge keyword and semantic results by reciprocal-rank fusion; top ``k`` (row_id, score).

    Each list must be best first; only ranks are used, since BM25 scores and cosine
    similarities are not comparable. A row scores ``sum(1 / (60 + rank))`` (rank from 1) over
    the lists it appears in, so rows found by both rise to the top; 60 is the constant of
    Cormack et al. (2009), which keeps one list's top rank from dominating. Ties go to the
    lower row_id so the order is stable.
    """
    fused: dict[int, float] = {}
    for hits in (keyword_hits, semantic_hits):
        seen: set[int] = set()
        for rank, (row_id, _score) in enumerate(hits, start=1):
            rid = int(row_id)
            if rid in seen:
                continue
            seen.add(rid)
            fused[rid] = fused.get(rid, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))[: max(0, k)]
