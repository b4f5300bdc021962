"""Crash safety: every build step, killed with SIGKILL at a seeded random point mid-step and
rerun, ends exactly where an uninterrupted run of the same step ends; and while it lies killed,
nothing a later step (or the app) reads is half written.

Each step runs as the CLI runs it (a subprocess). The reference chain runs every step once,
uninterrupted, on a small dataset cut from the demo (its first 40 items, two shards); each test
copies the reference state *before* its step, starts the step, kills its whole process group
after a random delay within the step's measured duration (counted from the step's first
progress output, i.e. after the imports), checks the visible files, reruns the step and compares
the result with the reference state *after* the step: store rows and columns (content, not
bytes), embeddings (``np.array_equal``), index search results, map and score columns (seeded),
concept counts and export files (sha256).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
NAME = "tiny"
TINY_ITEMS, TINY_SHARD = 40, 20
SEEDS = (11, 12)

# step -> (the step before it, CLI arguments). The chain is the order a user builds in.
STEPS: dict[str, tuple[str | None, list[str]]] = {
    "ingest": (None, ["build", NAME, "--format", "webdataset", "--workers", "1"]),
    "embed": ("ingest", ["embed", NAME, "--model", "packaged"]),
    "index": ("embed", ["index", NAME]),
    "map": ("index", ["map", NAME]),
    "score": ("map", ["score", NAME]),
    "dedup": ("score", ["dedup", NAME]),
    "concepts": ("dedup", ["concepts", NAME, "--vocab", "mined"]),
    "export_wds": (
        "concepts",
        ["export", NAME, "--all", "--format", "webdataset", "--out", "wds", "--shard-size", "8"],
    ),
    "export_parquet": (
        "export_wds",
        ["export", NAME, "--all", "--format", "parquet", "--out", "pq"],
    ),
}
# The killed run's work in progress that its rerun must take over or remove (the tiny temp
# files of an atomic JSON or index write, a window of microseconds, are not listed).
LEFTOVERS = (".columns-*", ".staging", "embeddings/.*.partial.npy", "exports/.*.partial")
VOLATILE = {"built_at", "started_at", "created_at", "finished_at", "seconds", "saved_at",
            "versions", "created", "build_seconds", "phases", "rows_per_s", "read_seconds",
            "resumed_shards", "resumed_chunks"}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Running steps


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "TAILSCOPE_HOME": str(home), "TQDM_MININTERVAL": "0"}


def _start(home: Path, args: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "backend", *args],
            cwd=ROOT,
            env=_env(home),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own process group: the kill takes its workers too
        )


def _wait_for_output(proc: subprocess.Popen, log: Path, timeout: float = 300) -> float:
    """When the step first reported progress (or ended): the start of the step proper."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if log.stat().st_size > 0 or proc.poll() is not None:
            return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError(f"no output from {proc.args}")


def run_step(home: Path, args: list[str], log: Path) -> float:
    """Run a step uninterrupted; return its duration from its first progress output."""
    proc = _start(home, args, log)
    t0 = _wait_for_output(proc, log)
    rc = proc.wait(timeout=600)
    assert rc == 0, f"{args} failed ({rc}):\n{log.read_text()[-3000:]}"
    return time.monotonic() - t0


def kill_step(home: Path, args: list[str], span: float, seed: int, log: Path) -> bool:
    """Start a step, SIGKILL its process group at a seeded random point within ``span``
    seconds of its first progress output; False when it finished before that point."""
    delay = random.Random(f"{args}-{seed}").uniform(0.05, 0.6) * span
    proc = _start(home, args, log)
    _wait_for_output(proc, log)
    try:
        rc = proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=60)
    if rc == 0:
        return False
    assert rc == -signal.SIGKILL, f"{args} failed ({rc}):\n{log.read_text()[-2000:]}"
    return True


# --------------------------------------------------------------------------------------------
# What a dataset holds, as comparable content


