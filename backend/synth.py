"""A synthetic LAION-like dataset of any size, written fast by DuckDB, for testing the app at
10^7-10^8 rows on one machine (no images, no vectors).

Layout: ``<dataset>/parts/part-NNNNN.parquet`` (one zstd parquet file per shard, written by
``COPY (SELECT … FROM range(lo, hi)) TO …``) and a ``store.duckdb`` whose ``samples`` is a VIEW
over those files, so every query the app makes runs unchanged over the parquet shards
(:func:`backend.store.connect` allows exactly these files). Beside them, what the build steps
would write: ``manifest.json`` (steps marked ``synthetic``), ``map/clusters.json``, a concept
result set (``concepts/nouns/``) the Concepts page reads, and the row sample (backend.row_sample).

Every value is a function of ``(seed, row_id)`` through DuckDB's ``hash``: captions of a
Zipf-distributed noun (2,000 nouns: real ones at the head, made-up in the tail), sometimes a second
noun, an adjective and a place; map points from a Gaussian mixture whose component is the row's
``cluster``, and whose place word it usually names; skewed safety scores (rounded, so they compress
to about a byte a row). Because the nouns are known per row, the concept hits are written from the
same expressions (tested against :func:`backend.concepts.analyse`).
CLI: ``python -m backend synth NAME --rows N [--shards S] [--seed 0] [--no-concepts] [--overwrite]``
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from backend import paths, row_sample
from backend.concepts import stats
from backend.concepts.vocab import Vocabulary
from backend.manifest import now, read_manifest, step_record, write_json_atomic
from backend.store import create_store, swap_in

Progress = Callable[[str, int, int], None]  # (phase, done, total)

VOCAB = "nouns"  # the concept result set's name
N_NOUNS = 2000
ZIPF_S = 1.07  # rank-frequency exponent of the first noun
SECOND_NOUN = 0.3  # share of captions naming a second noun
OWN_PLACE = 0.7  # share of captions naming their cluster's place
SPREAD = 0.8  # the map's mixture components: standard deviation around each centre

REAL_NOUNS = """
dog cat car house tree man woman child bird flower book table chair shoe dress shirt phone
bottle cup boat horse bicycle train plane clock guitar lamp window door bag hat ball cake pizza
bread apple banana orange lemon tomato fish cow sheep goat duck chicken rabbit bear lion tiger
elephant giraffe zebra monkey fox wolf deer owl eagle camera laptop keyboard mouse sofa bed
pillow blanket mirror painting statue bridge tower castle church road truck bus tractor rocket
robot doll kite umbrella backpack wallet ring necklace watch jacket coat scarf glove boot sock
candle basket bucket ladder hammer knife fork spoon plate bowl teapot kettle piano violin drum
trumpet flag map globe tent fence gate bench fountain well barn windmill lighthouse anchor
helmet mask crown sword shield arrow bow key lock coin stamp ticket envelope letter card
""".split()
ADJECTIVES = """
red blue green yellow black white small large old new vintage modern wooden metal golden
silver bright dark happy cute tiny giant colorful rustic elegant broken shiny fluffy striped
wet dry
""".split()
PLACES = """
beach forest city kitchen garden street park mountain desert river lake farm office studio
market harbor meadow village airport station museum library stadium canyon island jungle
glacier valley bakery classroom hospital garage rooftop subway vineyard orchard marsh prairie
volcano cave
""".split()
STARTS = ["a photo of a", "an image of a", "close-up of a", "a", "vintage photograph of a",
          "stock photo: a", "illustration of a", "a picture of a"]  # fmt: skip
PREPS = ["in the", "on the", "near the", "at the", "by the", "inside the"]
SIZES = [(256, 256), (512, 512), (640, 480), (800, 600), (1024, 768), (1280, 720),
         (1920, 1080), (768, 1024), (600, 800), (1024, 1024)]  # fmt: skip
SCORES = {  # column: SQL of a uniform u in [0, 1); most rows score low, a few high
    "nsfw": "round(power({u}, 12), 2)::FLOAT",
    "toxicity": "round(power({u}, 16), 2)::FLOAT",
    "text_overlay": "round(0.2 * power({u}, 30), 3)::FLOAT",
    "clip_similarity": "round(0.17 + 0.2 * {u}, 2)::FLOAT",
}


def made_up_nouns(n: int, taken: set[str], seed: int = 7) -> list[str]:
    """``n`` pronounceable made-up words, none of them (or its ``s``/``es`` plural) a word of
    ``taken`` or another made-up word: so a caption names exactly the nouns it was given."""
    rng = random.Random(seed)
    cons, vows = "bdfgklmnprtvz", "aeiou"
    out: list[str] = []
    blocked = set(taken) | {w + s for w in taken for s in ("s", "es")}
    while len(out) < n:
        w = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(rng.choice((2, 3))))
        w += rng.choice(cons)
        forms = {w, w + "s", w + "es"}
        if forms & blocked:
            continue
        out.append(w)
        blocked |= forms
    return out


def nouns() -> list[str]:
    """The concept vocabulary, most frequent first: real nouns, then made-up ones."""
    return REAL_NOUNS + made_up_nouns(N_NOUNS - len(REAL_NOUNS),
                                      set(REAL_NOUNS + ADJECTIVES + PLACES))  # fmt: skip


def vocabulary() -> Vocabulary:
    words = nouns()
    return Vocabulary(VOCAB, words, [[w] for w in words], "synthetic: the generator's nouns")


def _lit(words: list[str]) -> str:
    return "[" + ", ".join("'" + w.replace("'", "''") + "'" for w in words) + "]"


def _u(k: int, seed: int) -> str:
    """A uniform [0, 1) per row, stream ``k`` < 64: 53 bits of DuckDB's hash of one integer
    (its multi-argument hash combines too weakly: streams came out correlated)."""
    key = int(k) + 64 * (int(seed) << 37)
    return f"((hash(i * 64 + {key}) >> 11)::DOUBLE / 9007199254740992.0)"


def _zipf_rank(u: str, n: int, s: float) -> str:
    """0-based rank of a bounded continuous Zipf(s) draw over ``n`` ranks (inverse CDF)."""
    a = (n + 1) ** (1 - s) - 1
    return f"least(floor(power(1 + {u} * {a!r}, {1 / (1 - s)!r}))::INT - 1, {n - 1})"


def centres(k: int, seed: int) -> np.ndarray:
    """The mixture's ``k`` centres in the map plane (seeded), about 30 units across."""
    rng = np.random.default_rng(seed + 1)
    return rng.uniform(-15, 15, size=(k, 2)).round(3)


