"""The modality gap: text queries against an image index, with the demo CLIP.

    .venv/bin/python bench/search.py --modality-gap [--n 600000] [--scenes 2000]

clip-retrieval's users found text queries on a compressed image index much worse than on a flat
one: CLIP's text vectors sit apart from its image vectors (cosine ≈ 0.3 at best), so the IVF
lists nearest a text query are a poorer guess at where its best images are than for an image
query. This measures it on learned weights: recall@10 of text→image and image→image queries on
the index ``backend.index.choose`` picks, and on the IVF it picks at scale, against exact search
(``IndexFlatIP``) in the same run; then the same IVF searched as ``Searcher.text`` searches it
(``cross_modal=True``).

Size: 600,000 rows by default. At the demo CLIP's 64 dimensions ``choose`` keeps exact Flat up
to 2^25 / 64 = 524,288 rows (recall 1 by construction), so 600,000 is where it picks the IVF
itself; the sharded build's IVF is measured too.

Data, said exactly: ``--scenes`` distinct scenes drawn by the demo's generator (seeds disjoint
from the demo's rows and the demo CLIP's training scenes), stored as the demo stores them (JPEG
q90) and encoded by the demo CLIP's image tower: each one real. Rendering and encoding 10^5
scenes on 2 cores takes longer than a bench should (the rate is measured and printed), so the
other rows are perturbed copies: a real scene vector plus Gaussian noise whose size is measured
from pairs of real renders of the same (shape, colour, count, background) with different seeds
(so a copy is as far from its source as another drawing of the same scene), renormalised.
Queries: every "a photo of a {colour} {shape}" and "{count} {colour} {shape}s {background}"
prompt, encoded by the text tower; and as many held-out real scenes as image queries.
"""

from __future__ import annotations

import random
import time
from typing import Any

import faiss
import numpy as np

from backend import index as vindex
from backend import index_search

K = 10
TIMED = 100  # queries timed one at a time (recall is over all of them)
SPLIT = 91  # sample_specs split for the bench's scenes: not the demo's, not training's
PAIR_SPLIT = 92


def specs(n: int, split: int) -> list:
    """``n`` scenes, every (shape, colour, count, background) equally likely (a colour that
    clashes with its background is redrawn), seeded ``(2026, 91, split, i)``: the demo's rows
    use 3-part seeds and the demo CLIP's training scenes tag 77, so none is either."""
    from backend.demo.backgrounds import CLASHES
    from backend.demo.concepts import BACKGROUNDS, COLOURS, SHAPES
    from backend.demo.synth import SceneSpec

    rng = random.Random(f"bench/{split}")
    out = []
    while len(out) < n:
        colour, bg = rng.choice(list(COLOURS)), rng.choice(BACKGROUNDS)
        if colour in CLASHES[bg]:
            continue
        out.append(SceneSpec(rng.choice(SHAPES), colour, rng.choice((1, 2, 3)), bg,
                             (2026, 91, split, len(out))))  # fmt: skip
    return out


def _encode(enc, specs, batch: int = 64) -> tuple[np.ndarray, float, float]:
    """Image vectors of ``specs`` (rendered, JPEG-encoded as the demo stores them), and the
    render and encode rates (scenes/s)."""
    from backend.demo.plant import encode
    from backend.demo.synth import render_scene

    out, render_s, encode_s = [], 0.0, 0.0
    for lo in range(0, len(specs), batch):
        t0 = time.perf_counter()
        data = [encode(render_scene(s)) for s in specs[lo:lo + batch]]
        t1 = time.perf_counter()
        out.append(enc.encode_images(data))
        render_s += t1 - t0
        encode_s += time.perf_counter() - t1
    return np.concatenate(out), len(specs) / render_s, len(specs) / encode_s


