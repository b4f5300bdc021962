"""Words that describe a group of captions: cluster labels and "what is special here".

Class-based TF-IDF (c-TF-IDF, as in BERTopic): all captions of a group form one document; a
term scores high when it is frequent in that group and rare across groups. It needs no model,
runs on millions of captions with a sparse matrix product, and gives words a person can read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

# letters only, two or more: numbers, ids and punctuation do not describe content
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_]+\b"


def _counts(
    captions: Sequence[str], min_df: int, bigrams: bool
) -> tuple[sparse.csr_matrix, np.ndarray] | None:
    """Document-term counts and the vocabulary; None when no caption has a usable word."""
    docs = [c or "" for c in captions]
    if not docs:
        return None
    for df in (min_df, 1):  # a tiny set may have no word in ``min_df`` captions: relax
        vec = CountVectorizer(
            stop_words="english",
            token_pattern=TOKEN_PATTERN,
            ngram_range=(1, 2 if bigrams else 1),
            min_df=min(df, len(docs)),
            lowercase=True,
        )
        try:
            x = vec.fit_transform(docs)
        except ValueError:  # empty vocabulary: only stop words / no words at all
            continue
        return _fold_plurals(x.tocsr(), vec.get_feature_names_out())
    return None


def _fold_plurals(x: sparse.csr_matrix, vocab: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Count "circles" as "circle" when both occur (and "boxes" as "box"), so one idea is one
    term; a word whose singular never occurs ("grass") is left alone."""
    index = {str(t): i for i, t in enumerate(vocab)}
    target = np.arange(len(vocab))
    for t, i in index.items():
        for suffix in ("s", "es"):
            stem = t.removesuffix(suffix)
            if stem != t and stem in index:
                target[i] = index[stem]
                break
    if (target == np.arange(len(vocab))).all():
        return x, vocab
    kept = np.unique(target)
    col = {old: new for new, old in enumerate(kept)}
    fold = sparse.csr_matrix(
        (np.ones(len(vocab)), (np.arange(len(vocab)), [col[t] for t in target])),
        shape=(len(vocab), len(kept)),
    )
    return (x @ fold).tocsr(), vocab[kept]


def _ctfidf(class_counts: sparse.csr_matrix | np.ndarray) -> np.ndarray:
    """c-TF-IDF of a (classes × terms) count matrix: tf normalised per class times
    log(1 + mean words per class / term frequency over all classes)."""
    counts = np.asarray(class_counts.todense() if sparse.issparse(class_counts) else class_counts,
                        dtype=np.float64)  # fmt: skip
    words = counts.sum(axis=1, keepdims=True)
    tf = counts / np.maximum(words, 1.0)
    total = counts.sum(axis=0)
    avg = max(float(words.mean()), 1.0)
    idf = np.log1p(avg / np.maximum(total, 1.0))
    return tf * idf


def _top(scores: np.ndarray, vocab: np.ndarray, k: int) -> list[str]:
    order = np.argsort(-scores, kind="stable")
    return [str(vocab[i]) for i in order[:k] if scores[i] > 0]


def cluster_labels(
    captions: Sequence[str],
    labels: np.ndarray,
    k: int = 4,
    *,
    bigrams: bool = False,
    min_df: int | None = None,
) -> dict[int, list[str]]:
    """Top ``k`` c-TF-IDF terms of each cluster id in ``labels`` (one per caption).

    Negative labels (rows without a map position) are left out. ``min_df`` (default: 2 when
    there are 50 captions or more) drops words seen in fewer captions, so a typo or a single
    odd caption cannot name a cluster.
    """
    labels = np.asarray(labels)
    if len(labels) != len(captions):
        raise ValueError(f"{len(captions)} captions but {len(labels)} labels")
    ids = sorted(int(c) for c in np.unique(labels) if c >= 0)
    out: dict[int, list[str]] = {c: [] for c in ids}
    keep = labels >= 0
    if not ids:
        return out
    df = min_df if min_df is not None else (2 if keep.sum() >= 50 else 1)
    got = _counts([c for c, m in zip(captions, keep, strict=True) if m], df, bigrams)
    if got is None:
        return out
    x, vocab = got
    kept = labels[keep]
    row_of = {c: i for i, c in enumerate(ids)}
    member = sparse.csr_matrix(
        (np.ones(len(kept)), ([row_of[int(c)] for c in kept], np.arange(len(kept)))),
        shape=(len(ids), len(kept)),
    )
    scores = _ctfidf(member @ x)
    for c, i in row_of.items():
        out[c] = _top(scores[i], vocab, k)
    return out


def contrast_terms(
    selected: Sequence[str],
    background: Sequence[str],
    k: int = 8,
    *,
    bigrams: bool = False,
) -> list[str]:
    """Terms most over-represented in ``selected`` captions against ``background`` captions.

    Two-class c-TF-IDF, keeping only terms whose share of the selection's words is above
    their share of the background's (a word common to both is not what makes it special).
    """
    if not selected:
        return []
    docs = list(selected) + list(background)
    got = _counts(docs, 2 if len(docs) >= 50 else 1, bigrams)
    if got is None:
        return []
    x, vocab = got
    n_sel = len(selected)
    sel = np.asarray(x[:n_sel].sum(axis=0)).ravel()
    bg = np.asarray(x[n_sel:].sum(axis=0)).ravel()
    scores = _ctfidf(np.vstack([sel, bg]))[0]
    sel_share = sel / max(sel.sum(), 1.0)
    bg_share = (bg + 0.5) / max(bg.sum() + 0.5 * len(vocab), 1.0)  # smoothed: unseen ≠ zero
    scores = np.where(sel_share > bg_share, scores, 0.0)
    return _top(scores, vocab, k)
