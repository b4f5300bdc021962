"""Vocabularies: named lists of concepts, each with the phrasings (synonyms) that count for it.

Sources: the ImageNet-1k class names open_clip ships, phrases mined from the dataset's own
captions, and uploaded files (one concept a line, ``concept<TAB>syn1;syn2`` or CSV
``concept,syn1;syn2``, or a MetaCLIP-style ``metadata.json`` list of strings). Concepts are
de-duplicated by their matching form (case-folded, tokenised): a repeated concept merges its
synonyms into the first one and is counted in ``notes``, never matched twice.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field

TOKEN = re.compile(r"\w+|[^\w\s]")
MAX_CONCEPT_CHARS = 200


class VocabError(ValueError):
    """A vocabulary that cannot be used: the message says why and what to do."""


def normalise(text: str) -> str:
    """The matching form: case-folded tokens (words, and each punctuation mark on its own)
    joined by single spaces. ``"Cat-Food!"`` → ``"cat - food !"``."""
    return " ".join(TOKEN.findall(text.casefold()))


@dataclass
class Vocabulary:
    """Concepts (display names, in order: the index is the concept id) and their phrasings."""

    name: str
    concepts: list[str]
    phrasings: list[list[str]]  # per concept: the concept itself first, then its synonyms
    source: str = ""
    notes: list[str] = field(default_factory=list)
    imagenet_class: dict[int, int] = field(default_factory=dict)  # class index → concept id

    def __len__(self) -> int:
        return len(self.concepts)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "concepts": self.concepts,
            "phrasings": self.phrasings,
            "notes": self.notes,
            "imagenet_class": {str(k): v for k, v in self.imagenet_class.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        return cls(d["name"], list(d["concepts"]), [list(p) for p in d["phrasings"]],
                   d.get("source", ""), list(d.get("notes", [])),
                   {int(k): int(v) for k, v in d.get("imagenet_class", {}).items()})  # fmt: skip


def build(name: str, entries: list[tuple[str, list[str]]], source: str = "") -> Vocabulary:
    """A Vocabulary from (concept, synonyms) pairs: blanks dropped, duplicates merged."""
    concepts: list[str] = []
    phrasings: list[list[str]] = []
    index: dict[str, int] = {}
    dups = blanks = 0
    for concept, synonyms in entries:
        concept = " ".join(str(concept).split())[:MAX_CONCEPT_CHARS]
        key = normalise(concept)
        if not key:
            blanks += 1
            continue
        syns = [" ".join(s.split())[:MAX_CONCEPT_CHARS] for s in synonyms]
        syns = [s for s in syns if normalise(s)]
        if key in index:
            dups += 1
            own = phrasings[index[key]]
            own.extend(s for s in syns if normalise(s) not in map(normalise, own))
            continue
        index[key] = len(concepts)
        concepts.append(concept)
        seen = {key}
        ph = [concept]
        for s in syns:
            if normalise(s) not in seen:
                seen.add(normalise(s))
                ph.append(s)
        phrasings.append(ph)
    if not concepts:
        raise VocabError(
            f"vocabulary {name!r} is empty: give at least one concept (one a line, or "
            "concept<TAB>synonym1;synonym2, or a JSON list of strings)"
        )
    notes = []
    if dups:
        notes.append(f"{dups} duplicate concept(s) merged into their first occurrence")
    if blanks:
        notes.append(f"{blanks} entr(ies) with no word or mark in them skipped")
    return Vocabulary(name, concepts, phrasings, source, notes)


def decode(data: bytes) -> tuple[str, str | None]:
    """Text of an uploaded file: UTF-8 (with or without BOM), else Windows-1252 with a note."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        first = e.start
    try:
        return data.decode("cp1252"), (
            f"the file is not UTF-8 (first bad byte at offset {first}); read as Windows-1252"
        )
    except UnicodeDecodeError:
        raise VocabError(
            f"the file is not UTF-8 (first bad byte at offset {first}) nor Windows-1252: "
            "save it as UTF-8"
        ) from None


