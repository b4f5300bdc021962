"""The costly parts of an IVF build in torch: spherical k-means of the coarse centroids and the
assignment of every vector to its nearest centroid.

faiss-cpu has no GPU code, and FAISS's GPU wheels need CUDA libraries the lent GPU machine
cannot take; torch with CUDA is there. Both steps are one matrix product and an argmax per
batch, so torch runs them on a GPU when one is present and on the CPU otherwise; FAISS then
gets the centroids (its quantizer) and the assignments (``add_core``), and builds the lists
and codes exactly as before. The same seed gives the same centroids on the same device.
"""

from __future__ import annotations

import faiss
import numpy as np
import torch

BATCH = 65_536  # rows a matrix product: 65,536 × 8,192 float32 scores = 2 GiB at most


def device(prefer: str | None = None) -> torch.device:
    """``cuda`` when torch sees a GPU (or when asked), else ``cpu``."""
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _batch_rows(k: int) -> int:
    return max(1024, min(BATCH, (1 << 29) // max(k, 1)))  # scores ≤ 2 GiB per batch


def assign(x: np.ndarray, centroids: np.ndarray | torch.Tensor, dev: torch.device | None = None,
           normalise: bool = True) -> np.ndarray:  # fmt: skip
    """Index of the nearest centroid (largest inner product) of every row of ``x`` (int64);
    rows are L2-normalised first when ``normalise`` (what the index's cosine search assumes)."""
    dev = dev or device()
    c = torch.as_tensor(centroids, dtype=torch.float32, device=dev)
    out = np.empty(len(x), dtype=np.int64)
    step = _batch_rows(len(c))
    for lo in range(0, len(x), step):
        xb = torch.as_tensor(np.asarray(x[lo:lo + step], dtype=np.float32), device=dev)
        if normalise:
            xb = torch.nn.functional.normalize(xb, dim=1)
        out[lo:lo + len(xb)] = (xb @ c.T).argmax(dim=1).cpu().numpy()
    return out


def kmeans(x: np.ndarray, k: int, niter: int = 10, seed: int = 0,
           dev: torch.device | None = None) -> np.ndarray:  # fmt: skip
    """``k`` unit-norm centroids of the (normalised) rows of ``x`` by spherical k-means, as FAISS
    trains an inner-product IVF: seeded random rows to start, ``niter`` rounds of assign and
    re-average; an emptied centroid restarts beside the largest cluster's (nudged toward a
    random row)."""
    if len(x) < k:
        raise ValueError(f"k-means needs at least k={k} rows, got {len(x)}")
    dev = dev or device()
    gen = np.random.default_rng(seed)
    xt = torch.nn.functional.normalize(
        torch.as_tensor(np.asarray(x, dtype=np.float32), device=dev), dim=1)  # fmt: skip
    c = xt[torch.as_tensor(np.sort(gen.choice(len(x), k, replace=False)), device=dev)].clone()
    step = _batch_rows(k)
    for _ in range(niter):
        sums = torch.zeros_like(c)
        counts = torch.zeros(k, dtype=torch.float32, device=dev)
        for lo in range(0, len(xt), step):
            xb = xt[lo:lo + step]
            lab = (xb @ c.T).argmax(dim=1)
            sums.index_add_(0, lab, xb)
            counts += torch.bincount(lab, minlength=k).to(torch.float32)
        empty = torch.nonzero(counts == 0).flatten().cpu().numpy()
        c = torch.nn.functional.normalize(sums, dim=1)
        if len(empty):  # restart each emptied centroid beside the biggest cluster's
            big = int(counts.argmax())
            rows = xt[torch.as_tensor(gen.choice(len(xt), len(empty)), device=dev)]
            c[torch.as_tensor(empty, device=dev)] = torch.nn.functional.normalize(
                c[big] + 1e-3 * rows, dim=1)  # fmt: skip
    return c.cpu().numpy()


def wanted(coarse: str | None, ivf: faiss.IndexIVF | None) -> bool:
    """Whether torch trains an IVF's coarse centroids and assigns its rows: ``"torch"`` or
    ``"faiss"`` when asked; by default torch when it sees a GPU (faiss-cpu has none), FAISS on
    the CPU (FAISS's own k-means is as fast there)."""
    if ivf is None or coarse == "faiss":
        return False
    if coarse not in (None, "torch"):
        raise ValueError(f"coarse must be 'torch' or 'faiss', not {coarse!r}")
    return coarse == "torch" or bool(torch.cuda.is_available())


def train_ivf(index: faiss.Index, ivf: faiss.IndexIVF, x: np.ndarray, seed: int) -> np.ndarray:
    """Coarse centroids by :func:`kmeans` put in the quantizer; then FAISS trains the codec
    only (its quantizer is trained and full). ``x``: the normalised training sample."""
    centroids = kmeans(x, ivf.nlist, niter=ivf.cp.niter, seed=seed)
    ivf.quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    index.train(x)
    return centroids


def add_assigned(index: faiss.Index, ivf: faiss.IndexIVF, x: np.ndarray,
                 centroids: np.ndarray) -> None:  # fmt: skip
    """Add normalised rows ``x`` with their lists from :func:`assign` (FAISS's ``add_core``
    with precomputed assignments); fast-scan indexes pack codes their own way and a wrapped
    IVF transforms rows first: plain add for those."""
    if isinstance(ivf, faiss.IndexIVFFastScan) or not isinstance(index, faiss.IndexIVF):
        index.add(x)  # (a wrapped IVF: its wrapper must see the rows)
        return
    lists = assign(x, centroids, normalise=False)
    ivf.add_core(len(x), faiss.swig_ptr(x), None, faiss.swig_ptr(lists))
