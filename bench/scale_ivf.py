"""IVF build with torch's k-means and assignment (GPU when present) against FAISS's own (CPU).

    .venv/bin/python bench/scale_ivf.py [--rows 10000000] [--dim 512] [--queries 1000]

Data: clustered synthetic vectors (a mixture of 4,096 Gaussian centres, float16, seeded), the
shape of CLIP vectors in a big pool; queries drawn the same way. Both paths build the index the
app would choose for that size (``backend.index.choose``, an IVF with an HNSW quantizer) through
``backend.index.build``: ``coarse="torch"`` (k-means of the coarse centroids and the assignment
of every row in torch, on CUDA when torch sees a GPU) and ``coarse="faiss"`` (FAISS's k-means and
its quantizer's assignment, on the CPU: faiss-cpu has no GPU code). Printed: each build's
seconds, recall@10 against exact search at the plan's nprobe, and torch ÷ FAISS.
Exact neighbours come from a chunked matrix product in torch (on the GPU when present).
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from backend import index as vindex  # noqa: E402
from backend import index_search, kmeans_torch  # noqa: E402

CENTRES = 4096
CHUNK = 1_000_000


def vectors(n: int, d: int, seed: int) -> np.ndarray:
    """n × d float16 rows around seeded centres (the centres are the same for every seed)."""
    centres = np.random.default_rng(12345).normal(size=(CENTRES, d)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float16)
    for lo in range(0, n, CHUNK):
        m = min(CHUNK, n - lo)
        out[lo:lo + m] = centres[rng.integers(0, CENTRES, m)] + 0.8 * rng.normal(size=(m, d))
    return out


def exact_top10(x: np.ndarray, q: np.ndarray, dev: torch.device) -> np.ndarray:
    qt = torch.nn.functional.normalize(torch.as_tensor(q, dtype=torch.float32, device=dev), dim=1)
    best_s = torch.full((len(q), 10), -2.0, device=dev)
    best_i = torch.zeros((len(q), 10), dtype=torch.int64, device=dev)
    for lo in range(0, len(x), CHUNK):
        xb = torch.nn.functional.normalize(
            torch.as_tensor(x[lo:lo + CHUNK], dtype=torch.float32, device=dev), dim=1)  # fmt: skip
        s, i = (qt @ xb.T).topk(10, dim=1)
        both_s = torch.cat([best_s, s], dim=1)
        both_i = torch.cat([best_i, i + lo], dim=1)
        best_s, pos = both_s.topk(10, dim=1)
        best_i = both_i.gather(1, pos)
    return best_i.cpu().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--kind", default=None, help="force an index kind (default: choose())")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    dev = kmeans_torch.device()
    t0 = time.perf_counter()
    x = vectors(a.rows, a.dim, 0)
    q = vectors(a.queries, a.dim, 1).astype(np.float32)
    print(f"{a.rows:,} × {a.dim} vectors in {time.perf_counter() - t0:.0f} s; torch device: "
          f"{dev}{' (' + torch.cuda.get_device_name() + ')' if dev.type == 'cuda' else ''}",
          flush=True)  # fmt: skip
    truth = exact_top10(x, q, dev)
    plan = vindex.choose(a.rows, a.dim, kind=a.kind)
    print(f"index: {plan.factory}, train sample {plan.train_size:,}, nprobe {plan.nprobe}",
          flush=True)  # fmt: skip
    out = {"rows": a.rows, "dim": a.dim, "factory": plan.factory, "device": str(dev)}
    for coarse in ("torch", "faiss"):
        t0 = time.perf_counter()
        index = vindex.build(x, plan, coarse=coarse)
        took = time.perf_counter() - t0
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        _, ids = index.search(qn.astype(np.float32), 10)
        recall = float(np.mean([len(set(ids[i]) & set(truth[i])) / 10 for i in range(len(q))]))
        out[coarse] = {"build_s": round(took, 1), "recall_at_10": round(recall, 4),
                       "coarse": index_search._attached(index).get("coarse")}  # fmt: skip
        print(f"  coarse={coarse:5s} ({out[coarse]['coarse']}): build {took:8.1f} s, "
              f"recall@10 {recall:.4f}", flush=True)  # fmt: skip
        del index
    print(f"torch ÷ faiss build time: {out['torch']['build_s'] / out['faiss']['build_s']:.2f}; "
          f"recall difference {out['torch']['recall_at_10'] - out['faiss']['recall_at_10']:+.4f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
