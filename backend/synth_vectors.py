"""Synthetic image vectors for a synthetic dataset: a seeded Gaussian mixture on the unit sphere.

The mixture (moved here from ``bench/search.py``, which still uses it): clusters whose centres
share a common direction and topic structure (random pairs have cosine ≈ 0.3, like CLIP
embeddings), each spread over its own ``RANK``-dim subspace with a decaying spectrum plus
isotropic noise. The vectors are not embeddings of any image.
"""

from __future__ import annotations

import numpy as np

RANK = 24


class Mixture:
    """A seeded Gaussian mixture on the unit sphere (see the module docstring)."""

    def __init__(self, d: int, clusters: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
        mean = unit(rng.standard_normal(d, dtype=np.float32))
        topics = unit(rng.standard_normal((max(8, clusters // 20), d), dtype=np.float32))
        own = unit(rng.standard_normal((clusters, d), dtype=np.float32))
        of = rng.integers(0, len(topics), clusters)
        self.centres = unit(0.6 * mean + 0.55 * topics[of] + 0.75 * own).astype(np.float32)
        self.spread = np.exp(rng.normal(0, 0.25, clusters)).astype(np.float32) * 0.9
        self.bases = rng.standard_normal((clusters, RANK, d), dtype=np.float32) / np.sqrt(d)
        lam = 1.0 / np.arange(1, RANK + 1) ** 0.7
        self.lam = (lam / np.sqrt((lam**2).sum())).astype(np.float32)
        w = np.exp(rng.normal(0, 1.0, clusters))
        self.weights = w / w.sum()
        self.d, self.k = d, clusters

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        label = rng.choice(self.k, size=n, p=self.weights)
        z = rng.standard_normal((n, RANK), dtype=np.float32) * self.lam
        out = rng.standard_normal((n, self.d), dtype=np.float32)
        out *= 0.25 / np.sqrt(self.d)
        order = np.argsort(label, kind="stable")
        cuts = np.flatnonzero(np.diff(label[order])) + 1
        for rows in np.split(order, cuts):
            c = label[rows[0]]
            out[rows] += self.centres[c] + self.spread[c] * (z[rows] @ self.bases[c])
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out
