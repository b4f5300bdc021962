"""Export throughput and memory at 10^5 and 10^6 rows, parquet and WebDataset.

    .venv/bin/python bench/export.py [--rows 100000 1000000] [--dir /tmp/bench-export]

A synthetic dataset: small (64 px) JPEGs in 10k-row tar shards, with a store that points at
each image's bytes, as an ingest would. Each export runs in a fresh subprocess so its peak RSS
is its own. Baselines, measured in the same run on the same data:

- parquet: DuckDB's own ``COPY (SELECT * FROM samples ORDER BY row_id) TO 'x.parquet'``;
- WebDataset: a raw byte copy (``shutil.copyfileobj``) of the source tars, which hold the same
  images plus captions and metadata: the disk-bound floor for rewriting those bytes.

Targets: parquet >= 200k rows/s; WebDataset close to the copy's MB/s (disk, not CPU, is the
limit: its CPU seconds are printed beside its wall seconds); peak memory flat in N.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from PIL import Image  # noqa: E402

from backend.manifest import now, write_json_atomic  # noqa: E402
from backend.store import create_store, swap_in  # noqa: E402

SHARD_ROWS = 10_000
NAME = "bench"


def _jpegs(n: int = 256) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        arr = (rng.random((64, 64, 3)) * 40 + [i % 256, (i * 7) % 256, (i * 13) % 256]) % 256
        buf = io.BytesIO()
        Image.fromarray(arr.astype(np.uint8)).save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> int:
    """Add one member; return the offset of its data (USTAR: one 512-byte header)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 0
    start = tar.offset
    tar.addfile(info, io.BytesIO(data))
    return start + tarfile.BLOCKSIZE


