"""Per-shard vector files read as one array (vectors too many for one file stay per shard)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ShardedVectors:
    """Per-shard vector files read as one row-indexed, read-only array: ``len``, ``shape``,
    and rows by index, slice, id array or mask, so code written for one memory-mapped file
    runs unchanged on vectors kept per shard."""

    def __init__(self, files: list[tuple[int, Path]]) -> None:
        self.parts = [np.load(p, mmap_mode="r") for _, p in files]
        self.starts = np.array([lo for lo, _ in files] + [files[-1][0] + len(self.parts[-1])])
        self.shape = (int(self.starts[-1]), int(self.parts[0].shape[1]))
        self.dtype = self.parts[0].dtype
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[:].astype(dtype) if dtype is not None else self[:]

    def __getitem__(self, key) -> np.ndarray:
        n = self.shape[0]
        if isinstance(key, int | np.integer):
            k = int(key) + (n if key < 0 else 0)
            if not 0 <= k < n:
                raise IndexError(f"row {key} out of range 0..{n - 1}")
            s = int(np.searchsorted(self.starts, k, "right")) - 1
            return self.parts[s][k - self.starts[s]]
        if isinstance(key, slice):
            lo, hi, step = key.indices(n)
            if step == 1:
                out = np.empty((max(hi - lo, 0), self.shape[1]), self.dtype)
                for s, part in enumerate(self.parts):
                    a, b = max(lo, self.starts[s]), min(hi, self.starts[s + 1])
                    if a < b:
                        out[a - lo : b - lo] = part[a - self.starts[s] : b - self.starts[s]]
                return out
            key = np.arange(lo, hi, step)
        ids = np.asarray(key)
        ids = np.flatnonzero(ids) if ids.dtype == bool else ids.astype(np.int64)
        out = np.empty((len(ids), self.shape[1]), self.dtype)
        which = np.searchsorted(self.starts, ids, "right") - 1
        for s in np.unique(which):
            mask = which == s
            out[mask] = self.parts[s][ids[mask] - self.starts[s]]
        return out