def _strip(obj):
    """JSON without the fields that record when or how fast (they differ between runs)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_content(ds: Path) -> dict | None:
    """``samples`` and ``rejects`` of the store ``store.duckdb`` points at (None: no store)."""
    link = ds / "store.duckdb"
    if not link.exists():
        assert not link.is_symlink(), f"{link} points at a missing file"
        return None
    con = duckdb.connect(str(link.resolve()), read_only=True)
    try:
        out = {}
        for table, order in (("samples", "row_id"), ("rejects", "ALL")):
            cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            rows = con.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
            out[table] = (cols, [repr(r) for r in rows])  # repr: NaN map rows compare equal
            out[f"{table}.columns"] = {c: repr([r[i] for r in rows]) for i, c in enumerate(cols)}
        (body,) = con.execute("SELECT body FROM build_manifest").fetchone()
        out["build_manifest"] = _strip(json.loads(body))
        return out
    finally:
        con.close()


def vectors(ds: Path) -> dict[str, np.ndarray]:
    return {p.name: np.load(p) for p in sorted((ds / "embeddings").glob("[!.]*.npy"))}


def search_results(ds: Path) -> dict:
    """Top-5 neighbours of the first rows in every FAISS index; a few keyword queries (every
    hit with its score)."""
    import faiss

    from backend.keyword import KeywordIndex

    out: dict = {}
    for path in sorted((ds / "index").glob("[!.]*.faiss")):
        kind = path.stem
        index = faiss.read_index(str(path))
        q = np.load(ds / "embeddings" / f"{kind}.npy")[:8].astype(np.float32)
        _, ids = index.search(q, 5)
        out[path.name] = ids.tolist()
        out[path.with_suffix(".json").name] = _strip(
            json.loads(path.with_suffix(".json").read_text())
        )
    if (ds / "keyword").exists():
        # every hit, ranked (k > rows): with a cut-off, hits tied across it (many for "a") are
        # picked by tantivy's segment layout, which two builds on two threads do not share
        ix = KeywordIndex.open(ds / "keyword")
        out["keyword"] = {q: ix.search(q, k=TINY_ITEMS) for q in ("red", "a", "photo*")}
    return out


def files_content(ds: Path) -> dict:
    """Clusters, score errors, concept result sets and exports."""
    out: dict = {}
    if (ds / "map" / "clusters.json").is_file():
        out["clusters"] = _strip(json.loads((ds / "map" / "clusters.json").read_text()))
    if (ds / "score_errors.parquet").is_file():
        out["score_errors"] = pq.read_table(ds / "score_errors.parquet").to_pylist()
    for folder in sorted((ds / "concepts").glob("[!.]*")):
        out[f"concepts/{folder.name}"] = {
            "summary": _strip(json.loads((folder / "summary.json").read_text())),
            **{p.name: _sha(p) for p in sorted(folder.glob("*")) if p.suffix != ".json"},
        }
    for folder in sorted((ds / "exports").glob("[!.]*")):
        manifest = json.loads((folder / "manifest.json").read_text())
        files = {p.relative_to(folder).as_posix(): _sha(p) for p in sorted(folder.rglob("*"))
                 if p.is_file() and p.name != "manifest.json"}  # fmt: skip
        listed = {f["path"]: f["sha256"] for f in manifest["files"]}
        assert files == listed, f"export {folder.name} holds other files than its manifest lists"
        out[f"exports/{folder.name}"] = {"files": files, "manifest": _strip(manifest)}
    return out


def steps_done(ds: Path) -> list[str]:
    manifest = json.loads((ds / "manifest.json").read_text())
    return sorted(k for k, v in manifest["steps"].items() if v.get("status") == "done")


def assert_same(got: Path, want: Path) -> None:
    """The dataset folder ``got`` holds what ``want`` holds (content, not bytes)."""
    assert store_content(got) == store_content(want)
    a, b = vectors(got), vectors(want)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"embeddings {k} differ"
    assert search_results(got) == search_results(want)
    assert files_content(got) == files_content(want)
    assert steps_done(got) == steps_done(want)


def assert_nothing_half_written(ds: Path, before: Path | None, after: Path) -> None:
    """After a kill: ``store.duckdb`` points at a complete store (the one before the step or
    the one after it), and every visible file later steps read is whole (hidden names, with a
    leading dot, are the steps' work in progress)."""
    store = store_content(ds)
    if store is not None or before is not None:  # a first ingest may leave no store at all
        olds = [store_content(after)] + ([store_content(before)] if before else [])
        assert store is not None, "the kill lost the store"
        # A step may swap in more than one store (dedup re-joins phash first): each column of
        # the store now must be whole, as the step found it or as it leaves it.
        for table in ("samples", "rejects"):
            for col, values in store[f"{table}.columns"].items():
                assert any(values == o[f"{table}.columns"].get(col) for o in olds), (
                    f"{table}.{col} after the kill is neither the old one nor the new one"
                )
    olds = [vectors(before)] if before else [{}]
    for name, arr in vectors(ds).items():
        assert any(name in v and np.array_equal(arr, v[name]) for v in [vectors(after), *olds]), (
            f"embeddings/{name} is half written"
        )
    for path in ds.rglob("*"):
        rel = path.relative_to(ds)
        if any(part.startswith(".") for part in rel.parts) or rel.parts[0] == "source":
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".npy":
            np.load(path)
    search_results(ds)  # every visible index opens
    from backend.concepts.run import list_vocabs, load

    for vocab in list_vocabs(NAME, ds.parent):
        load(NAME, vocab, ds.parent)
    for folder in sorted((ds / "exports").glob("[!.]*")):
        assert (folder / "manifest.json").is_file(), f"export {folder.name} has no manifest"
    files_content(ds)  # every visible export matches its manifest


# --------------------------------------------------------------------------------------------
# The reference chain


def _tiny_source(pristine_source: Path, out: Path) -> Path:
    """The demo's first items (their jpg/txt/json members) as two small shards."""
    out.mkdir(parents=True)
    with tarfile.open(pristine_source / "00000.tar") as tar:
        members = tar.getmembers()
        keys = list(dict.fromkeys(m.name.split(".")[0] for m in members))[:TINY_ITEMS]
        for s in range(0, len(keys), TINY_SHARD):
            chunk = set(keys[s : s + TINY_SHARD])
            with tarfile.open(out / f"{s // TINY_SHARD:05d}.tar", "w") as dst:
                for m in members:
                    if m.name.split(".")[0] in chunk:
                        dst.addfile(m, tar.extractfile(m))
    return out


class Chain:
    """Reference states: ``after(step)`` is a workspace holding ``tiny`` with every step up to
    and including ``step`` run uninterrupted, built on demand in chain order."""

    def __init__(self, base: Path, source: Path) -> None:
        self.base, self.source = base, source
        self.homes: dict[str, Path] = {}
        self.spans: dict[str, float] = {}

    def args(self, step: str) -> list[str]:
        """The step's full command line (ingest reads the small source)."""
        args = STEPS[step][1]
        return args + ["--source", str(self.source)] if step == "ingest" else args

    def after(self, step: str) -> Path:
        if step not in self.homes:
            home = self.before(step, self.base / f"ref-{step}")
            self.spans[step] = run_step(home, self.args(step), self.base / f"ref-{step}.log")
            self.homes[step] = home
        return self.homes[step]

    def before(self, step: str, into: Path) -> Path:
        """A fresh workspace holding the reference state before ``step``."""
        prev = STEPS[step][0]
        if prev:
            shutil.copytree(self.after(prev), into, symlinks=True)
        else:
            into.mkdir()
        return into


@pytest.fixture(scope="module")
def chain(demo_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    base = tmp_path_factory.mktemp("crash")
    return Chain(base, _tiny_source(demo_pristine / "demo" / "source", base / "tiny_source"))


CHEAP = ("ingest", "index", "map", "dedup", "concepts", "export_wds", "export_parquet")
CASES = [pytest.param(s, seed, id=f"{s}-{seed}") for s in CHEAP for seed in SEEDS] + [
    pytest.param(s, SEEDS[0], id=f"{s}-{SEEDS[0]}", marks=pytest.mark.slow)
    for s in ("embed", "score")
]


def rerun(home: Path, step: str, args: list[str], log: Path) -> None:
    """Run the killed step again, as a user would. An export killed after its final rename
    (while the process was exiting) is whole: the rerun refuses to replace it, saying so."""
    out = args[args.index("--out") + 1] if "--out" in args else None
    if out and (home / NAME / "exports" / out).exists():
        got = subprocess.run([sys.executable, "-m", "backend", *args], cwd=ROOT, env=_env(home),
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert got.returncode == 2 and "already exists" in got.stderr, got.stderr[-2000:]
    else:
        run_step(home, args, log)


@pytest.mark.parametrize(("step", "seed"), CASES)
def test_killed_step_reruns_to_the_uninterrupted_result(chain: Chain, step: str, seed: int,
                                                        tmp_path: Path) -> None:  # fmt: skip
    want = chain.after(step) / NAME
    prev = STEPS[step][0]
    before = chain.after(prev) / NAME if prev else None
    log = tmp_path / "step.log"
    span = chain.spans[step]
    for attempt in range(4):  # a warm rerun can beat the first run's pace: kill earlier
        home = chain.before(step, tmp_path / f"ws{attempt}")
        if kill_step(home, chain.args(step), span * 0.5**attempt, seed, log):
            break
    else:
        pytest.fail(f"{step} always finished before the kill (span {span:.2f} s)")
    assert_nothing_half_written(home / NAME, before, want)
    rerun(home, step, chain.args(step), log)
    assert_same(home / NAME, want)
    left = [str(p.relative_to(home)) for g in LEFTOVERS for p in (home / NAME).glob(g)]
    assert not left, f"the rerun left the killed run's work in progress behind: {left}"


def test_a_killed_column_rewrite_is_cleaned_up_by_the_next(chain: Chain, tmp_path: Path) -> None:
    """A SIGKILL inside ``add_columns`` leaves ``.columns-<pid>.duckdb`` (a whole store copy,
    and maybe its WAL); the next rewrite removes it, holding the lock no live writer holds."""
    import pyarrow as pa

    from backend.columns import add_columns

    home = chain.before("embed", tmp_path / "ws")
    ds = home / NAME
    for junk in (".columns-999999.duckdb", ".columns-999999.duckdb.wal"):
        (ds / junk).write_bytes(b"half a store")
    n = len(store_content(ds)["samples"][1])
    add_columns(NAME, pa.table({"row_id": list(range(n)), "x": [2 * i for i in range(n)]}), home)
    assert not list(ds.glob(".columns-*"))
    assert store_content(ds)["samples.columns"]["x"] == repr([2 * i for i in range(n)])
