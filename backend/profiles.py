"""Profiles of known pools, as data: which columns a pool ships, and what each one means.

Users rarely start from raw images: they download a pool's metadata (LAION, DataComp, COYO,
CC12M, a Hugging Face parquet) with the scores its makers already computed. A profile maps the
pool's own column names to Tailscope's canonical names (``nsfw``, ``watermark``,
``clip_similarity``, ``aesthetic``, ``faces``, ``uid``, ``width``, ``height``) with units,
model and provenance, so the Safety page, filters and ``info`` use them as first-class scores
and say where they came from. Adding a pool is a few lines here (and a fixture in
``tests/pool_fixtures.py``): no code path knows a pool by name.

Detection is by schema: the first profile whose ``required`` columns are all present
(case-insensitive). ``--profile NAME`` forces one (:func:`check` names the missing columns) and
``--map-column canonical=column`` maps any column by hand (:func:`hand_field`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

# Canonical names that are not scores: they pick the row's key, caption, url or size.
META = ("uid", "caption", "url", "width", "height")
# What a canonical score means when a user maps a column by hand (--map-column nsfw=my_col).
MEANING = {
    "nsfw": "probability that the image is not safe for work",
    "watermark": "probability that the image carries a watermark",
    "clip_similarity": "CLIP cosine of image and caption",
    "clip_similarity_l14": "CLIP ViT-L/14 cosine of image and caption",
    "aesthetic": "aesthetic score (higher is better)",
    "faces": "number of faces in the image",
}


@dataclass(frozen=True)
class Field:
    """One canonical name and the pool column it comes from."""

    canonical: str
    column: str  # the pool's column, matched case-insensitively
    origin: str  # who computed it, in words: "LAION's CLIP-based NSFW detector"
    model: str = "unknown"
    units: str = ""
    transform: str = "value"  # "value": as shipped; "count": length of a list (face boxes)

    @property
    def is_score(self) -> bool:
        return self.canonical not in META

    @property
    def label(self) -> str:
        """The provenance a page shows: "shipped: LAION's … detector (punsafe)"."""
        return f"shipped: {self.origin} ({self.column})"


@dataclass(frozen=True)
class Profile:
    """A known pool: the columns that identify it and the fields it ships."""

    name: str
    title: str
    required: tuple[str, ...]
    fields: tuple[Field, ...]
    headerless: tuple[str, ...] = ()  # column names of a headerless TSV (CC3M/CC12M)
    image_struct: bool = False  # identified by an HF image column of {bytes, path} structs
    note: str = ""

    def field(self, canonical: str) -> Field | None:
        return next((f for f in self.fields if f.canonical == canonical), None)


def _f(canonical: str, column: str, origin: str, model: str = "unknown", units: str = "",
       transform: str = "value") -> Field:  # fmt: skip
    return Field(canonical, column, origin, model, units, transform)


_SIZE = "pixels of the original image, from the pool's metadata"
PROFILES: tuple[Profile, ...] = (
    Profile(
        "datacomp", "DataComp / CommonPool metadata shard",
        ("uid", "url", "text", "clip_b32_similarity_score"),
        (
            _f("uid", "uid", "DataComp"),
            _f("width", "original_width", "DataComp", units=_SIZE),
            _f("height", "original_height", "DataComp", units=_SIZE),
            _f("clip_similarity", "clip_b32_similarity_score", "DataComp's CLIP score",
               "OpenAI CLIP ViT-B/32", "cosine"),
            _f("clip_similarity_l14", "clip_l14_similarity_score", "DataComp's CLIP score",
               "OpenAI CLIP ViT-L/14", "cosine"),
            _f("faces", "face_bboxes", "DataComp's face detector (face boxes counted)",
               "SCRFD (DataComp face blurring)", "faces", "count"),
        ),
        note="the row-aligned .npz beside each parquet holds b32/l14 image and text vectors",
    ),
    Profile(
        "coyo", "COYO-700M",
        ("id", "url", "text", "clip_similarity_vitb32"),
        (
            _f("uid", "id", "COYO"),
            _f("width", "width", "COYO", units=_SIZE),
            _f("height", "height", "COYO", units=_SIZE),
            _f("nsfw", "nsfw_score_opennsfw2", "COYO's NSFW detector", "OpenNSFW2",
               "probability"),
            _f("watermark", "watermark_score", "COYO's watermark detector",
               "LAION watermark detector (EfficientNet)", "probability"),
            _f("clip_similarity", "clip_similarity_vitb32", "COYO's CLIP score",
               "OpenAI CLIP ViT-B/32", "cosine"),
            _f("clip_similarity_l14", "clip_similarity_vitl14", "COYO's CLIP score",
               "OpenAI CLIP ViT-L/14", "cosine"),
            _f("aesthetic", "aesthetic_score_laion_v2", "COYO's aesthetic score",
               "LAION aesthetic predictor v2", "score 1-10"),
            _f("faces", "num_faces", "COYO's face detector", "SCRFD", "faces"),
        ),
    ),
    Profile(
        "laion", "LAION-5B / LAION-400M / Re-LAION metadata",
        ("url", "text", "similarity"),
        (
            _f("uid", "SAMPLE_ID", "LAION"),
            _f("width", "WIDTH", "LAION", units=_SIZE),
            _f("height", "HEIGHT", "LAION", units=_SIZE),
            _f("nsfw", "punsafe", "LAION's CLIP-based NSFW detector",
               "CLIP ViT-L/14 embeddings + MLP (LAION-SAFETY)", "probability"),
            _f("watermark", "pwatermark", "LAION's watermark detector",
               "EfficientNet (LAION-5B watermark detector)", "probability"),
            _f("clip_similarity", "similarity", "LAION's CLIP score",
               "OpenAI CLIP ViT-B/32 (LAION-2B-multi: M-CLIP)", "cosine"),
            _f("aesthetic", "aesthetic", "LAION's aesthetic predictor",
               "LAION aesthetic predictor (CLIP ViT-L/14 + MLP)", "score 1-10"),
        ),
    ),
    Profile(
        "cc", "Conceptual Captions CC3M / CC12M TSV (no header)",
        ("url", "caption"),
        (),
        headerless=("url", "caption"),
        note="url<TAB>caption (CC12M) or caption<TAB>url (CC3M), told apart by which field "
        "is a URL",
    ),
    Profile(
        "hf", "Hugging Face parquet with an image column",
        (),
        (),
        image_struct=True,
        note="an image column of {bytes, path} structs; list-of-float columns are vectors",
    ),
)
BY_NAME = {p.name: p for p in PROFILES}


def get(name: str) -> Profile:
    """The profile called ``name``; ValueError naming the known ones otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(BY_NAME)}")
    return BY_NAME[name]


