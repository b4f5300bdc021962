"""The build pipeline on a local Ray cluster: the same store, embeddings, scores, map
coordinates and concept hits as the local process pool, a worker killed mid-shard costs a
retry and nothing else, and a rerun after a crash redoes only the shards that were not
committed."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from backend.concepts.run import caption_hits
from backend.concepts.vocab import parse
from backend.embed import embed, embed_unit, unit_ranges
from backend.executor import Executor
from backend.ingest import build
from backend.map import build_map
from backend.safety.run import score
from backend.store import connect

ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray)")

pytestmark = pytest.mark.slow
SCORERS = ["toxicity", "quality", "phash", "nsfw"]
# The demo's smallest size (it plants every kind of bad record from 130 rows up): 130 rows
# kept in 4 tar shards. Embedding is this module's cost (~60 ms a row, five times over), and
# what is checked (shards, units, bit-equal results) does not grow with the row count.
ROWS, SHARD = 140, 35
VOCAB = parse("shapes", b"circle\nsquare\nstar\ntriangle\nphoto\n")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from backend.demo import generate

    src = tmp_path_factory.mktemp("ray_src") / "src"
    generate(src, rows=ROWS, seed=3, shard_size=SHARD)  # 4 tar shards, bad records planted
    return src


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with two worker CPUs, shared by this module's tests."""
    ex = Executor("ray", workers=2)
    ex.connect()
    yield ex
    ray.shutdown()


def _build(root: Path, source: Path, ex: Executor) -> dict:
    build("d", source, "webdataset", root=root, executor=ex)
    embedded = embed("d", root, mode="packaged", executor=ex)
    score("d", SCORERS, root, executor=ex)
    build_map("d", root, sample=64, executor=ex)  # the other ~66 rows placed by transform
    rows, ids, _ = caption_hits("d", VOCAB, root, executor=ex)
    con = connect("d", root)
    try:
        samples = con.execute("SELECT * FROM samples ORDER BY row_id").fetchdf()
        rejects = con.execute("SELECT * FROM rejects ORDER BY key, reason").fetchdf()
    finally:
        con.close()
    vecs = {k: np.load(root / "d" / "embeddings" / f"{k}.npy") for k in ("img", "text")}
    return {"samples": samples, "rejects": rejects, "vecs": vecs, "hits": (rows, ids),
            "embed": embedded}  # fmt: skip


