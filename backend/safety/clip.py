"""Image–caption agreement: the cosine between a row's CLIP image and caption embeddings.

When the embed step used CLIP, its vectors are already in one space and the score is a dot
product of stored vectors. Otherwise the scorer loads CLIP itself (``backend.models.load_clip``)
and embeds image and caption; offline, without cached weights, it is skipped with a message
saying how to get them. The packaged models (EfficientNet / MiniLM) live in different spaces,
so their cosine would mean nothing and is never used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from backend.safety import Context, Row, Scorer, ScorerUnavailable, register


@register
class ClipSimilarity(Scorer):
    name = "clip"
    version = "1"
    reads = ("caption", "image")
    columns = {"clip_similarity": pa.float32()}
    description = "cosine between CLIP image and caption embeddings"

    def load(self, ctx: Context) -> None:
        if ctx.embed.get("cross_modal"):
            self.reads = ("embedding",)
            self._encoder = None
            self.model = str(ctx.embed.get("kinds", {}).get("img", {}).get("model", "clip"))
            return
        from backend.models import ModelUnavailable, load_clip

        try:
            self._encoder = load_clip()
        except ModelUnavailable as e:
            raise ScorerUnavailable(
                f"clip needs CLIP weights: {e} With them, embed the dataset with CLIP "
                f"(`python -m backend embed {ctx.name} --model clip --rebuild`, plus "
                "`--clip-checkpoint PATH` for a local file); `score` then reads those vectors."
            ) from None
        self.model = self._encoder.name

    def score_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        if self._encoder is None:
            sims = [float(np.dot(r["embedding"]["img"], r["embedding"]["text"])) for r in rows]
        else:
            img = self._encoder.encode_images([r["image"] for r in rows])
            txt = self._encoder.encode_texts([r["caption"] or "" for r in rows])
            sims = [float(x) for x in (img * txt).sum(axis=1)]
        return [{"clip_similarity": s} for s in sims]