def _lower(names: Iterable[str]) -> dict[str, str]:
    return {str(n).lower(): str(n) for n in names}


def missing(profile: Profile, names: Sequence[str]) -> list[str]:
    """The profile's required columns that ``names`` lacks."""
    have = _lower(names)
    return [c for c in profile.required if c.lower() not in have]


def detect(names: Sequence[str], *, headerless: bool = False,
           image_struct: bool = False) -> Profile | None:  # fmt: skip
    """The known pool a table's column ``names`` belong to, or None (a plain table).

    ``headerless``: the file was a TSV with no header row (CC3M/CC12M); ``image_struct``: it
    has an HF image column of ``{bytes, path}`` structs."""
    if headerless:
        return BY_NAME["cc"]
    for p in PROFILES:
        if p.headerless or p.image_struct:
            continue
        if not missing(p, names):
            return p
    return BY_NAME["hf"] if image_struct else None


def check(profile: Profile, names: Sequence[str], where: str = "the source") -> None:
    """Raise ValueError (one line) when a forced profile does not fit the schema."""
    lack = missing(profile, names)
    if lack:
        raise ValueError(
            f"--profile {profile.name} ({profile.title}) needs column(s) "
            f"{', '.join(profile.required)}; {where} lacks {', '.join(lack)} "
            f"(its columns: {', '.join(names) or '(none)'})"
        )