@pytest.fixture(scope="module")
def local_build(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _build(tmp_path_factory.mktemp("local"), source, Executor("local", workers=2))


def test_ray_build_equals_local_build(
    cluster: Executor, local_build: dict, source: Path, tmp_path: Path
) -> None:
    got = _build(tmp_path, source, cluster)
    want = local_build
    assert len(want["samples"]) == ROWS - len(want["rejects"]) > 120
    assert got["samples"].equals(want["samples"])  # every column, scores included
    for col in ("toxicity", "nsfw", "phash", "blur", "map_x", "cluster"):
        assert col in got["samples"].columns and got["samples"][col].notna().sum() > 120
    assert got["rejects"].equals(want["rejects"])
    for kind in ("img", "text"):
        assert np.array_equal(got["vecs"][kind], want["vecs"][kind])  # bit for bit
        assert np.abs(got["vecs"][kind]).sum(axis=1).min() > 0  # no unit left zeros behind
    for a, b in zip(got["hits"], want["hits"], strict=True):
        assert np.array_equal(a, b) and len(a) > ROWS // 3
    manifest = (tmp_path / "d" / "manifest.json").read_text()
    assert '"kind": "ray"' in manifest  # the record says where it ran


def _busy_ray_workers() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ray::run_unit" in line]


def test_killed_ray_worker_loses_nothing(
    cluster: Executor, local_build: dict, source: Path, tmp_path: Path
) -> None:
    build("d", source, "webdataset", root=tmp_path, executor=cluster)
    killed: list[int] = []

    def killer() -> None:  # SIGKILL the first worker seen running a unit, mid-shard
        deadline = time.time() + 120
        while not killed and time.time() < deadline:
            busy = _busy_ray_workers()
            if busy:
                time.sleep(0.5)  # let it get into the shard
                subprocess.run(["kill", "-9", str(busy[0])], check=False)
                killed.append(busy[0])
            time.sleep(0.05)

    t = threading.Thread(target=killer)
    t.start()
    rec = embed("d", tmp_path, mode="packaged", executor=cluster)
    t.join()
    assert killed, "no Ray worker was seen running a unit"
    for kind in ("img", "text"):
        assert rec["kinds"][kind]["rows"] == len(local_build["samples"])
        got = np.load(tmp_path / "d" / "embeddings" / f"{kind}.npy")
        assert np.array_equal(got, local_build["vecs"][kind])


def test_rerun_skips_committed_shards(local_build: dict, source: Path, tmp_path: Path) -> None:
    build("d", source, "webdataset", root=tmp_path, workers=2)
    con = connect("d", tmp_path)
    try:
        ranges = unit_ranges(con)
    finally:
        con.close()
    assert len(ranges) == 4
    # a crashed run that committed its first shard: parts laid out as the step lays them out,
    # their meta (model, rows, dim) as the same step records it on the same source
    rec0 = local_build["embed"]
    emb = tmp_path / "d" / "embeddings"
    parts = {k: emb / f".{k}.parts" for k in ("img", "text")}
    for k, p in parts.items():
        p.mkdir(parents=True)
        info = rec0["kinds"][k]
        (p / "meta.json").write_text(
            f'{{"model": "{info["model"]}", "rows": {info["rows"]}, "dim": {info["dim"]}, '
            f'"ranges": {len(ranges)}}}'
        )
    spec = {"mode": "packaged", "clip_model": None, "clip_pretrained": None,
            "clip_checkpoint": None, "device": None}  # fmt: skip
    lo, hi = ranges[0]
    embed_unit("d", tmp_path, {"img": spec, "text": spec}, lo, hi, parts, 64)
    (emb / ".img.parts" / f".{ranges[1][0]:012d}.9.tmp.npy").write_bytes(b"half a file")
    rec = embed("d", tmp_path, mode="packaged", executor=Executor("local", workers=2))
    assert rec["kinds"]["img"]["resumed_units"] == 1
    assert rec["kinds"]["img"]["units"] == 4
    for k in ("img", "text"):
        assert np.array_equal(np.load(emb / f"{k}.npy"), local_build["vecs"][k])
        assert not parts[k].exists()  # parts are dropped once concatenated


@pytest.fixture(scope="module")
def sharded(source: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The source built and embedded past ``concat_max`` (vectors kept per shard), once for
    the two tests that read it: (workspace, the embed step's record)."""
    root = tmp_path_factory.mktemp("sharded")
    build("d", source, "webdataset", root=root, workers=2)
    rec = embed("d", root, mode="packaged", executor=Executor("local", workers=2),
                concat_max=100)  # fmt: skip
    return root, rec


def test_big_datasets_keep_vectors_per_shard(local_build: dict, sharded: tuple[Path, dict]):
    from backend.embed import load_vectors, vector_shards

    tmp_path, rec = sharded
    assert rec["kinds"]["img"]["layout"] == "shards"
    for kind in ("img", "text"):
        files = vector_shards("d", kind, tmp_path)
        con = connect("d", tmp_path)
        try:
            assert [lo for lo, _ in files] == [lo for lo, _ in unit_ranges(con)]
        finally:
            con.close()
        assert len(files) == 4
        joined = np.concatenate([np.load(p) for _, p in files])
        assert np.array_equal(joined, local_build["vecs"][kind])
        v = load_vectors("d", kind, tmp_path)  # one array over the shard files
        want = local_build["vecs"][kind]
        assert v.shape == want.shape and np.array_equal(v[:], want)
        e1, e2 = files[1][0], files[2][0]  # first rows of the second and third shard files
        assert np.array_equal(v[e1 - 3 : e2 + 3], want[e1 - 3 : e2 + 3])  # across two edges
        ids = np.array([len(want) - 1, 3, e1 + 1, e1 - 1, e2 + 2])  # four shards, unsorted
        assert np.array_equal(v[ids], want[ids]) and np.array_equal(v[e1 + 1], want[e1 + 1])
        assert np.array_equal(v[want[:, 0] > 0], want[want[:, 0] > 0])
    again = embed("d", tmp_path, mode="packaged", executor=Executor("local", workers=2),
                  concat_max=100)  # fmt: skip
    assert again["kinds"]["img"] == rec["kinds"]["img"]  # nothing redone


def test_sharded_vectors_get_an_on_disk_index(sharded: tuple[Path, dict]) -> None:
    """Past CONCAT_MAX_ROWS the index is built shard by shard, lists on disk; search and
    "more like this" use it and find what the vectors say is nearest."""
    from backend.search import Searcher, build_indexes, index_path, ondisk_path

    tmp_path, _ = sharded
    rec = build_indexes("d", tmp_path, executor=Executor("local", workers=2))
    assert rec["faiss"]["img"]["layout"] == "on-disk lists" and rec["faiss"]["img"]["shards"] == 4
    assert (ondisk_path("d", "img", tmp_path) / "merged.ivfdata").is_file()
    assert not index_path("d", "img", tmp_path).exists()
    from backend.embed import load_vectors

    v = np.asarray(load_vectors("d", "img", tmp_path), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    row = 100  # in the fourth shard
    want = [int(i) for i in np.argsort(-(v @ v[row]))[1:6]]  # exact neighbours, self excluded
    got = [h["row_id"] for h in Searcher("d", tmp_path).like_row(row, k=5).hits]
    assert len(set(got) & set(want)) >= 4  # IVF-SQ8 over 4 merged shards


def test_gpu_units_on_a_cluster_without_gpus_fail_at_once(cluster: Executor) -> None:
    """A task no node can hold would wait forever: refused up front, saying what to change."""
    from dataclasses import replace

    from backend.executor import Unit, UnitFailed

    ex = replace(cluster, gpus=1.0)
    t0 = time.perf_counter()
    with pytest.raises(UnitFailed, match="no node of the Ray cluster has 1.0 GPU"):
        ex.run([Unit("s0", int, ("7",))])
    assert time.perf_counter() - t0 < 30
    assert replace(cluster, cpus=2).run([Unit("s0", int, ("7",))]) == {"s0": 7}  # 2 CPUs fit
    assert ex.describe()["gpus"] == 1.0
