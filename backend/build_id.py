"""Which ingest build a store is: a short id that changes only when the dataset is rebuilt.

Row ids are assigned at ingest, so anything kept beside a dataset that names rows (a saved
subset, the keyword index) records the build it was made on and is flagged stale on another.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from backend.store import connect


def build_fingerprint(name: str, root: Path | None = None) -> str:
    """A short id of the dataset's ingest build. Row ids are assigned at ingest; adding derived
    columns (map, scores) keeps them, so it changes only when the dataset is rebuilt."""
    con = connect(name, root)
    try:
        return fingerprint_of(con)
    finally:
        con.close()


def fingerprint_of(con: Any) -> str:
    """:func:`build_fingerprint` of the store ``con`` is connected to."""
    row = con.execute("SELECT body FROM build_manifest WHERE name = 'manifest'").fetchone()
    rows = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    body = json.loads(row[0]) if row else {}
    ingest = body.get("steps", {}).get("ingest")
    key = json.dumps([body.get("built_at"), body.get("source"), rows, ingest], sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:12]