def parse_mapping(items: Sequence[str] | None) -> dict[str, str]:
    """``["nsfw=my_col", …]`` (``--map-column``, repeatable) → ``{"nsfw": "my_col"}``."""
    out: dict[str, str] = {}
    for item in items or ():
        canonical, sep, column = str(item).partition("=")
        canonical, column = canonical.strip(), column.strip()
        if not sep or not canonical or not column or not canonical.isidentifier():
            raise ValueError(f"--map-column {item!r}: write it as canonical=column, "
                             "e.g. --map-column nsfw=my_nsfw_score")  # fmt: skip
        out[canonical.lower()] = column
    return out


def hand_field(canonical: str, column: str) -> Field:
    """A field mapped by hand: its provenance says so (the model is not known)."""
    units = MEANING.get(canonical, "")
    return Field(canonical, column, "mapped by hand with --map-column", units=units)


@dataclass(frozen=True)
class Resolved:
    """A profile applied to one table: the fields whose columns it really has."""

    profile: Profile | None
    fields: tuple[Field, ...] = ()
    forced: bool = False
    hand: tuple[str, ...] = field(default=())  # canonical names mapped by --map-column

    def column(self, canonical: str) -> str | None:
        f = next((f for f in self.fields if f.canonical == canonical), None)
        return f.column if f else None

    def record(self) -> dict[str, Any]:
        """What the manifest keeps: the profile and every mapped field with its provenance."""
        p = self.profile
        return {
            "name": p.name if p else None,
            "title": p.title if p else "plain table (no known pool detected)",
            "forced": self.forced,
            "fields": {f.canonical: field_record(f) for f in self.fields},
            "hand_mapped": list(self.hand),
        }


def field_record(f: Field) -> dict[str, Any]:
    """A field as the manifest keeps it; ``column`` is where it lands in ``samples``."""
    return {"column": {"uid": "key"}.get(f.canonical, f.canonical), "shipped_column": f.column,
            "origin": f.origin, "model": f.model, "units": f.units, "transform": f.transform,
            "label": f.label, "score": f.is_score}  # fmt: skip


def resolve(names: Sequence[str], profile: str | None = None,
            mapping: dict[str, str] | None = None, *, headerless: bool = False,
            image_struct: bool = False, where: str = "the source") -> Resolved:  # fmt: skip
    """Apply ``profile`` (forced; None: detected) and hand ``mapping`` to a table's columns.

    A profile's optional fields whose column is absent are dropped; a hand-mapped column that
    is absent is an error naming the columns there are."""
    have = _lower(names)
    if profile:
        prof = get(profile)
        if not prof.headerless:  # a headerless table gets the profile's own names
            check(prof, names, where)
    else:
        prof = detect(names, headerless=headerless, image_struct=image_struct)
    fields = {f.canonical: replace(f, column=have[f.column.lower()])
              for f in (prof.fields if prof else ()) if f.column.lower() in have}  # fmt: skip
    for canonical, column in (mapping or {}).items():
        if column.lower() not in have:
            raise ValueError(f"--map-column {canonical}={column}: {where} has no column "
                             f"{column!r} (its columns: {', '.join(names)})")  # fmt: skip
        fields[canonical] = hand_field(canonical, have[column.lower()])
    return Resolved(prof, tuple(fields.values()), bool(profile), tuple(mapping or ()))


def apply(rec: dict[str, Any], fields: Sequence[Field]) -> dict[str, Any]:
    """The canonical score values of one source row (``{"nsfw": 0.93, "faces": 2}``)."""
    out: dict[str, Any] = {}
    for f in fields:
        if not f.is_score:
            continue
        v = rec.get(f.column)
        if f.transform == "count":
            v = _count(v)
        out[f.canonical] = v
    return out


def _count(v: Any) -> int | None:
    """Length of a list value (face boxes); a JSON list in text counts too."""
    if v is None:
        return None
    if isinstance(v, str):
        import json

        try:
            v = json.loads(v)
        except ValueError:
            return None
    try:
        return len(v)
    except TypeError:
        return None
