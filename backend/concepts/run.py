"""One vocabulary over one dataset: match every caption (and, when asked, every image), then
keep the result set under ``<dataset>/concepts/<vocab>/``.

Files: ``vocab.json`` (the concepts and phrasings used), ``hits.parquet`` (``row_id``,
``concept_id``: caption side), ``image_hits.parquet`` (image side, when run), ``counts.parquet``
(per concept: caption and image counts, misalignment) and ``summary.json`` (slope, shares,
dataset-level misalignment, parameters). The folder is written aside and swapped in whole, so
a result set is either the old one or the new one, never half of each.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from backend import paths
from backend.concepts import stats
from backend.concepts.match import match_captions, matcher
from backend.concepts.vocab import Vocabulary
from backend.executor import Executor, Unit, counting
from backend.manifest import now, read_manifest, step_record, update_manifest, write_json_atomic
from backend.store import connect

CHUNK = 50_000
Progress = Callable[[str, int, int], None]


def concepts_dir(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / "concepts"


def caption_hits(
    name: str, vocab: Vocabulary, root: Path | None = None, plurals: bool = True,
    chunk: int = CHUNK, progress: Progress | None = None, executor: Executor | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """(row ids, concept ids) of every caption hit, streamed from the store in Arrow batches,
    and the number of rows read. With ``executor``, one unit per source shard runs there."""
    if executor is not None:
        return _caption_hits_units(name, vocab, root, plurals, chunk, progress, executor)
    m = matcher(vocab, plurals)
    con = connect(name, root)
    try:
        total = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        rows, ids = _match_range(m, con, 0, total, chunk, progress, total)
    finally:
        con.close()
    return rows, ids, int(total)


def _match_range(m, con, lo, hi, chunk, progress=None, total=0) -> tuple[np.ndarray, np.ndarray]:
    """Hits of the captions of rows ``[lo, hi)``, read in Arrow batches of ``chunk``."""
    rows_out: list[np.ndarray] = [np.zeros(0, np.int64)]
    ids_out: list[np.ndarray] = [np.zeros(0, np.int32)]
    reader = (
        con.cursor()
        .sql(
            "SELECT row_id, caption FROM samples "
            f"WHERE row_id >= {int(lo)} AND row_id < {int(hi)} ORDER BY row_id"
        )
        .to_arrow_reader(chunk)
    )
    done = 0
    for batch in reader:
        row_ids = batch.column(0).to_numpy()
        idx, cids = match_captions(m, batch.column(1).to_pylist())
        rows_out.append(row_ids[idx].astype(np.int64))
        ids_out.append(cids.astype(np.int32))
        done += batch.num_rows
        if progress:
            progress("caption concepts", done, total)
    return np.concatenate(rows_out), np.concatenate(ids_out)


_WORKER_MATCHERS: dict[tuple[str, int, bool], object] = {}


def concepts_unit(
    name: str, root: Path | None, vocab: Vocabulary, plurals: bool, lo: int, hi: int,
    out: Path, chunk: int,
) -> int:  # fmt: skip
    """Match the captions of rows ``[lo, hi)``; commit ``out/<lo>.npz`` atomically; the
    automaton is compiled once per worker process and vocabulary."""
    key = (vocab.name, len(vocab), plurals)
    if key not in _WORKER_MATCHERS:
        _WORKER_MATCHERS.clear()
        _WORKER_MATCHERS[key] = matcher(vocab, plurals)
    con = connect(name, root)
    try:
        rows, ids = _match_range(_WORKER_MATCHERS[key], con, lo, hi, chunk)
    finally:
        con.close()
    tmp = out / f".{lo:012d}.{os.getpid()}.tmp.npz"
    np.savez(tmp, rows=rows, ids=ids)
    os.replace(tmp, out / f"{lo:012d}.npz")
    return hi - lo


def _caption_hits_units(name, vocab, root, plurals, chunk, progress, executor):
    """Caption hits, one unit per source shard on ``executor``; committed shards are kept
    (under ``concepts/.parts/<vocab>``) so a rerun after a crash does only what is left."""
    from backend.embed import unit_ranges

    root = paths.workspace() if root is None else root  # workers may have another environment
    con = connect(name, root)
    try:
        total = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        ranges = unit_ranges(con)
    finally:
        con.close()
    parts = concepts_dir(name, root) / ".parts" / vocab.name
    digest = hashlib.sha256(json.dumps(vocab.to_dict(), sort_keys=True).encode()).hexdigest()
    meta = {"vocab": digest, "plurals": plurals, "rows": total, "ranges": ranges}
    if read_manifest(parts / "meta.json") != json.loads(json.dumps(meta)):
        shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True, exist_ok=True)
    write_json_atomic(parts / "meta.json", meta)
    todo = [(lo, hi) for lo, hi in ranges if not (parts / f"{lo:012d}.npz").is_file()]
    done = total - sum(hi - lo for lo, hi in todo)
    finished = counting(progress, "caption concepts", done, total)
    units = [
        Unit(f"rows {lo}-{hi}", concepts_unit, (name, root, vocab, plurals, lo, hi, parts, chunk))
        for lo, hi in todo
    ]
    executor.run(units, finished)
    rows_out, ids_out = [], []
    for lo, _hi in ranges:
        with np.load(parts / f"{lo:012d}.npz") as z:
            rows_out.append(z["rows"])
            ids_out.append(z["ids"])
    shutil.rmtree(parts, ignore_errors=True)
    try:  # the empty ``.parts`` folder too, unless another vocabulary's run is using it
        parts.parent.rmdir()
    except OSError:
        pass
    if not rows_out:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), int(total)
    return np.concatenate(rows_out), np.concatenate(ids_out), int(total)


MINE_SAMPLE = 200_000


def mine_store(name: str, root: Path | None = None, top: int = 1000,
               sample: int = MINE_SAMPLE) -> Vocabulary:  # fmt: skip
    """A vocabulary mined from the captions of dataset ``name`` (a seeded reservoir sample of
    ``sample`` captions on big datasets: frequent phrases do not need every caption)."""
    from backend.concepts.vocab import mine

    con = connect(name, root)
    try:
        caps = [c for (c,) in con.execute(
            f"SELECT caption FROM samples USING SAMPLE reservoir({int(sample)} ROWS) "
            "REPEATABLE (0)").fetchall()]  # fmt: skip
    finally:
        con.close()
    return mine(caps, top=top)


def analyse(
    name: str, vocab: Vocabulary, root: Path | None = None, plurals: bool = True,
    images: bool = False, top_k: int = 5, chunk: int = CHUNK, progress: Progress | None = None,
    executor: Executor | None = None,
) -> dict:  # fmt: skip
    """Run ``vocab`` over dataset ``name`` and store its result set; returns the summary.

    ``images``: also tag images (CLIP zero-shot when the dataset has CLIP vectors and the
    weights load; else the packaged ImageNet model, ImageNet vocabulary only). When the image
    side cannot run, the summary's ``image_note`` says why and the caption side still counts."""
    paths.check_name(vocab.name)
    t0, started = time.perf_counter(), now()
    rows, ids, n_rows = caption_hits(name, vocab, root, plurals, chunk, progress, executor)
    n = len(vocab)
    cap_counts = np.bincount(ids, minlength=n)
    img = None
    note = "image side not run: count again with the image side on (CLI: --images)"
    if images:
        img, note = _image_side(name, vocab, root, top_k, progress)
    table = {"concept_id": np.arange(n, dtype=np.int32), "concept": vocab.concepts,
             "caption_count": cap_counts}  # fmt: skip
    summary = {
        "vocab": vocab.name, "source": vocab.source, "concepts": n, "rows": n_rows,
        "rows_with_concept": int(len(np.unique(rows))), "hits": int(len(rows)),
        "plurals": plurals, "vocab_notes": vocab.notes, "image_note": note,
        "caption_slope": stats.fit_slope(cap_counts), "caption_shares": stats.shares(cap_counts),
        "created": started,
    }  # fmt: skip
    if img is not None:
        irows, iids, scored = img
        img_counts = np.bincount(iids, minlength=n)
        mis = stats.misalignment(rows, ids, irows, iids, n, scored)
        table.update(image_count=img_counts, caption_only=mis["caption_only"],
                     image_only=mis["image_only"])  # fmt: skip
        summary.update(image_rows=int(len(scored)), image_slope=stats.fit_slope(img_counts),
                       misalignment={k: mis[k] for k in ("rows_named", "rows_misaligned",
                                                         "rate")})  # fmt: skip
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    _write(name, vocab, root, rows, ids, img, pa.table(table), summary)
    _record(name, root, vocab, plurals, images, executor, started, summary)
    return summary


