"""The ImageNet-21k synset vocabulary of DataComp's ``text_based`` baseline, from timm's wheel.

DataComp keeps a caption when one of its words' first WordNet sense
(``wordnet.synsets(word)[0]``) is among the ImageNet-21k synsets. WordNet's data does not ship
in any wheel here (nltk downloads it), so we use what timm ships: the 21,843 ImageNet-21k
synset ids (``imagenet21k_goog_synsets.txt``) and their lemma names
(``imagenet_synset_to_lemma.txt``). A synset's first lemma is the word WordNet names it by
(``dog.n.01``), nearly always the sense ``synsets(word)[0]`` returns, so a caption word matches
when, lower-cased, it (or its singular by WordNet's noun rules: -s, -ses, -xes, -zes, -ches,
-shes, -men, -ies) is the first lemma of one of those synsets (spaces written ``_`` as WordNet
does). Only first lemmas: "A" is a later lemma of *vitamin A* and "red" of *Bolshevik*, and
DataComp's first-sense rule matches neither. What still differs from DataComp: a word whose
first sense is another synset than the one it heads, and irregular plurals WordNet lists by
hand (``mice``), which do not fold here.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

SYNSETS = "imagenet21k_goog_synsets.txt"
LEMMAS = "imagenet_synset_to_lemma.txt"
# WordNet's morphy noun rules (nltk's MORPHOLOGICAL_SUBSTITUTIONS for nouns), in its order.
NOUN_RULES = (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
              ("shes", "sh"), ("men", "man"), ("ies", "y"))  # fmt: skip
BATCH = 50_000


class VocabularyMissing(RuntimeError):
    """timm (a dependency of open_clip) is not installed, or lacks its synset files."""


@cache
def vocabulary() -> tuple[frozenset[str], str]:
    """(lower-cased lemmas, what they are in words) of the ImageNet-21k synsets."""
    try:
        spec = importlib.util.find_spec("timm")  # the files only: importing timm takes seconds
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("timm is not installed")
        info = Path(spec.submodule_search_locations[0]) / "data" / "_info"
        ids = set((info / SYNSETS).read_text().split())
        lines = (info / LEMMAS).read_text().splitlines()
    except (ImportError, OSError) as e:
        raise VocabularyMissing(f"the ImageNet-21k synset list comes from timm: {e}") from None
    words = set()
    for line in lines:
        wnid, _, names = line.partition("\t")
        if wnid in ids:
            words.add(names.split(",")[0].strip().lower().replace(" ", "_"))
    return frozenset(words), f"{len(ids):,} ImageNet-21k synsets ({len(words):,} head lemmas, timm)"


def word_matches(word: str, words: frozenset[str]) -> bool:
    """``word`` (as ``str.split`` cut it) names one of ``words``, itself or as a plural."""
    w = word.lower()
    if w in words:
        return True
    return any(w.endswith(a) and w[: len(w) - len(a)] + b in words for a, b in NOUN_RULES)


def caption_matches(con, words: frozenset[str]) -> np.ndarray:
    """Sorted row ids whose caption has a word of ``words``, captions streamed in batches."""
    reader = con.sql("SELECT row_id, caption FROM samples ORDER BY row_id").to_arrow_reader(BATCH)
    out = []
    for batch in reader:
        rows = batch.column(0).to_pylist()
        for rid, text in zip(rows, batch.column(1).to_pylist(), strict=True):
            if text and any(word_matches(w, words) for w in text.split()):
                out.append(rid)
    return np.asarray(out, dtype=np.int64)