def parse(name: str, data: bytes, filename: str = "") -> Vocabulary:
    """A Vocabulary from an uploaded file's bytes (format from the content, not the name)."""
    text, note = decode(data)
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("{"):
        entries = _parse_json(stripped)
    else:
        entries = _parse_lines(text)
    vocab = build(name, entries, source=filename or "upload")
    if note:
        vocab.notes.insert(0, note)
    return vocab


def _parse_json(text: str) -> list[tuple[str, list[str]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise VocabError(f"not valid JSON: {e}") from None
    if isinstance(data, dict):  # {"concept": ["syn", ...]} or {"concept": count}
        return [(str(k), [str(s) for s in v] if isinstance(v, list) else []) for k, v in
                data.items()]  # fmt: skip
    if not isinstance(data, list):
        raise VocabError("a JSON vocabulary must be a list of strings (MetaCLIP metadata.json)")
    out = []
    for item in data:
        if isinstance(item, str):
            out.append((item, []))
        elif isinstance(item, list) and item and all(isinstance(s, str) for s in item):
            out.append((item[0], item[1:]))
        else:
            raise VocabError(f"a JSON vocabulary entry must be a string, not {item!r:.60}")
    return out


def _parse_lines(text: str) -> list[tuple[str, list[str]]]:
    out = []
    lines = text.splitlines()
    tabbed = any("\t" in ln for ln in lines[:1000])
    csvish = not tabbed and any("," in ln for ln in lines[:1000]) and _looks_csv(lines)
    rows = csv.reader(io.StringIO(text)) if csvish else (ln.split("\t", 1) for ln in lines)
    for row in rows:
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        syns = [s for part in row[1:] for s in part.split(";") if s.strip()]
        out.append((row[0].strip(), syns))
    return out


def _looks_csv(lines: list[str]) -> bool:
    """Comma-separated only when every non-blank line of the first 1000 has the same number of
    commas (a plain list may hold a concept such as "Washington, D.C.")."""
    counts = {ln.count(",") for ln in lines[:1000] if ln.strip()}
    return len(counts) == 1 and counts != {0}


def imagenet() -> Vocabulary:
    """ImageNet-1k class names as open_clip ships them. A name's "(qualifier)" is dropped for
    matching and "a / b" alternatives become synonyms; two classes with one name share a
    concept (``imagenet_class`` maps every class index to its concept)."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    entries = []
    for cls in IMAGENET_CLASSNAMES:
        base = re.sub(r"\s*\([^)]*\)", "", cls).strip()
        alts = [a.strip() for a in base.split(" / ") if a.strip()]
        entries.append((cls, alts))
    vocab = build("imagenet", entries, source="open_clip IMAGENET_CLASSNAMES")
    key_of = {normalise(c): i for i, c in enumerate(vocab.concepts)}
    vocab.imagenet_class = {i: key_of[normalise(" ".join(c.split()))]
                            for i, c in enumerate(IMAGENET_CLASSNAMES)}  # fmt: skip
    # the display name with its qualifier is not a phrase to look for: match the plain names
    for p in vocab.phrasings:
        if len(p) > 1 and ("(" in p[0] or " / " in p[0]):
            p.pop(0)
    return vocab


def templates() -> tuple:
    """open_clip's prompt templates for zero-shot ImageNet (callables of a class name)."""
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    return SIMPLE_IMAGENET_TEMPLATES


def mine(captions, top: int = 1000, min_df: int = 2, ngram: tuple[int, int] = (1, 2)) -> Vocabulary:
    """The ``top`` most frequent words and word pairs of the captions (English stop words and
    pure numbers left out): a vocabulary of what the dataset itself talks about."""
    from sklearn.feature_extraction.text import CountVectorizer

    docs = [c or "" for c in captions]
    vec = CountVectorizer(stop_words="english", ngram_range=ngram, min_df=min_df, binary=True,
                          token_pattern=r"(?u)\b[^\W\d_][^\W\d_]+\b", dtype="int32")  # fmt: skip
    try:
        m = vec.fit_transform(docs)
    except ValueError:
        raise VocabError("no caption has a word that appears in two or more captions") from None
    df = m.sum(axis=0).A1
    terms = vec.get_feature_names_out()
    order = sorted(range(len(terms)), key=lambda i: (-df[i], terms[i]))[:top]
    return build("mined", [(str(terms[i]), []) for i in order], source="mined from captions")