def _record(name, root, vocab, plurals, images, executor, started, summary) -> None:
    """The ``concepts`` step in the manifest (the home page's pipeline pill reads it); the
    record is of the last vocabulary counted and lists every result set the dataset holds."""
    params = {"vocab": vocab.name, "source": vocab.source, "plurals": plurals, "images": images,
              "executor": executor.describe() if executor else {"kind": "in-process"}}  # fmt: skip
    record = step_record(params, started, summary["seconds"], concepts=summary["concepts"],
                         rows=summary["rows"], hits=summary["hits"],
                         rows_with_concept=summary["rows_with_concept"],
                         image_note=summary["image_note"],
                         vocabs=list_vocabs(name, root))  # fmt: skip
    update_manifest(paths.manifest_path(name, root), "concepts", record)


def _image_side(name, vocab, root, top_k, progress):
    from backend.concepts.images import clip_hits, imagenet_hits
    from backend.models import ModelUnavailable

    try:
        r, c, s, note = clip_hits(name, vocab, root, top_k)
        return (r, c, s), note
    except (ModelUnavailable, FileNotFoundError, ValueError) as e:
        why = f"CLIP zero-shot skipped: {e}"
    if not vocab.imagenet_class:
        return None, why + "; without CLIP the image side needs the ImageNet vocabulary"
    try:
        r, c, s, note = imagenet_hits(name, vocab, root, top_k, progress)
    except ModelUnavailable as e:
        return None, f"{why}; the packaged ImageNet model is unavailable too: {e}"
    return (r, c, s), f"{why}. {note}"


