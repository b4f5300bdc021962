"""The ``score`` build step: run scorers over a dataset in chunks, resumably, and join their
columns into the store.

Rows are read chunk by chunk (never the whole dataset in memory); each image is read once per
chunk and shared by every scorer that reads images. A finished chunk of a scorer is written to
``<dataset>/.scores/<scorer>/<first row>.parquet`` (row ids, its columns, an ``_error`` reason)
before the next starts, so a killed run picks up where it stopped. A row that fails gets NULLs
and its reason, kept in ``<dataset>/score_errors.parquet`` and counted in the step record; a
scorer whose package or model is missing is skipped with a message saying what to install.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from backend import paths
from backend.columns import add_columns
from backend.executor import Executor, Unit
from backend.manifest import (
    now,
    read_manifest,
    step_record,
    update_manifest,
)
from backend.safety import Context, Scorer, ScorerUnavailable, resolve
from backend.safety.chunks import (
    _chunk_path,
    _chunk_table,
    _prepare_dir,
    _read_all,
    _write_atomic,
    _write_errors,
    scores_dir,
)
from backend.safety.rows import _rows_for, _vectors, score_rows
from backend.scores import computed_name, given
from backend.store import connect

CHUNK = 256
Progress = Callable[[str, int, int], None]  # (scorer, rows done, rows total)


def _embed_record(name: str, root: Path | None) -> dict[str, Any]:
    return read_manifest(paths.manifest_path(name, root)).get("steps", {}).get("embed", {})


def _build_id(name: str, root: Path | None) -> str:
    """Which build of the store the chunks belong to (a rebuilt store invalidates them)."""
    ingest = read_manifest(paths.manifest_path(name, root)).get("steps", {}).get("ingest", {})
    return str(ingest.get("finished_at", ""))


_WORKER_SCORERS: dict[str, Scorer] = {}


def _worker_scorers(scorers: list[Scorer | str], ctx: Context) -> list[Scorer]:
    """Scorers for a unit: given objects, or loaded once per worker process by name."""
    out = []
    for s in scorers:
        if isinstance(s, str):
            key = f"{s}|{ctx.name}|{ctx.root}|{ctx.rows}"
            if key not in _WORKER_SCORERS:
                obj = resolve([s])[0]()
                obj.load(ctx)
                _WORKER_SCORERS[key] = obj
            s = _WORKER_SCORERS[key]
        out.append(s)
    return out


def score_unit(
    ctx: Context,
    scorers: list[Scorer | str],
    lo: int,
    hi: int,
    folders: dict[str, Path],
    chunk: int,
) -> tuple[int, dict[str, float]]:
    """Score rows ``[lo, hi)`` (``chunk`` rows in memory at a time) and commit one file per
    scorer at ``<folder>/<lo>.parquet``; return (rows, seconds per scorer)."""
    loaded = _worker_scorers(scorers, ctx)
    vectors = _vectors(ctx.name, ctx.root, loaded)
    parts: dict[str, list[pa.Table]] = {s.name: [] for s in loaded}
    seconds = {s.name: 0.0 for s in loaded}
    con = connect(ctx.name, ctx.root)
    try:
        for a in range(lo, hi, chunk):
            rows = _rows_for(con, a, min(hi, a + chunk), loaded, vectors)
            for s in loaded:
                t1 = time.perf_counter()
                values, errors = score_rows(s, rows)
                parts[s.name].append(_chunk_table(s, rows, values, errors))
                seconds[s.name] += time.perf_counter() - t1
    finally:
        con.close()
    for s in loaded:
        _write_atomic(pa.concat_tables(parts[s.name]), _chunk_path(folders[s.name], lo))
    return hi - lo, seconds


def _score_units(
    name: str,
    root: Path | None,
    loaded: list[Scorer],
    injected: bool,
    ctx: Context,
    con,
    n: int,
    folders: dict[str, Path],
    chunk: int,
    executor: Executor,
    progress: Progress | None,
    seconds: dict[str, float],
) -> dict[str, int]:
    """One unit per source shard on ``executor``; return rows computed per scorer (and add
    the scorers' own time in the workers to ``seconds``)."""
    from dataclasses import replace

    from backend.embed import unit_ranges

    if ctx.root is None:  # workers may have another environment: name the workspace
        ctx = replace(ctx, root=paths.workspace())
    ranges = unit_ranges(con)
    done = {s.name: n for s in loaded}
    units = []
    for lo, hi in ranges:
        todo = [s for s in loaded if not _chunk_path(folders[s.name], lo).is_file()]
        for s in todo:
            done[s.name] -= hi - lo
        if todo:
            which = todo if injected else [s.name for s in todo]
            units.append(Unit(f"rows {lo}-{hi}", score_unit, (ctx, which, lo, hi, folders, chunk)))
    computed = {s.name: n - done[s.name] for s in loaded}

    def report() -> None:
        for s in loaded:
            if progress:
                progress(s.name, done[s.name], n)

    def finished(key: str, result: tuple[int, dict[str, float]]) -> None:
        for scorer, secs in result[1].items():
            done[scorer] += result[0]
            seconds[scorer] += secs
        report()

    report()
    executor.run(units, finished)
    return computed


def _kept_shipped(scorers: list[Scorer], ship: dict[str, str], recompute: bool) -> dict[str, str]:
    """Scorer name -> why it is not run: the source gave its score (unless ``recompute``)."""
    if recompute:
        return {}
    out = {}
    for s in scorers:
        have = [c for c in s.columns if c in ship]
        if have:
            out[s.name] = "; ".join(f"{c} is {ship[c]}" for c in have) + (
                " — not recomputed (--recompute computes it here too, kept as "
                + ", ".join(f"{c}_computed" for c in have) + ")")  # fmt: skip
    return out


def _open_store(name: str, root: Path | None) -> tuple[Any, int, list[str]]:
    """An open connection to the store (the caller closes it), its row count and columns."""
    con = connect(name, root)
    try:
        n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        store_cols = [r[0] for r in con.execute("DESCRIBE samples").fetchall()]
    except BaseException:
        con.close()
        raise
    return con, n, store_cols


def _load_scorers(
    candidates: list[Scorer], ctx: Context, kept_shipped: dict[str, str],
    loaded: list[Scorer], skipped: dict[str, str],
) -> None:  # fmt: skip
    """Load each candidate not kept from the source into ``loaded``; one whose package or
    model is missing goes to ``skipped`` with what to install."""
    for s in candidates:
        if s.name in kept_shipped:
            continue
        try:
            s.load(ctx)
            loaded.append(s)
        except ScorerUnavailable as e:
            skipped[s.name] = str(e)


def _prepare_folders(
    name: str, root: Path | None, loaded: list[Scorer], n: int, chunk: int | str, rebuild: bool
) -> tuple[dict[str, Path], dict[str, int]]:
    """Each scorer's chunk folder, its finished chunks kept when they were made the same way
    (same scorer version, model, rows, chunking and store build); and how many were kept."""
    build = _build_id(name, root)
    folders, resumed = {}, {}
    for s in loaded:
        meta = {"scorer": s.name, "version": s.version, "model": s.model, "rows": n,
                "chunk": chunk, "build": build, "columns": sorted(s.columns)}  # fmt: skip
        folders[s.name] = scores_dir(name, root) / s.name
        resumed[s.name] = _prepare_dir(folders[s.name], meta, rebuild)
    return folders, resumed


def _score_here(
    con, n: int, chunk: int, loaded: list[Scorer], folders: dict[str, Path], vectors,
    progress: Progress | None, seconds: dict[str, float],
) -> float:  # fmt: skip
    """Score the chunks not yet on disk in this process, one file per scorer and chunk (adds
    each scorer's time to ``seconds``); return the seconds spent reading rows."""
    read_s = 0.0
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        todo = [s for s in loaded if not _chunk_path(folders[s.name], lo).is_file()]
        if todo:
            t_read = time.perf_counter()
            rows = _rows_for(con, lo, hi, todo, vectors)
            read_s += time.perf_counter() - t_read
            for s in todo:
                t1 = time.perf_counter()
                values, errors = score_rows(s, rows)
                _write_atomic(_chunk_table(s, rows, values, errors),
                              _chunk_path(folders[s.name], lo))  # fmt: skip
                seconds[s.name] += time.perf_counter() - t1
        if progress:
            for s in loaded:
                progress(s.name, hi, n)
    return read_s


def _join(
    name: str, root: Path | None, loaded: list[Scorer], tables: dict[str, pa.Table],
    ship: dict[str, str],
) -> tuple[list[str], int]:  # fmt: skip
    """Join the scorers' columns into the store and replace their entries in the errors file;
    return the columns added and the rows that failed."""
    joined = {"row_id": tables[loaded[0].name]["row_id"]}
    err_parts = []
    for s in loaded:
        t = tables[s.name]
        for col in s.columns:
            joined[computed_name(col, ship)] = t[col]
        bad = t.filter(pc.is_valid(t["_error"]))
        err_parts.append(pa.table({
            "scorer": pa.array([s.name] * bad.num_rows, pa.string()),
            "row_id": bad["row_id"], "reason": bad["_error"]}))  # fmt: skip
    added = add_columns(name, pa.table(joined), root)
    errors = _write_errors(name, root, pa.concat_tables(err_parts), [s.name for s in loaded])
    return added, errors


def _scorer_record(
    s: Scorer, t: pa.Table, ship: dict[str, str], resumed: int, computed: int, seconds: float
) -> dict[str, Any]:
    """One scorer's entry in the step record: its model, columns, errors and speed."""
    return {
        "version": s.version,
        "model": s.model,
        "reads": list(s.reads),
        "columns": [computed_name(c, ship) for c in s.columns],
        "errors": int(pc.sum(pc.is_valid(t["_error"])).as_py() or 0),
        "resumed_chunks": resumed,
        "rows_per_s": round(max(computed, 0) / seconds, 1) if seconds else None,
    }


def score(
    name: str,
    scorers: list[str] | None = None,
    root: Path | None = None,
    chunk: int = CHUNK,
    rebuild: bool = False,
    progress: Progress | None = None,
    instances: list[Scorer] | None = None,
    executor: Executor | None = None,
    recompute: bool = False,
) -> dict[str, Any]:  # long: 9 parameters and their docs; the body is the stages in order
    """Run ``scorers`` (None: the defaults) over dataset ``name``; return the step record.

    ``instances``: ready-made scorer objects instead of names (tests, plugins not in the
    package). The record lists ``skipped`` scorers with the reason and what to install.
    ``executor``: run one unit per source shard on it (a process pool or Ray; each worker loads
    the scorers once) instead of chunk by chunk in this process.
    A scorer whose column the pool shipped (``nsfw`` from LAION's ``punsafe``) is not run
    (``kept_shipped`` says why) unless ``recompute``; then its column is kept beside the
    shipped one as ``<column>_computed`` (:mod:`backend.scores`).
    """
    t0, started = time.perf_counter(), now()
    con, n, store_cols = _open_store(name, root)
    ctx = Context(name, root, n, _embed_record(name, root))
    loaded: list[Scorer] = []
    skipped: dict[str, str] = {}
    candidates = instances if instances is not None else [cls() for cls in resolve(scorers)]
    ship = given(read_manifest(paths.manifest_path(name, root)), store_cols)
    kept_shipped = _kept_shipped(candidates, ship, recompute)
    _load_scorers(candidates, ctx, kept_shipped, loaded, skipped)
    record_path = paths.manifest_path(name, root)
    previous = read_manifest(record_path).get("steps", {}).get("score", {})
    if not loaded or n == 0:
        con.close()
        return {"status": "skipped", "skipped": skipped, "scorers": {}, "errors": 0, "rows": n,
                "kept_shipped": kept_shipped}  # fmt: skip
    folders, resumed = _prepare_folders(name, root, loaded, n, "shard" if executor else chunk,
                                        rebuild)  # fmt: skip
    seconds = {s.name: 0.0 for s in loaded}
    vectors = _vectors(name, root, loaded)
    read_s = 0.0
    if executor is not None:
        computed = _score_units(name, root, loaded, instances is not None, ctx, con, n, folders,
                                chunk, executor, progress, seconds)  # fmt: skip
        con.close()
    else:
        computed = {s.name: n - resumed[s.name] * chunk for s in loaded}
        try:
            read_s = _score_here(con, n, chunk, loaded, folders, vectors, progress, seconds)
        finally:
            con.close()
    tables = {s.name: _read_all(folders[s.name]) for s in loaded}
    added, errors = _join(name, root, loaded, tables, ship)
    per = dict(previous.get("scorers", {}))
    for s in loaded:
        per[s.name] = _scorer_record(s, tables[s.name], ship, resumed[s.name],
                                     computed[s.name], seconds[s.name])  # fmt: skip
    record = step_record(
        {"scorers": [s.name for s in loaded], "chunk": chunk, "rebuild": rebuild,
         "executor": executor.describe() if executor else {"kind": "in-process"}},  # fmt: skip
        started,
        time.perf_counter() - t0,
        rows=n,
        columns=added,
        scorers=per,
        skipped={**{k: v for k, v in previous.get("skipped", {}).items()  # kept until it runs
                    if k not in per}, **skipped},  # fmt: skip
        kept_shipped=kept_shipped,
        errors=errors,
        read_seconds=round(read_s, 3),
    )
    models = {f"score.{s.name}": f"{s.model} (v{s.version})" for s in loaded}
    update_manifest(record_path, "score", record, models)
    return record
