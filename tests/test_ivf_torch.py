"""IVF built with torch's k-means and assignment (the GPU path, run here on the CPU) finds the
same neighbours as FAISS's own training: recall@10 within 0.005 of it, on clustered data."""

from __future__ import annotations

import numpy as np
import torch

from backend import index as vindex
from backend import index_search, kmeans_torch

N, D, K, Q = 8_000, 32, 60, 500


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, D)).astype(np.float32)
    x = centres[rng.integers(0, K, N)] + 0.7 * rng.normal(size=(N, D))
    q = centres[rng.integers(0, K, Q)] + 0.7 * rng.normal(size=(Q, D))
    return x.astype(np.float32), q.astype(np.float32)


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_assign_is_the_exact_nearest_centroid_and_kmeans_finds_the_centres() -> None:
    rng = np.random.default_rng(1)
    centres = _unit(rng.normal(size=(6, 8)).astype(np.float32))
    x = np.repeat(centres, 50, axis=0) + 0.01 * rng.normal(size=(300, 8)).astype(np.float32)
    got = kmeans_torch.kmeans(x, 6, seed=0, dev=torch.device("cpu"))
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    # every true centre has a found centroid within 0.05 (cosine > 0.998)
    assert (centres @ got.T).max(axis=1).min() > 0.998
    lists = kmeans_torch.assign(x, got, torch.device("cpu"))
    assert np.array_equal(lists, np.argmax(_unit(x) @ got.T, axis=1))
    assert sorted(np.bincount(lists, minlength=6).tolist()) == [50] * 6


def test_torch_built_ivf_has_faiss_recall_within_0_005() -> None:
    x, q = _data()
    plan = vindex.choose(N, D, kind="ivf-sq8")
    qn = _unit(q)
    truth = np.argsort(-(qn @ _unit(x).T), axis=1)[:, :10]
    recall = {}
    for coarse in ("faiss", "torch"):
        index = vindex.build(x, plan, coarse=coarse)
        assert index.ntotal == N
        assert index_search._attached(index)["coarse"] == ("faiss" if coarse == "faiss" else
                                                      "torch (cpu)")  # fmt: skip
        _, ids = index.search(qn.copy(), 10)
        recall[coarse] = np.mean([len(set(ids[i]) & set(truth[i])) / 10 for i in range(Q)])
    assert recall["faiss"] > 0.95  # a working index at all …
    assert abs(recall["torch"] - recall["faiss"]) <= 0.005, recall  # … and the same recall


def test_sharded_build_trains_its_coarse_centroids_with_torch_on_request() -> None:
    from backend import index_shards

    x, _ = _data(2)
    index = index_shards.train(x[:4000], "IVF32_HNSW32,SQ8", coarse="torch")
    ivf = index_search._ivf(index)
    assert index.is_trained and ivf.quantizer.ntotal == 32 and index.ntotal == 0
    want = kmeans_torch.kmeans(_unit(x[:4000]), 32, niter=ivf.cp.niter, seed=vindex.SEED)
    got = ivf.quantizer.reconstruct_n(0, 32)
    assert np.allclose(got, want, atol=1e-5)  # the quantizer holds torch's centroids
