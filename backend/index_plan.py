"""The index types worth considering for n × d vectors and what each costs in RAM, from which
:func:`backend.index.choose` picks the best that fits the budget (measured in ``bench/search.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FLAT_MAX_CELLS = 1 << 25  # n·d up to which one exact query takes ≤ ~10 ms (65,536 rows at d=512)
BATCH = 100_000  # rows converted to float32 and added at a time
TRAIN_PER_LIST = (16, 32, 131_072)  # k-means rows a list: at least 16, 32 while ≤ 131k in all


@dataclass(frozen=True)
class IndexPlan:
    """What to build, how to search it, and what it costs in RAM."""

    kind: str  # flat, sq8, sq4, ivf-sq8, ivf-sq4, ivf-pq, ivf-pq-small
    factory: str  # faiss.index_factory string (metric: inner product)
    n: int
    d: int
    train_size: int  # rows sampled (seeded) to train; 0 when nothing is trained
    nprobe: int = 0  # IVF lists probed per query (0: not IVF)
    ef_search: int = 0  # efSearch of the HNSW coarse quantizer (0: none)
    k_factor: int = 1  # candidates per wanted result re-ranked exactly when vectors are given
    ram_bytes: int = 0  # resident size of the whole index when searching
    build_ram_bytes: int = 0  # peak extra RAM while building (index + training sample + batch)
    reason: str = ""

    @property
    def params(self) -> dict[str, int]:
        return {"nprobe": self.nprobe, "ef_search": self.ef_search, "k_factor": self.k_factor}


def _nlist(n: int) -> int:
    """≈ 2·√n as a power of two: few lists keep k-means affordable on a few cores."""
    return int(min(65536, max(64, 2 ** round(math.log2(2 * math.sqrt(max(n, 1)))))))


def _plans(n: int, d: int, everything: bool = False) -> list[IndexPlan]:
    """Every index worth considering for n × d, most accurate and fastest first (``everything``:
    exhaustive ones too when n is past where they are fast enough)."""
    out: list[IndexPlan] = []
    batch = BATCH * d * 4
    if everything or n * d <= FLAT_MAX_CELLS:
        why = "exact search is under ~10 ms a query at this size"
        out.append(IndexPlan("flat", "Flat", n, d, 0, ram_bytes=n * d * 4,
                             build_ram_bytes=n * d * 4 + batch, reason=why))
        t = min(n, 65_536)
        for kind, code, kf in (("sq8", d, 1), ("sq4", d // 2, 5)):
            out.append(IndexPlan(kind, kind.upper(), n, d, t, k_factor=kf, ram_bytes=n * code,
                                 build_ram_bytes=n * code + t * d * 4 + batch,
                                 reason="exhaustive scalar-quantised codes, to fit the budget"))
    nlist = _nlist(n)
    nprobe = min(nlist, max(16, round(0.75 * math.sqrt(nlist))))
    ef = max(64, 2 * nprobe)
    lo, hi, cap = TRAIN_PER_LIST
    train = min(n, hi * nlist, max(lo * nlist, cap))
    coarse = nlist * (4 * d + 2 * 32 * 4 + 64)  # centroids + HNSW links + list headers
    tiers = [("ivf-sq8", "SQ8", d + 16, 1, "8-bit codes: recall@10 ≈ 0.99, no re-rank"),
             ("ivf-sq4", "SQ4", d // 2 + 16, 5, "4-bit codes: needs vectors to re-rank")]
    if d % 8 == 0:  # 4-bit fast-scan PQ: m sub-vectors of d/m dims, m/2 bytes a row
        tiers += [("ivf-pq", f"PQ{d // 4}x4fs", d // 8 + 8, 20, "PQ: needs vectors to re-rank"),
                  ("ivf-pq-small", f"PQ{d // 8}x4fs", d // 16 + 8, 40,
                   "smallest PQ: needs vectors to re-rank")]
    for kind, codec, per_row, kf, why in tiers:
        pad = nlist * 32 * (per_row - 8) if "pq" in kind else 0  # fast-scan pads lists to 32
        ram = n * per_row + coarse + pad
        out.append(IndexPlan(kind, f"IVF{nlist}_HNSW32,{codec}", n, d, train, nprobe, ef, kf,
                             ram_bytes=ram, build_ram_bytes=int(ram * 1.3) + train * d * 4 + batch,
                             reason=why))
    return out
