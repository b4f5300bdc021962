"""The concepts part of a Selection: rows whose caption names a concept, compiled to a
semi-join on a stored result set's hits (never a list of row ids).

Below the package (it reads result sets through :mod:`.run`, never the package), so that
subsets and the Selection's resolver can use it without importing every concept tool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.browse import CARD_COLUMNS, columns, rows_by_id
from backend.concepts.run import Result
from backend.selection import Selection


def selection_for(result: Result, concepts: list[str]):
    """A Selection of the rows whose caption names any of ``concepts``: the ``concepts`` part,
    compiled to a semi-join on the result set's hits file (never a list of row ids)."""
    from backend.selection import BadSelection, Selection

    known = set(result.vocab.concepts)
    for c in concepts:
        if c not in known:
            raise BadSelection(f"{c!r} is not a concept of vocabulary {result.vocab.name!r}")
    return Selection(concepts={result.vocab.name: list(concepts)},
                     concept_dirs={result.vocab.name: str(result.folder.resolve())})  # fmt: skip


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


def example_rows(con: Any, result: Result, sel: Selection, concept: str,
                 n: int = 12) -> list[dict[str, Any]]:  # fmt: skip
    """The first ``n`` rows (card columns, by row id) of ``sel`` whose caption names
    ``concept``: the Concepts page's examples. Their ids first, then just those rows: in one
    query DuckDB read the card columns of every row the join kept (10^8, a rare concept: 8.4 s)."""
    cols = columns(con)
    where, params = sel.where(cols)
    named, more = selection_for(result, [concept]).where(cols)
    sql = f"SELECT row_id FROM samples WHERE ({where}) AND {named} ORDER BY row_id LIMIT ?"
    ids = [r[0] for r in con.execute(sql, [*params, *more, n]).fetchall()]
    got = rows_by_id(con, ids, CARD_COLUMNS)
    return [got[i] for i in ids if i in got]
