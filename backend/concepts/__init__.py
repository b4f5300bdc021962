"""Concept frequency: how often each concept of a vocabulary appears in a dataset's captions
(and images), how long its tail is, and MetaCLIP-style balancing of it.

One module per idea: :mod:`.vocab` (vocabularies), :mod:`.match` (Aho–Corasick caption
matching), :mod:`.images` (image-side tagging), :mod:`.stats` (slope, shares, misalignment,
coverage), :mod:`.balance` (MetaCLIP's sampling rule), :mod:`.run` (a vocabulary over a dataset
and its stored result set) and :mod:`.command` (the CLI).
"""

from __future__ import annotations

from pathlib import Path

from backend.concepts.balance import balance, expected_counts
from backend.concepts.run import Result, analyse, list_vocabs, load, rows_with
from backend.concepts.stats import coverage, fit_slope, shares
from backend.concepts.vocab import VocabError, Vocabulary, imagenet, mine, parse

__all__ = ["Result", "VocabError", "Vocabulary", "analyse", "balance", "coverage",
           "expected_counts", "fit_slope", "imagenet", "list_vocabs", "load", "mine", "parse",
           "resolve", "rows_with", "save_balanced", "selection_for", "shares"]  # fmt: skip


def selection_for(result: Result, concepts: list[str]):
    """A Selection of the rows whose caption names any of ``concepts``: the ``concepts`` part,
    compiled to a semi-join on the result set's hits file (never a list of row ids)."""
    from backend.selection import BadSelection, Selection

    known = set(result.vocab.concepts)
    for c in concepts:
        if c not in known:
            raise BadSelection(f"{c!r} is not a concept of vocabulary {result.vocab.name!r}")
    return Selection(concepts={result.vocab.name: list(concepts)},
                     concept_dirs={result.vocab.name: str(result.folder.resolve())})


def resolve(name: str, sel, root: Path | None = None):
    """``sel`` with each concept part's result-set folder filled in, ready to compile; refuses
    (BadSelection) a vocabulary the dataset has no result set for or a name not in it."""
    from dataclasses import replace

    import pyarrow.parquet as pq

    from backend import paths
    from backend.concepts.run import concepts_dir
    from backend.selection import BadSelection

    if not any(sel.concepts.values()) or sel.concept_dirs is not None:
        return sel
    dirs = {}
    for vocab, names in sel.concepts.items():
        if not names:
            continue
        try:
            paths.check_name(vocab)
        except paths.BadName as e:
            raise BadSelection(str(e)) from None
        folder = concepts_dir(name, root) / vocab
        if not (folder / "counts.parquet").is_file():
            raise BadSelection(f"dataset {name!r} has no concept counts for {vocab!r}: run "
                               f"`python -m backend concepts {name} --vocab ...`")  # fmt: skip
        known = set(pq.read_table(folder / "counts.parquet", columns=["concept"])
                    ["concept"].to_pylist())  # fmt: skip
        unknown = [c for c in names if c not in known]
        if unknown:
            raise BadSelection(f"{unknown[0]!r} is not a concept of vocabulary {vocab!r}")
        dirs[vocab] = str(folder.resolve())
    return replace(sel, concept_dirs=dirs)


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