def _hits_table(rows: np.ndarray, ids: np.ndarray) -> pa.Table:
    order = np.lexsort((ids, rows))
    return pa.table({"row_id": rows[order].astype(np.int64),
                     "concept_id": ids[order].astype(np.int32)})  # fmt: skip


def _write(name, vocab, root, rows, ids, img, counts, summary) -> None:
    base = concepts_dir(name, root)
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=f".{vocab.name}."))
    try:
        write_json_atomic(tmp / "vocab.json", vocab.to_dict())
        pq.write_table(_hits_table(rows, ids), tmp / "hits.parquet")
        if img is not None:
            pq.write_table(_hits_table(img[0], img[1]), tmp / "image_hits.parquet")
            np.save(tmp / "image_rows.npy", np.asarray(img[2], np.int64))
        pq.write_table(counts, tmp / "counts.parquet")
        write_json_atomic(tmp / "summary.json", _jsonable(summary))
        final = base / vocab.name
        old = None
        if final.exists():
            old = base / f".{vocab.name}.old-{time.time_ns()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and x != x:
        return None
    return x


@dataclass
class Result:
    """A stored result set: the vocabulary, per-concept table and summary, read small. The hits
    (``rows``, ``ids``: one entry per caption hit, 1.3×10^8 at 10^8 rows) are read from
    ``hits.parquet`` only when first asked for; the page's counts and filters do not ask."""

    vocab: Vocabulary
    counts: pa.Table
    summary: dict
    folder: Path
    _hits: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def _load_hits(self) -> tuple[np.ndarray, np.ndarray]:
        if self._hits is None:
            hits = pq.read_table(self.folder / "hits.parquet")
            self._hits = (hits["row_id"].to_numpy(), hits["concept_id"].to_numpy())
        return self._hits

    @property
    def rows(self) -> np.ndarray:
        return self._load_hits()[0]

    @property
    def ids(self) -> np.ndarray:
        return self._load_hits()[1]

    def hits_loaded(self) -> bool:
        return self._hits is not None

    def count_of(self) -> dict[str, int]:
        """Caption count by concept name."""
        return dict(zip(self.vocab.concepts, self.counts["caption_count"].to_pylist(),
                        strict=True))  # fmt: skip


def list_vocabs(name: str, root: Path | None = None) -> list[str]:
    """Names of the vocabularies this dataset has result sets for."""
    base = concepts_dir(name, root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir()
                  if not p.name.startswith(".") and (p / "summary.json").is_file())  # fmt: skip


def load(name: str, vocab_name: str, root: Path | None = None) -> Result:
    """The stored result set of ``vocab_name`` (FileNotFoundError saying how to make it)."""
    paths.check_name(vocab_name)
    folder = concepts_dir(name, root) / vocab_name
    if not (folder / "summary.json").is_file():
        raise FileNotFoundError(f"dataset {name!r} has no concept counts for {vocab_name!r}: run "
                                f"`python -m backend concepts {name} --vocab ...`")  # fmt: skip
    vocab = Vocabulary.from_dict(read_manifest(folder / "vocab.json"))
    return Result(vocab, pq.read_table(folder / "counts.parquet"),
                  read_manifest(folder / "summary.json"), folder)  # fmt: skip


def rows_with(result: Result, concepts: list[str] | list[int]) -> np.ndarray:
    """Sorted row ids whose caption names any of ``concepts`` (names or ids)."""
    index = {c: i for i, c in enumerate(result.vocab.concepts)}
    want = []
    for c in concepts:
        if isinstance(c, str):
            if c not in index:
                raise ValueError(f"{c!r} is not a concept of vocabulary {result.vocab.name!r}")
            want.append(index[c])
        else:
            want.append(int(c))
    return np.unique(result.rows[np.isin(result.ids, want)])
