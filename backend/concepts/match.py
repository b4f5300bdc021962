"""Caption matching: every vocabulary phrase found in every caption, with one Aho–Corasick pass.

Rule (documented in the README): case-folded, on word boundaries. Captions and phrases are both
turned into their matching form (:func:`backend.concepts.vocab.normalise`: tokens of word
characters, each punctuation mark a token of its own, single spaces between) and searched with
spaces around them, so a hit always starts and ends on a token edge — the same edges as regex
``\\b`` for word phrases — and regex-special characters are plain characters. With ``plurals``
a phrase's last word also matches with ``s`` or ``es`` appended (``circle`` counts
``circles``). Every phrase is found, overlapping ones too: a caption "cat food" counts for both
"cat" and "cat food", as MetaCLIP's substring matching does. A (row, concept) pair is counted
once however often or by however many synonyms the caption names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

from backend.concepts.vocab import TOKEN, Vocabulary, normalise


@dataclass
class Matcher:
    """An automaton over all phrasings; ``targets`` maps a pattern to its concept ids (CSR)."""

    automaton: object
    starts: np.ndarray  # pattern p's concept ids are ids[starts[p]:starts[p + 1]]
    ids: np.ndarray
    n_concepts: int


def _variants(phrase: str, plurals: bool) -> list[str]:
    key = normalise(phrase)
    if not plurals or not key[-1:].isalnum():
        return [key]
    return [key, key + "s", key + "es"]


def matcher(vocab: Vocabulary, plurals: bool = True) -> Matcher:
    """Compile the vocabulary's phrasings (500k concepts take a few seconds)."""
    import ahocorasick

    targets: dict[str, list[int]] = {}
    for cid, phrases in enumerate(vocab.phrasings):
        for phrase in phrases:
            for v in _variants(phrase, plurals):
                lst = targets.setdefault(v, [])
                if not lst or lst[-1] != cid:
                    lst.append(cid)
    auto = ahocorasick.Automaton()
    starts = np.zeros(len(targets) + 1, dtype=np.int64)
    flat: list[int] = []
    for pid, (pattern, cids) in enumerate(targets.items()):
        auto.add_word(f" {pattern} ", pid)
        flat.extend(dict.fromkeys(cids))
        starts[pid + 1] = len(flat)
    auto.make_automaton()
    return Matcher(auto, starts, np.asarray(flat, dtype=np.int32), len(vocab))


def match_captions(m: Matcher, captions: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(caption index, concept id) of every distinct hit in ``captions``, sorted.

    The captions are joined into one text (``" \\n "`` between them, which no pattern spans) and
    searched in one call, which is what makes this fast in Python."""
    norm = [" ".join(TOKEN.findall(c.casefold())) if c else "" for c in captions]
    text = " " + " \n ".join(norm) + " "
    lengths = np.fromiter((len(s) + 3 for s in norm), dtype=np.int64, count=len(norm))
    bounds = np.cumsum(lengths)  # caption i's text ends before bounds[i]
    found = list(m.automaton.iter(text))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    arr = np.fromiter(chain.from_iterable(found), dtype=np.int64, count=2 * len(found))
    ends, pids = arr[0::2], arr[1::2]
    caps = np.searchsorted(bounds, ends, side="right")
    per = m.starts[pids + 1] - m.starts[pids]
    if per.max() == 1:
        cids = m.ids[m.starts[pids]]
    else:
        caps = np.repeat(caps, per)
        offs = np.repeat(m.starts[pids] - np.cumsum(per) + per, per) + np.arange(per.sum())
        cids = m.ids[offs]
    key = np.sort(caps * np.int64(m.n_concepts) + cids)  # np.unique's hash path is slower
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    return key // m.n_concepts, (key % m.n_concepts).astype(np.int32)
