"""Scale-out: build throughput on Ray with 1, 2 and 4 workers against the local process pool
and the in-process path, Ray's own overheads, then (``--app``, ``--knn``) the query latencies
of bench/scale_app.py (10^7 and 10^8 rows) and bench/scale_knn.py (kNN at 10^7).

    .venv/bin/python bench/scale.py [--rows 1200] [--shard-size 150] [--workers 1,2,4]
                                    [--dir /work/scale/build] [--json OUT] [--app] [--knn]

Work: the demo generator's real images and captions (``--rows`` rows in tar shards of
``--shard-size``), run through the per-shard steps: ingest (decode, measure, hash every image),
embed (EfficientNet-Lite0 images + MiniLM captions, packaged models, one thread per worker)
and score (toxicity, quality, pHash). Each configuration builds the same source from scratch.

Baselines, same run: the local process pool with the same worker count (Ray's overhead is the
ratio), and the steps' in-process defaults (chunked, all cores, DataLoader decoding). Ray's
fixed costs are measured apart: starting a local cluster, and 1,000 empty tasks against 1,000
empty pool submissions. Throughput cannot grow past the core count (2 here): a 4-worker run
shows the cost of oversubscription, not a gain.
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # see bench/search.py

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from backend.embed import embed  # noqa: E402
from backend.executor import Executor, Unit  # noqa: E402
from backend.ingest import build  # noqa: E402
from backend.safety.run import score  # noqa: E402

SCORERS = ["toxicity", "quality", "phash"]


def noop(i: int) -> int:
    return i


def _steps(root: Path, source: Path, ex: Executor | None) -> dict[str, float]:
    """Seconds per step for one full build of ``source`` under ``root``."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    out = {}
    t = time.perf_counter()
    build("b", source, "webdataset", root=root, executor=ex or Executor("local"))
    out["ingest"] = time.perf_counter() - t
    t = time.perf_counter()
    embed("b", root, mode="packaged", executor=ex)
    out["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    score("b", SCORERS, root, executor=ex)
    out["score"] = time.perf_counter() - t
    return out


def overheads(workers: int) -> dict[str, float]:
    """Ray cluster start, and 1,000 empty units on Ray against the local pool."""
    import ray

    units = [Unit(str(i), noop, (i,)) for i in range(1000)]
    t = time.perf_counter()
    Executor("local", workers=workers).run(units)
    pool = time.perf_counter() - t
    t = time.perf_counter()
    ex = Executor("ray", workers=workers)
    ex.connect()
    start = time.perf_counter() - t
    t = time.perf_counter()
    ex.run(units)
    tasks = time.perf_counter() - t
    ray.shutdown()
    return {"ray_start_s": start, "ray_1000_empty_s": tasks, "pool_1000_empty_s": pool}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1200)
    ap.add_argument("--shard-size", type=int, default=150)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--dir", type=Path, default=Path("/work/scale/build"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--app", action="store_true", help="also run bench/scale_app.py")
    ap.add_argument("--knn", action="store_true", help="also run bench/scale_knn.py")
    args = ap.parse_args()
    import ray

    from backend.demo import generate

    source = args.dir / "source"
    if not (source / "ground_truth.json").is_file():
        generate(source, rows=args.rows, seed=0, shard_size=args.shard_size)
    shards = len(list(source.glob("*.tar")))
    cores = os.cpu_count()
    print(f"{args.rows} demo rows in {shards} shards; {cores} cores; ray {ray.__version__}")
    results: dict[str, dict] = {}
    configs = [("in-process", None, 0)]
    for w in (int(x) for x in args.workers.split(",")):
        configs += [(f"local x{w}", "local", w), (f"ray x{w}", "ray", w)]
    for label, kind, w in configs:
        ex = Executor(kind, workers=w) if kind else None
        if ex is not None:
            ex.connect()  # cluster start is measured apart (overheads)
        secs = _steps(args.dir / "ws", source, ex)
        if kind == "ray":
            ray.shutdown()
        rows = args.rows
        results[label] = {"seconds": secs, "rows_per_s": {k: rows / v for k, v in secs.items()}}
        total = sum(secs.values())
        results[label]["total_rows_per_s"] = rows / total
        print(f"{label:<11} " + "  ".join(f"{k} {v:6.1f} s" for k, v in secs.items())
              + f"  = {total:6.1f} s, {rows / total:6.1f} rows/s", flush=True)  # fmt: skip
    base = results["ray x1"]["total_rows_per_s"] if "ray x1" in results else None
    print(f"\n{'config':<11} {'rows/s':>8} {'vs ray x1':>10} {'ray/local':>10}")
    for label, r in results.items():
        local = results.get(label.replace("ray", "local"))
        ratio = r["total_rows_per_s"] / local["total_rows_per_s"] if local else float("nan")
        scale = r["total_rows_per_s"] / base if base else float("nan")
        print(f"{label:<11} {r['total_rows_per_s']:>8.1f} {scale:>9.2f}x {ratio:>9.2f}x")
    ov = overheads(2)
    results["overheads"] = ov
    print(
        f"\nray: local cluster start {ov['ray_start_s']:.1f} s; 1,000 empty tasks "
        f"{ov['ray_1000_empty_s']:.2f} s ({ov['ray_1000_empty_s']:.2f} ms each) against "
        f"{ov['pool_1000_empty_s']:.2f} s on the local pool"
    )
    here = Path(__file__).resolve().parent
    for flag, script in ((args.app, "scale_app.py"), (args.knn, "scale_knn.py")):
        if flag:
            print(f"\n$ {script}", flush=True)
            subprocess.run([sys.executable, str(here / script)], check=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
