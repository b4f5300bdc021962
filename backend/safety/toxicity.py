"""Caption toxicity: the probability that a caption is offensive, from alt-profanity-check.

alt-profanity-check carries its own model (a linear SVM over character/word n-grams, trained on
~200k human-labelled toxic and clean comments, calibrated to a probability), so it works
offline. A probability above :data:`THRESHOLD` (the package's own ``predict`` cut-off) counts as
offensive.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pyarrow as pa

from backend.safety import Context, Row, Scorer, ScorerUnavailable, register

THRESHOLD = 0.5


@register
class Toxicity(Scorer):
    name = "toxicity"
    version = "1"
    reads = ("caption",)
    columns = {"toxicity": pa.float32()}
    description = "probability that the caption is offensive (alt-profanity-check)"

    def load(self, ctx: Context) -> None:
        try:
            from profanity_check import predict_prob
        except ImportError as e:
            raise ScorerUnavailable(
                f"toxicity needs alt-profanity-check: pip install alt-profanity-check ({e})"
            ) from None
        self._predict = predict_prob
        self.model = f"alt-profanity-check {metadata.version('alt-profanity-check')}"

    def score_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        probs = self._predict([r["caption"] or "" for r in rows])
        return [{"toxicity": float(p)} for p in probs]