def synth(rows: int, home: Path) -> Path:
    """Tars + a store of ``rows`` rows under ``home/bench`` (reused when already there)."""
    ds = home / NAME
    done = ds / "bench.json"
    if done.is_file() and json.loads(done.read_text()).get("rows") == rows:
        return ds
    shutil.rmtree(ds, ignore_errors=True)
    src = ds / "source"
    src.mkdir(parents=True)
    imgs = _jpegs()
    offsets = np.empty(rows, np.int64)
    sizes = np.empty(rows, np.int64)
    paths = []
    for s in range(0, rows, SHARD_ROWS):
        tar_path = src / f"{s // SHARD_ROWS:05d}.tar"
        paths.append(str(tar_path))
        with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(s, min(rows, s + SHARD_ROWS)):
                key = f"{i:09d}"
                img = imgs[i % len(imgs)]
                offsets[i], sizes[i] = _member(tar, f"{key}.jpg", img), len(img)
                _member(tar, f"{key}.txt", f"synthetic image number {i}".encode())
                _member(tar, f"{key}.json", json.dumps({"key": key, "aesthetic": i % 10}).encode())
    with tarfile.open(paths[0]) as tar:  # the offsets are where tarfile says the data is
        m = tar.next()
        assert m is not None and m.offset_data == offsets[0], (m, offsets[0])
    ids = np.arange(rows, dtype=np.int64)
    table = pa.table({
        "row_id": ids, "key": [f"{i:09d}" for i in range(rows)],
        "caption": [f"synthetic image number {i}" for i in range(rows)],
        "url": [f"https://example.invalid/{i}.jpg" for i in range(rows)],
        "storage": pa.array(["tar"] * rows), "path": [paths[i // SHARD_ROWS] for i in range(rows)],
        "byte_offset": offsets, "byte_size": sizes, "src_row": pa.nulls(rows, pa.int64()),
        "width": np.full(rows, 64, np.int32), "height": np.full(rows, 64, np.int32),
        "format": pa.array(["jpeg"] * rows), "file_size": sizes,
        "shard": [Path(paths[i // SHARD_ROWS]).name for i in range(rows)],
        "aesthetic": (ids % 10).astype(np.float64),
    })  # fmt: skip
    tmp = ds / ".bench.duckdb"
    con = create_store(tmp)
    con.register("t", table)
    con.execute("CREATE TABLE samples AS SELECT * FROM t ORDER BY row_id")
    manifest = {"name": NAME, "rows": rows, "built_at": now(), "format": "webdataset",
                "source": str(src), "steps": {}}  # fmt: skip
    con.execute("INSERT INTO build_manifest VALUES ('manifest', ?)", [json.dumps(manifest)])
    con.close()
    swap_in(tmp, ds)
    write_json_atomic(ds / "manifest.json", manifest)
    write_json_atomic(done, {"rows": rows})
    return ds


def reset_peak() -> None:
    """Start the peak-RSS count afresh (Linux keeps a fork's high-water mark across exec)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """Peak resident memory since :func:`reset_peak` (VmHWM), else the process maximum."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(fmt: str, home: Path, out: Path) -> None:
    """One measured run in this process: prints JSON (seconds, rows, CPU, peak RSS)."""
    import pyarrow as pa

    from backend.export import export

    reset_peak()
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    if fmt == "copy-parquet":
        store = (home / NAME / "store.duckdb").resolve()
        con = duckdb.connect(str(store), read_only=True)
        con.execute(f"COPY (SELECT * FROM samples ORDER BY row_id) TO '{out}/x.parquet' "
                    "(FORMAT parquet, COMPRESSION zstd)")  # fmt: skip
        rows = con.execute("SELECT count(*) FROM samples").fetchall()[0][0]
        con.close()
        nbytes = (out / "x.parquet").stat().st_size
    elif fmt == "copy-tars":
        out.mkdir(parents=True, exist_ok=True)
        rows, nbytes = 0, 0
        for t in sorted((home / NAME / "source").glob("*.tar")):
            with t.open("rb") as f, (out / t.name).open("wb") as g:
                shutil.copyfileobj(f, g, 1 << 20)
                g.flush()
                os.fsync(g.fileno())
            nbytes += t.stat().st_size
        rows = json.loads((home / NAME / "bench.json").read_text())["rows"]
    else:
        res = export(NAME, fmt=fmt, out=out, root=home, allow_absolute=True, overwrite=True,
                     shard_size=SHARD_ROWS)  # fmt: skip
        if fmt == "webdataset":
            for f in res.files:
                with (res.out / f["path"]).open("rb") as g:
                    os.fsync(g.fileno())
        rows, nbytes = res.count, sum(f["bytes"] for f in res.files)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(json.dumps({"rows": rows, "seconds": wall, "cpu_s": cpu, "bytes": nbytes,
                      "peak_rss_mb": peak_rss_mb(),
                      "arrow_peak_mb": pa.default_memory_pool().max_memory() / 2**20}))  # fmt: skip


def measure(fmt: str, home: Path, work: Path) -> dict:
    out = work / f"out-{fmt}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True) if fmt == "copy-parquet" else None
    cmd = [sys.executable, __file__, "--child", fmt, "--dir", str(home), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dir", type=Path, default=None, help="keep the synthetic data here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.dir, args.out)
        return
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-export-"))
    print(f"cpus {os.cpu_count()} · data under {base}")
    for n in args.rows:
        home = base / f"n{n}"
        t0 = time.perf_counter()
        synth(n, home)
        print(f"\n== {n:,} rows (synthetic data ready in {time.perf_counter() - t0:.0f} s)")
        res = {f: measure(f, home, home) for f in
               ("copy-parquet", "parquet", "copy-tars", "webdataset")}  # fmt: skip
        for f, r in res.items():
            print(f"{f:>13}: {r['seconds']:7.2f} s  {r['rows'] / r['seconds']:>10,.0f} rows/s  "
                  f"{r['bytes'] / r['seconds'] / 2**20:7.1f} MB/s  cpu {r['cpu_s']:6.2f} s  "
                  f"peak RSS {r['peak_rss_mb']:6.0f} MB  "
                  f"arrow peak {r['arrow_peak_mb']:6.1f} MB")  # fmt: skip
        pq_ratio = res["parquet"]["seconds"] / res["copy-parquet"]["seconds"]
        wds_ratio = (res["webdataset"]["bytes"] / res["webdataset"]["seconds"]) / (
            res["copy-tars"]["bytes"] / res["copy-tars"]["seconds"])
        print(f"parquet: {res['parquet']['rows'] / res['parquet']['seconds']:,.0f} rows/s "
              f"(target 200,000), {pq_ratio:.2f}x the time of DuckDB COPY")
        print(f"webdataset: {wds_ratio:.2f}x the MB/s of a raw tar copy; "
              f"cpu/wall {res['webdataset']['cpu_s'] / res['webdataset']['seconds']:.2f}, "
              f"{res['webdataset']['cpu_s'] / res['webdataset']['rows'] * 1e6:.0f} µs CPU a row "
              "(cpu/wall near 1 means CPU-bound; a loaded machine lowers it too)")


if __name__ == "__main__":
    main()
