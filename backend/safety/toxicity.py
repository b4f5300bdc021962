"""Caption toxicity: the probability that a caption is offensive (alt-profanity-check), and the
number of listed profane words or phrases in it (better-profanity's word list).

alt-profanity-check carries its own model (a linear SVM over character/word n-grams, trained on
~200k human-labelled toxic and clean comments, calibrated to a probability), so it works
offline. Its known failure: colour words. "two white pentagons" scores 0.70 and "black squares"
0.58, because in its training comments race words travel with abuse; at the package's own
cut-off (0.5) 26 of the 33 captions it flags on the 5,000-row demo are plain colour captions.
The word list has the opposite failure (it misses insults made of ordinary words and flags
"hell" or "ugly" wherever they occur), and no colour word is on it. Measured on the demo's
planted truth (``backend.scorer_eval``, docs/scorers.md): the model above 0.5 has precision
0.21, recall 0.88; above :data:`THRESHOLD` (0.8) 1.00 / 0.88; the model above 0.8 *or* a listed
word, :data:`FLAGGED`, 1.00 / 1.00. The word list is matched here (one regular expression over
the lower-cased caption with common leetspeak undone), not by the package's own
``contains_profanity``, which takes ~12 ms a caption.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import metadata, resources
from typing import Any

import pyarrow as pa

from backend.safety import Context, Row, Scorer, ScorerUnavailable, register

THRESHOLD = 0.8  # chosen from the demo's planted truth (see the module doc), not the package's 0.5
FLAGGED = f"(toxicity > {THRESHOLD} OR profanity > 0)"  # SQL: an offensive caption
_LEET = str.maketrans({"@": "a", "4": "a", "$": "s", "5": "s", "0": "o", "3": "e", "1": "i",
                       "!": "i", "7": "t"})  # fmt: skip


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern[str]:
    """better-profanity's word list as one alternation with word boundaries (phrases match
    across spaces, hyphens and underscores)."""
    try:
        text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise ScorerUnavailable(
            f"toxicity needs better-profanity's word list: pip install better-profanity ({e})"
        ) from None
    words = sorted({w.strip().lower() for w in text.splitlines() if w.strip()}, key=len,
                   reverse=True)  # fmt: skip
    alts = (r"[\s_-]+".join(re.escape(p) for p in re.split(r"[\s_-]+", w)) for w in words)
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alts) + r")(?![a-z0-9])")


def profane_words(text: str) -> int:
    """How many listed profane words or phrases ``text`` holds (leetspeak undone first)."""
    low = (text or "").lower()
    found = _pattern().findall(low)
    leet = low.translate(_LEET)
    return max(len(found), len(_pattern().findall(leet)) if leet != low else 0)


@register
class Toxicity(Scorer):
    name = "toxicity"
    version = "2"
    reads = ("caption",)
    columns = {"toxicity": pa.float32(), "profanity": pa.int16()}
    description = (
        "probability that the caption is offensive (alt-profanity-check) and the listed "
        "profane words in it (better-profanity's list)"
    )

    def load(self, ctx: Context) -> None:
        try:
            from profanity_check import predict_prob
        except ImportError as e:
            raise ScorerUnavailable(
                f"toxicity needs alt-profanity-check: pip install alt-profanity-check ({e})"
            ) from None
        _pattern()
        self._predict = predict_prob
        self.model = (
            f"alt-profanity-check {metadata.version('alt-profanity-check')} + better-profanity "
            f"{metadata.version('better-profanity')} word list"
        )

    def score_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        captions = [r["caption"] or "" for r in rows]
        probs = self._predict(captions)
        return [
            {"toxicity": float(p), "profanity": profane_words(c)}
            for p, c in zip(probs, captions, strict=True)
        ]
