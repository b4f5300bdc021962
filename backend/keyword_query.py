"""Parsing of keyword searches (see :func:`parse_query`).

Query syntax (see :func:`parse_query`), written for people rather than for tantivy's parser:

* ``red car``        any of the words; rows with more of them, rarer ones, shorter captions rank
  first (BM25). Words are lowercased and English-stemmed: ``cats`` finds ``cat`` and back.
* ``+red car``       ``+`` makes a word (or phrase) required; ``-word`` excludes it.
* ``"red car"``      an exact phrase (stemmed words, in this order, adjacent).
* ``coff*``          a prefix (at least 2 letters); ``"red ca"*`` a phrase whose last word is a
  prefix. Prefix matches all score the same (1.0 each).
* ``AND`` / ``OR`` / ``NOT`` in capitals: ``a AND b`` = ``+a +b``, ``NOT a`` = ``-a``, ``OR`` is
  the default. Lowercase ``and``/``or``/``not`` are ordinary words.
* Anything else is text: punctuation splits words, and a word that punctuation splits into
  several (``e-mail``, ``caption:cat``) is searched as a phrase. There are no fields, regexes,
  ranges or boosts, so no input can reach tantivy's own query language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import tantivy

from backend.keyword_errors import KeywordQueryError
from backend.keyword_schema import MAX_WORD, _analyzer

MAX_QUERY_CHARS = 1000
MAX_CLAUSES = 64
MAX_PHRASE_WORDS = 32
MIN_PREFIX = 2


@dataclass(frozen=True)
class Clause:
    """One unit of a parsed query: ``occur`` is ``+`` (must), ``-`` (must not) or ``""``."""

    occur: str
    terms: tuple[tuple[int, str], ...]  # (position, analysed term) of the non-prefix words
    prefix: tuple[str, ...] = ()  # forms of the last word's prefix when it ends with ``*``
    label: str = ""  # the words as typed, lowercased, for showing back to the user

    def describe(self) -> str:
        text = self.label + ("*" if self.prefix else "")
        quoted = f'"{self.label}"' + ("*" if self.prefix else "") if " " in self.label else text
        return self.occur + quoted


_LEX = re.compile(r'\s*([+-]*)(?:"([^"]*)("?)(\**)|([^\s"]+))')


def parse_query(query: object, tokenizer: str = "en_stem") -> list[Clause]:
    """Turn user text into clauses, or raise :class:`KeywordQueryError` saying what is wrong.

    Lenient by design: unbalanced quotes close at the end, punctuation is a word separator,
    stray operators are ignored. Errors are kept for what we cannot guess: nothing to search for,
    a query too long to be a search, a prefix too short to be useful.
    """
    if not isinstance(query, str):
        raise KeywordQueryError("the search text must be a string")
    if len(query) > MAX_QUERY_CHARS:
        raise KeywordQueryError(
            f"the search text is {len(query):,} characters long; keep it under "
            f"{MAX_QUERY_CHARS:,} (a few words, phrases in quotes)"
        )
    if not query.strip():
        raise KeywordQueryError("type a word to search for")
    stem = _analyzer(tokenizer, stem=True)
    lower = _analyzer(tokenizer, stem=False)
    clauses: list[Clause] = []
    next_occur = ""
    and_pending = False
    pos = 0
    while pos < len(query):
        m = _LEX.match(query, pos)
        if m is None:  # only trailing whitespace left
            break
        pos = m.end()
        signs, phrase, _closed, stars, word = m.groups()
        if word in ("AND", "OR", "NOT") and not signs:
            if word == "NOT":
                next_occur = "-"
            elif word == "AND":
                and_pending = True
                if clauses and clauses[-1].occur == "":
                    clauses[-1] = replace(clauses[-1], occur="+")
            continue
        occur = "-" if "-" in signs[:1] else "+" if signs[:1] == "+" else ""
        if next_occur:
            occur, next_occur = next_occur, ""
        elif and_pending and occur == "":
            occur = "+"
        and_pending = False
        if phrase is not None:
            text, is_prefix = phrase, bool(stars)
        else:
            text, is_prefix = word.rstrip("*"), word.endswith("*")
        clause = _clause(occur, text, is_prefix, stem, lower)
        if clause is not None:
            clauses.append(clause)
        if len(clauses) > MAX_CLAUSES:
            raise KeywordQueryError(f"too many words: use at most {MAX_CLAUSES}")
    if not clauses:
        raise _nothing_to_search(query)
    return clauses


def _nothing_to_search(query: str) -> KeywordQueryError:
    """Why a query gave no clause: its words are all too long, or it has none."""
    if re.search(rf"\w{{{MAX_WORD},}}", query):
        return KeywordQueryError(
            f"words of {MAX_WORD} or more characters are not indexed: search for shorter ones"
        )
    return KeywordQueryError(
        f"nothing to search for in {_short(query)}: use letters or digits "
        '(e.g. cat, "red car", coff*)'
    )


def _clause(
    occur: str, text: str, is_prefix: bool, stem: tantivy.TextAnalyzer, lower: tantivy.TextAnalyzer
) -> Clause | None:
    toks = [(t.position, t.text) for t in stem.pre_tokenize(text).tokens]
    if not toks:
        return None
    if len(toks) > MAX_PHRASE_WORDS:
        raise KeywordQueryError(f"a phrase can have at most {MAX_PHRASE_WORDS} words")
    base = toks[0][0]
    toks = [(p - base, t) for p, t in toks]
    words = lower.analyze(text)  # as typed (lowercased), not stemmed
    label = " ".join(words)
    if not is_prefix:
        return Clause(occur, tuple(toks), label=label)
    raw = words[-1]
    if len(raw) < MIN_PREFIX:
        raise KeywordQueryError(
            f"a prefix needs at least {MIN_PREFIX} letters before the * (got {raw!r}*)"
        )
    # Indexed words are stemmed ("coffee" -> "coffe"), so "coffee*" must also try its stem.
    forms = tuple(dict.fromkeys([raw, toks[-1][1]]))
    return Clause(occur, tuple(toks[:-1]), forms, label)


def _short(query: str) -> str:
    return repr(query if len(query) <= 40 else query[:37] + "...")
