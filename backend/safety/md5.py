"""MD5 of each image's bytes, for hash blocklists that are MD5 (:mod:`backend.blocklists`).

Ingest keeps sha256 only; some hash lists that teams receive are MD5. Without this column a
list is matched by reading every image again; with it (``score --scorers md5``, per shard on
the executor like any scorer) matching is a join. Opt-in: most pools never need it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from backend.safety import Row, Scorer, register


@register
class MD5(Scorer):
    name = "md5"
    version = "1"
    reads = ("image",)
    columns = {"md5": pa.string()}
    default = False
    model = "hashlib md5 of the stored bytes"
    description = "MD5 of the image bytes (hex), for MD5 blocklists"

    def score_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        return [{"md5": hashlib.md5(r["image"], usedforsecurity=False).hexdigest()}
                for r in rows]  # fmt: skip
