"""Ingest throughput on the demo dataset at 5,000 and 100,000 rows.

    .venv/bin/python bench/ingest.py [--rows 5000 100000] [--workers 1 2]
    .venv/bin/python bench/ingest.py --datacomp 1000000 [--workers 2] [--dir /tmp/x]
    .venv/bin/python bench/ingest.py --precision

``--datacomp N``: the DataComp-style case instead (N rows of metadata with ViT-L/14 vectors,
768-d float16, in a ``.npz`` beside each parquet; ~3 GB at 10^6 rows, deleted afterwards),
against plain pyarrow + numpy loading the same files: see ``bench/ingest_datacomp.py``.
``--precision``: recall cost of storing float32 vectors as float16.

Baseline, measured in the same run on the same tars: the least work any ingest must do, a
single process that iterates each tar with ``tarfile`` and fully decodes every image with PIL
(no hashing, no metadata, no store). Ratios above 1 mean we are faster than that baseline.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from backend.demo import generate  # noqa: E402
from backend.ingest import build  # noqa: E402


def baseline(source: Path) -> tuple[int, float]:
    """Rows/s of tar iteration + full PIL decode, one process."""
    t0, n = time.perf_counter(), 0
    for tar_path in sorted(source.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar:
                if m.isfile() and m.name.endswith((".jpg", ".png")):
                    try:
                        Image.open(io.BytesIO(tar.extractfile(m).read())).load()
                    except Exception:
                        pass
                    n += 1
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[5000, 100_000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dir", type=Path, default=None, help="keep generated sources here")
    ap.add_argument("--datacomp", type=int, default=None, metavar="ROWS",
                    help="run the DataComp-style case (npz vectors) at ROWS rows instead")
    ap.add_argument("--shards", type=int, default=10, help="DataComp case: parquet+npz shards")
    ap.add_argument("--precision", action="store_true", help="float16 storage recall cost")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="tailscope-bench-"))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    if args.precision:
        from bench.ingest_datacomp import precision

        precision()
        return
    if args.datacomp:
        from bench.ingest_datacomp import run

        print(f"{'rows':>8} {'what':<34} {'seconds':>8} {'rows/s':>9} {'vs baseline':>11}")
        run(args.datacomp, args.shards, work, args.workers, keep=args.dir is not None)
        return
    print(f"{'rows':>8} {'what':<28} {'seconds':>8} {'rows/s':>9} {'vs baseline':>12}")
    for rows in args.rows:
        source = work / f"demo-{rows}" / "source"
        truth = source / "ground_truth.json"
        if not truth.is_file():
            t0 = time.perf_counter()
            generate(source, rows=rows, seed=0)
            print(f"{rows:>8} {'(generate demo source)':<28} {time.perf_counter() - t0:>8.1f}")
        n, secs = baseline(source)
        base_rate = n / secs
        print(f"{rows:>8} {'baseline: tar+PIL decode':<28} {secs:>8.2f} {base_rate:>9.0f} "
              f"{1.0:>11.2f}x")
        for w in args.workers:
            res = build(f"bench{rows}w{w}", source, "webdataset", root=work / "ws", workers=w)
            rate = (res.rows + res.rejects) / res.seconds
            print(f"{rows:>8} {f'tailscope ingest, {w} worker(s)':<28} {res.seconds:>8.2f} "
                  f"{rate:>9.0f} {rate / base_rate:>11.2f}x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: this process {peak:.0f} MiB, largest worker {kids:.0f} MiB")
    print(f"sources and stores kept in {work}")


if __name__ == "__main__":
    main()
