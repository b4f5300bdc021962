"""Safety and quality scorers: a small plugin interface and the registry of scorers.

A scorer turns what a row has (its caption, its image bytes, its embeddings) into one or more
per-row columns. It declares, as class attributes, its ``name``, ``version``, what it
``reads``, the ``columns`` it writes (name → Arrow type) and the ``model`` it uses; ``load``
gets the model ready (or raises :class:`ScorerUnavailable` saying what to install) and
``score_batch`` maps a list of rows to a list of ``{column: value}`` dicts. The build step in
:mod:`backend.safety.run` does the rest: chunks, resuming, per-row failures, joining the
columns into the store and the manifest record.

Adding a scorer is one file: put a module in this package that defines a :class:`Scorer`
subclass decorated with :func:`register` (see docs/scorers.md). Every module here whose name
does not start with ``_`` (other than ``run``, ``rows``, ``chunks`` and ``command``) is imported
when the registry is first read.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

READS = ("caption", "image", "embedding")
_NOT_SCORERS = {"run", "rows", "chunks", "command"}


class ScorerUnavailable(RuntimeError):
    """The scorer's package or model is missing here; the message names what to install."""


@dataclass(frozen=True)
class Context:
    """What ``load`` may want to know about the dataset being scored."""

    name: str
    root: Path | None
    rows: int
    embed: dict[str, Any]  # the embed step's manifest record ({} when it has not run)


Row = dict[str, Any]
"""One row as a scorer sees it: ``row_id``, ``caption``, ``width``, ``height``, ``file_size``,
``image`` (bytes; only when the scorer reads images) and ``embedding`` (``{"img": vec,
"text": vec}`` float32, only when it reads embeddings)."""


class Scorer:
    """Base class of every scorer; subclasses set the class attributes and ``score_batch``."""

    name: ClassVar[str]
    version: ClassVar[str]
    reads: tuple[str, ...] = ("caption",)
    columns: ClassVar[dict[str, pa.DataType]]
    model: str = "none"
    default: ClassVar[bool] = True  # run when no --scorers list is given (slow ones: False)
    description: ClassVar[str] = ""

    def load(self, ctx: Context) -> None:
        """Load the model; raise :class:`ScorerUnavailable` when it cannot be had."""

    def score_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        """One ``{column: value}`` per row, in order. Raise to fail the batch: the runner
        then retries row by row, so only the rows that really fail get a NULL and a reason."""
        raise NotImplementedError


_REGISTRY: dict[str, type[Scorer]] = {}
_DISCOVERED = False


def register(cls: type[Scorer]) -> type[Scorer]:
    """Class decorator: make ``cls`` available by its ``name``."""
    for attr in ("name", "version", "columns"):
        if not getattr(cls, attr, None):
            raise TypeError(f"scorer {cls.__name__} must set {attr!r}")
    bad = [r for r in cls.reads if r not in READS]
    if bad:
        raise TypeError(f"scorer {cls.name!r} reads unknown input(s) {bad}: use {READS}")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_") and mod.name not in _NOT_SCORERS:
            importlib.import_module(f"{__name__}.{mod.name}")
    _DISCOVERED = True


def registry() -> dict[str, type[Scorer]]:
    """Every known scorer by name (built-ins and any module dropped into this package)."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def defaults() -> list[str]:
    """The scorers that run when none are named (slow ones such as OCR are opt-in)."""
    return [n for n, c in registry().items() if c.default]


def resolve(names: list[str] | None) -> list[type[Scorer]]:
    """Scorer classes for ``names`` (None: the defaults; ``all``: every one)."""
    reg = registry()
    if not names:
        names = defaults()
    elif names == ["all"]:
        names = list(reg)
    unknown = [n for n in names if n not in reg]
    if unknown:
        raise ValueError(
            f"unknown scorer(s) {', '.join(unknown)}: choose from {', '.join(reg)} (or all)"
        )
    return [reg[n] for n in dict.fromkeys(names)]