def _same_scene_noise(enc, n_pairs: int) -> float:
    """Per-dimension standard deviation of the difference between two renders of the same
    (shape, colour, count, background) with different seeds, divided by √2: the noise that
    makes a copy as far from its source as another drawing of the scene."""
    from dataclasses import replace

    first = specs(n_pairs, PAIR_SPLIT)
    twins = [replace(s, seed=(*s.seed, 1)) for s in first]
    a, _, _ = _encode(enc, first)
    b, _, _ = _encode(enc, twins)
    cos = float(np.mean(np.sum(a * b, axis=1)))
    print(f"same scene, other seed: mean cosine {cos:.3f} over {n_pairs} pairs")
    return float(np.std(a - b) / np.sqrt(2))


def _prompts() -> list[str]:
    from backend.demo.concepts import COLOURS, SHAPES, plural
    from backend.demo.synth import _BG_PHRASES

    rng = random.Random(7)
    out = [f"a photo of a {c} {s}" for c in COLOURS for s in SHAPES]
    for c in COLOURS:
        for s in SHAPES:
            bg = rng.choice(list(_BG_PHRASES))
            out.append(f"{rng.choice(['two', 'three'])} {c} {plural(s)} "
                       f"{rng.choice(_BG_PHRASES[bg])}")  # fmt: skip
    return out


def _recall(found: np.ndarray, q: np.ndarray, x32: np.ndarray, kth: np.ndarray) -> float:
    """Share of the k found rows whose exact score reaches the exact k-th best (so that a tie
    with the k-th row, common among perturbed copies, counts as found)."""
    ok = []
    for f, qi, t in zip(found, q, kth, strict=True):
        f = f[f >= 0]
        ok.append(int((x32[f] @ qi >= t - 1e-5).sum()) / K)
    return float(np.mean(ok))


def _timed(fn, q: np.ndarray) -> tuple[np.ndarray, float]:
    """Ids of ``fn`` over the queries one at a time (as the app sends them) and p50 ms."""
    ids, lat = [], []
    for i in range(len(q)):
        t0 = time.perf_counter()
        ids.append(fn(q[i:i + 1])[1][0])
        lat.append(time.perf_counter() - t0)
    return np.asarray(ids), 1000 * float(np.median(lat))


def data(enc, n: int, scenes: int, queries: int, seed: int = 0) -> dict[str, Any]:
    """Vectors (float16, as the embed step stores them), text and image query vectors."""
    drawn = specs(scenes + queries, SPLIT)
    t0 = time.perf_counter()
    real, render_rate, encode_rate = _encode(enc, drawn)
    print(f"rendered + encoded {len(drawn):,} scenes in {time.perf_counter() - t0:.0f} s: "
          f"render {render_rate:.0f}/s, encode {encode_rate:.0f}/s on this machine "
          f"(10^5 real scenes would take {1e5 / render_rate + 1e5 / encode_rate:.0f} s)")
    base, img_q = real[:scenes], real[scenes:]
    sigma = _same_scene_noise(enc, 200)
    rng = np.random.default_rng(seed)
    src = np.concatenate([np.arange(scenes), rng.integers(0, scenes, n - scenes)])
    noise = rng.standard_normal((n, base.shape[1]), np.float32) * sigma
    noise[:scenes] = 0  # the real scenes as encoded
    x = base[src] + noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    text = enc.encode_texts(_prompts())
    gap = float(np.mean(text @ base.mean(0)) / np.linalg.norm(base.mean(0)))
    print(f"rows: {scenes:,} real scene vectors + {n - scenes:,} perturbed copies "
          f"(noise σ={sigma:.4f}/dim); {len(text)} text queries, {len(img_q)} image queries; "
          f"text·(image mean direction) {gap:.3f}")
    return {"x": x.astype(np.float16), "text": text, "image": img_q}


def _row(label: str, kind: str, r: float, ms: float, base_ms: float) -> None:
    print(f"{label:<46} {kind:>6} {r:>9.3f} {ms:>7.2f} {base_ms / ms:>9.1f}×")