def clusters_for(rows: int) -> int:
    """How many mixture components: as the map step would choose (about sqrt(n/4), 2-200)."""
    from backend.map import choose_k

    return choose_k(rows)


def _row_vars(seed: int, k: int) -> str:
    """Per-row draws shared by the samples and the concept hits (``i`` is the row id)."""
    n = N_NOUNS
    return (
        f"{_zipf_rank(_u(1, seed), n, ZIPF_S)} AS n1, "
        f"CASE WHEN {_u(2, seed)} < {SECOND_NOUN} THEN {_zipf_rank(_u(3, seed), n, ZIPF_S)} END "
        "AS n2, "
        f"least(floor({k} * power({_u(4, seed)}, 1.6))::INT, {k - 1}) AS c"
    )


def samples_sql(lo: int, hi: int, shard: int, seed: int, k: int) -> str:
    """The SELECT of one shard's rows ``lo``..``hi-1``."""
    xy = centres(k, seed)
    words = nouns()
    place = (
        f"CASE WHEN {_u(5, seed)} < {OWN_PLACE} THEN list_extract(p, c % {len(PLACES)} + 1) "
        f"ELSE list_extract(p, floor({_u(6, seed)} * {len(PLACES)})::INT + 1) END"
    )
    pick = lambda lst, kk: f"list_extract({_lit(lst)}, floor({_u(kk, seed)} * {len(lst)})::INT + 1)"  # noqa: E731
    size = f"floor({_u(9, seed)} * {len(SIZES)})::INT + 1"
    gauss = lambda a, b: f"sqrt(-2 * ln(1 - {_u(a, seed)})) * cos(2 * pi() * {_u(b, seed)})"  # noqa: E731
    scores = ", ".join(f"{sql.format(u=_u(20 + j, seed))} AS {col}"
                       for j, (col, sql) in enumerate(SCORES.items()))  # fmt: skip
    return f"""
    WITH r AS (SELECT range AS i, {_lit(words)} AS w, {_lit(PLACES)} AS p, {_row_vars(seed, k)}
               FROM range({int(lo)}, {int(hi)}))
    SELECT i AS row_id,
           printf('%010d', i) AS key,
           concat_ws(' ', {pick(STARTS, 7)}, {pick(ADJECTIVES, 8)}, list_extract(w, n1 + 1),
                     CASE WHEN n2 IS NOT NULL THEN 'with a ' || list_extract(w, n2 + 1) END,
                     {pick(PREPS, 10)}, {place}) AS caption,
           'https://img.example.invalid/' || printf('%010d', i) || '.jpg' AS url,
           'url' AS storage,
           list_extract({[w for w, _ in SIZES]}, {size})::INT AS width,
           list_extract({[h for _, h in SIZES]}, {size})::INT AS height,
           'part-{shard:05d}' AS shard,
           {int(shard)}::INT AS shard_idx,
           (i - {int(lo)})::BIGINT AS seq,
           (list_extract({xy[:, 0].tolist()}, c + 1) + {SPREAD} * {gauss(11, 12)})::FLOAT AS map_x,
           (list_extract({xy[:, 1].tolist()}, c + 1) + {SPREAD} * {gauss(13, 14)})::FLOAT AS map_y,
           c::INT AS cluster,
           {scores}
    FROM r ORDER BY i"""


