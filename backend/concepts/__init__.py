"""Concept frequency: how often each concept of a vocabulary appears in a dataset's captions
(and images), how long its tail is, and MetaCLIP-style balancing of it.

One module per idea: :mod:`.vocab` (vocabularies), :mod:`.match` (Aho–Corasick caption
matching), :mod:`.images` (image-side tagging), :mod:`.stats` (slope, shares, misalignment,
coverage), :mod:`.balance` (MetaCLIP's sampling rule), :mod:`.run` (a vocabulary over a dataset
and its stored result set), :mod:`.parts` (the Selection's concepts part) and :mod:`.command`
(the CLI).
"""

from __future__ import annotations

from pathlib import Path

from backend.concepts.balance import balance, expected_counts
from backend.concepts.parts import resolve, selection_for
from backend.concepts.run import Result, analyse, list_vocabs, load, rows_with
from backend.concepts.stats import coverage, fit_slope, shares
from backend.concepts.vocab import VocabError, Vocabulary, imagenet, mine, parse

__all__ = ["Result", "VocabError", "Vocabulary", "analyse", "balance", "coverage",
           "expected_counts", "fit_slope", "imagenet", "list_vocabs", "load", "mine", "parse",
           "resolve", "rows_with", "save_balanced", "selection_for", "shares"]  # fmt: skip


def save_balanced(name: str, result: Result, t: float, seed: int, subset: str,
                  root: Path | None = None, overwrite: bool = False):  # fmt: skip
    """Sample ``result``'s rows with MetaCLIP's rule at ``t`` and save them as a subset."""
    from backend import subsets
    from backend.selection import Selection

    counts = result.counts["caption_count"].to_numpy()
    kept = balance(result.rows, result.ids, counts, t, seed)
    note = (f"MetaCLIP balance of vocabulary {result.vocab.name!r}: t={t:g}, seed={seed}, "
            f"{len(kept)} of {result.summary.get('rows')} rows")  # fmt: skip
    return subsets.save(name, subset, Selection(row_ids=tuple(int(i) for i in kept)), root,
                        note=note, overwrite=overwrite)  # fmt: skip