def run(enc, n: int, scenes: int, queries: int) -> None:
    """Print recall@10 and latency of text and image queries on the chosen index and the IVF,
    against exact search measured in the same run, with ratios (speed-up over exact)."""
    d = data(enc, n, scenes, queries)
    x, d_ = d["x"], d["x"].shape[1]
    x32 = x.astype(np.float32)
    faiss.normalize_L2(x32)  # as vindex.build does with the float16 rows
    flat = faiss.IndexFlatIP(d_)
    flat.add(x32)
    q = {kind: np.ascontiguousarray(d[kind], dtype=np.float32) for kind in ("text", "image")}
    kth = {kind: flat.search(v, K)[0][:, -1] for kind, v in q.items()}  # exact k-th best score
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one query, one thread: as index_search.search runs the app's
    flat_ms = {kind: _timed(lambda q1: flat.search(q1, K), v[:TIMED])[1] for kind, v in q.items()}
    faiss.omp_set_num_threads(threads)
    chosen, ivf = vindex.choose(n, d_), vindex.choose(n, d_, kind="ivf-sq8")
    print(f"\n{n:,} × {d_} vectors; chosen by backend.index.choose: {chosen.factory} "
          f"(nprobe {chosen.nprobe}); the IVF sharded builds use: {ivf.factory} (nprobe "
          f"{ivf.nprobe})")
    built = {}
    for label, plan in (("chosen", chosen), ("ivf", ivf)):
        if label == "ivf" and plan.factory == chosen.factory:
            built["ivf"] = built["chosen"]
            continue
        t0 = time.perf_counter()
        built[label] = vindex.build(x, plan)
        print(f"built {plan.factory} in {time.perf_counter() - t0:.1f} s")
    print(f"\n{'index (one query at a time)':<46} {'query':>6} {'recall@10':>9} {'p50 ms':>7} "
          f"{'speed-up':>10}")
    for kind in q:
        _row("exact (IndexFlatIP, 1 thread): baseline", kind, 1.0, flat_ms[kind], flat_ms[kind])
    rows = [(f"chosen {chosen.factory}", "chosen", {}),
            ("  as Searcher.text searches (cross_modal)", "chosen", {"cross_modal": True}),
            ("  + exact re-rank of 2k from the vectors", "chosen", {"k_factor": 2})]
    if built["ivf"] is not built["chosen"]:
        rows += [(f"IVF {ivf.factory}", "ivf", {}),
                 ("  as Searcher.text searches (cross_modal)", "ivf", {"cross_modal": True}),
                 ("  + exact re-rank of 2k from the vectors", "ivf", {"k_factor": 2})]
    for label, which, kw in rows:
        for kind, v in q.items():
            if kind == "image" and kw.get("cross_modal"):
                continue  # image queries are not cross-modal
            idx = built[which]
            search = lambda q1, i=idx, k=kw: index_search.search(i, q1, K, vectors=x, **k)  # noqa: E731
            r = _recall(search(v)[1], v, x32, kth[kind])
            _row(label, kind, r, _timed(search, v[:TIMED])[1], flat_ms[kind])
    sweep(built["ivf"], q, x32, kth)


def sweep(index, q: dict[str, np.ndarray], x32: np.ndarray, kth: dict[str, np.ndarray]) -> None:
    """Recall@10 of text and image queries as the IVF probes more lists (SQ8 scores as they
    are: what remains missing at many lists is quantisation, not probing)."""
    ivf = index_search._ivf(index)
    if ivf is None:
        return
    print("\nIVF nprobe sweep, recall@10 text / image (no re-rank):")
    for f in (1, 2, 4, 8):
        probe = min(ivf.nlist, ivf.nprobe * f)
        rec = []
        for kind, v in q.items():
            _, ids = index.search(v, K, params=index_search._search_params(index, None, probe))
            rec.append(_recall(ids, v, x32, kth[kind]))
        print(f"  nprobe {probe:>5} (×{f}): {rec[0]:.3f} / {rec[1]:.3f}")