def hits_sql(rows: int, seed: int, k: int) -> str:
    """(row_id, concept_id) of every distinct noun each caption names, in row order."""
    return f"""
    WITH r AS (SELECT range AS i, {_row_vars(seed, k)} FROM range({int(rows)}))
    SELECT i AS row_id, unnest(list_sort(list_distinct([n1, n2])))
           ::INT AS concept_id
    FROM r ORDER BY i"""


def _copy(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    con.execute(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd, "
                "ROW_GROUP_SIZE 122880, PARQUET_VERSION v2)")  # fmt: skip
    os.replace(tmp, path)


def _make_writable(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _read_only(folder: Path) -> None:
    """The shards and their folder read-only on disk: the app's store connection may read
    them (DuckDB allowed paths are writable too), nobody but the owner's chmod may change them."""
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def generate(
    name: str, rows: int, shards: int, root: Path | None = None, seed: int = 0,
    progress: Progress | None = None, concepts: bool = True, overwrite: bool = False,
    resume: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Write dataset ``name`` (``rows`` rows in ``shards`` parquet files) into the workspace and
    return its manifest record (timings per phase, bytes on disk). ``resume``: keep the shards
    an interrupted run of the same parameters finished."""
    if rows < 1 or not 1 <= shards <= rows:
        raise ValueError("need rows >= 1 and 1 <= shards <= rows")
    ds = paths.dataset_dir(name, root)
    k = clusters_for(rows)
    parts_dir = _start(ds, {"rows": rows, "shards": shards, "seed": seed, "clusters": k},
                       overwrite, resume)  # fmt: skip
    t0, started, phases = time.perf_counter(), now(), {}
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    files = []
    for s in range(shards):
        lo, hi = s * rows // shards, (s + 1) * rows // shards
        path = parts_dir / f"part-{s:05d}.parquet"
        if not path.is_file():  # (a shard on disk is whole: _copy renames it into place)
            _copy(con, samples_sql(lo, hi, s, seed, k), path)
        files.append(str(path.resolve()))
        if progress:
            progress("samples", s + 1, shards)
    phases["samples"] = round(time.perf_counter() - t0, 3)
    _write_store(ds, files)
    phases["store"] = round(time.perf_counter() - t0 - sum(phases.values()), 3)
    table = _cluster_table(con, files, seed, k)
    write_json_atomic(
        ds / "map" / "clusters.json",
        {"dataset": name, "vectors": "synthetic", "model": None,
         "method": "synthetic Gaussian mixture", "clusters": table},
    )  # fmt: skip
    phases["clusters"] = round(time.perf_counter() - t0 - sum(phases.values()), 3)
    record: dict[str, Any] = {}
    if concepts:
        if progress:
            progress("concepts", 0, 1)
        record["concepts"] = _concepts(con, ds, rows, seed, k)
        phases["concepts"] = round(time.perf_counter() - t0 - sum(phases.values()), 3)
    con.close()
    _read_only(parts_dir)
    params = {"rows": rows, "shards": shards, "seed": seed, "clusters": k, "nouns": N_NOUNS,
              "zipf_s": ZIPF_S}  # fmt: skip
    summary = step_record(
        params, started, time.perf_counter() - t0, synthetic=True, phases=phases,
        bytes_parts=_size(parts_dir), bytes_total=_size(ds),
    )  # fmt: skip
    _write_manifest(ds, name, rows, summary, concepts)
    from backend.map_prepared import prepare  # what the Map page reads on open

    summary["map_prepared"] = prepare(name, root)
    summary["row_sample"] = row_sample.write(name, root)  # what filtered pages read
    return summary


def _start(ds: Path, params: dict[str, int], overwrite: bool, resume: bool) -> Path:
    """An empty dataset folder, or (``resume``, same ``params``) one with the finished shards."""
    mark = ds / "synth-params.json"
    if ds.exists():
        if not (overwrite or resume):
            raise FileExistsError(f"{ds} exists: pass overwrite=True (--overwrite) to replace it")
        _make_writable(ds)
        keep = resume and read_manifest(mark) == params  # (read_manifest: any JSON file)
        for p in ds.iterdir():
            if not keep or p.name not in ("parts", mark.name):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        for p in (ds / "parts").glob("*.tmp") if keep else ():  # an unfinished shard
            p.unlink()
    (ds / "parts").mkdir(parents=True, exist_ok=True)
    write_json_atomic(mark, params)
    return ds / "parts"


def _write_store(ds: Path, files: list[str]) -> None:
    tmp = ds / ".store-new.duckdb"
    tmp.unlink(missing_ok=True)
    con = create_store(tmp)
    try:
        con.execute(f"CREATE VIEW samples AS SELECT * FROM read_parquet({_lit(files)})")
    finally:
        con.close()
    swap_in(tmp, ds)


def _cluster_table(con: duckdb.DuckDBPyConnection, files: list[str], seed: int,
                   k: int) -> list[dict[str, Any]]:  # fmt: skip
    """What the map step writes per cluster, from one pass over the shards."""
    got = con.execute(
        f"SELECT cluster, count(*), min(row_id) FROM read_parquet({_lit(files)}) "
        "GROUP BY 1 ORDER BY 1").fetchall()  # fmt: skip
    xy = centres(k, seed)
    out = []
    for c, size, first in got:
        place = PLACES[c % len(PLACES)]
        out.append({"cluster": int(c), "label": place, "terms": [place], "size": int(size),
                    "x": float(xy[c, 0]), "y": float(xy[c, 1]),
                    "representatives": [int(first)]})  # fmt: skip
    return out


def _concepts(con: duckdb.DuckDBPyConnection, ds: Path, rows: int, seed: int, k: int) -> dict:
    """The noun vocabulary's result set, as :func:`backend.concepts.analyse` writes it."""
    t0, started = time.perf_counter(), now()
    vocab = vocabulary()
    folder = ds / "concepts" / VOCAB
    folder.mkdir(parents=True)
    write_json_atomic(folder / "vocab.json", vocab.to_dict())
    hits = folder / "hits.parquet"
    _copy(con, hits_sql(rows, seed, k), hits)
    n = len(vocab)
    got = dict(con.execute(f"SELECT concept_id, count(*) FROM read_parquet('{hits}') GROUP BY 1")
               .fetchall())  # fmt: skip
    counts = np.array([got.get(i, 0) for i in range(n)], dtype=np.int64)
    total = int(counts.sum())
    rows_with = con.execute(f"SELECT count(DISTINCT row_id) FROM read_parquet('{hits}')"
                            ).fetchone()[0]  # fmt: skip
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = {"concept_id": np.arange(n, dtype=np.int32), "concept": vocab.concepts,
             "caption_count": counts}  # fmt: skip
    pq.write_table(pa.table(table), folder / "counts.parquet")
    summary = {
        "vocab": VOCAB, "source": vocab.source, "concepts": n, "rows": rows,
        "rows_with_concept": int(rows_with), "hits": total, "plurals": True, "vocab_notes": [],
        "image_note": "synthetic dataset: no images", "caption_slope": stats.fit_slope(counts),
        "caption_shares": stats.shares(counts), "created": started,
        "seconds": round(time.perf_counter() - t0, 3),
    }  # fmt: skip
    write_json_atomic(folder / "summary.json", summary)
    return {"vocab": VOCAB, "hits": total, "rows_with_concept": int(rows_with)}


def _write_manifest(ds: Path, name: str, rows: int, summary: dict, concepts: bool) -> None:
    done = {"status": "done", "synthetic": True, "finished_at": summary["finished_at"]}
    steps = {"ingest": summary, "map": {**done, "columns": ["map_x", "map_y", "cluster"]},
             "score": {**done, "columns": list(SCORES)}}  # fmt: skip
    if concepts:
        steps["concepts"] = {**done, "vocabs": [VOCAB]}
    write_json_atomic(ds / "manifest.json", {
        "name": name, "source": "synthetic (backend.synth)", "format": "synthetic", "rows": rows,
        "rejects": 0, "built_at": summary["finished_at"], "steps": steps, "models": {},
        "synthetic": True, "layout": "parquet shards under parts/; samples is a view over them",
    })  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m backend.synth", description=__doc__.split("\n")[0])
    ap.add_argument("name")
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--shards", type=int, default=0, help="default: one per 2M rows")
    ap.add_argument("--root", type=Path, default=None, help="workspace (default $TAILSCOPE_HOME)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-concepts", action="store_true")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    shards = a.shards or max(1, -(-a.rows // 2_000_000))

    def progress(phase: str, done: int, total: int) -> None:
        print(f"\r{phase}: {done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        rec = generate(a.name, a.rows, shards, a.root, a.seed, progress, not a.no_concepts,
                       a.overwrite)  # fmt: skip
    except (ValueError, FileExistsError, paths.BadName) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\n{a.name}: {a.rows:,} rows in {shards} shards, {rec['seconds']:.1f} s, "
          f"{rec['bytes_total'] / 1e9:.2f} GB ({rec['phases']})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
