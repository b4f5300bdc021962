"""Blocklists and opt-outs: flag the rows a list names, exclude them, and log that it was done.

Teams receive hash lists (child-safety organisations send sha256, MD5 or perceptual hashes) and
opt-out lists (URLs, whole domains) and must apply them auditably. ``add`` reads one list
(strictly: a malformed line is an error naming every bad line number, so a typo never silently
matches nothing), flags every matching row, and keeps:

- ``blocklists/<list>.parquet``: (row_id, entry, distance), joinable by ``row_id``, and
  ``<list>.json``: what the list was (kind, file, its sha256, entries, threshold, rows);
- the saved subset ``blocklisted``: every row any list flags; put it in "none of" (the
  Selection's ``subsets_none``) to exclude listed rows on every page and in Export;
- ``removal_log.jsonl``: append-only, one line per list applied (who, when, which list, how many
  rows), referenced by every export manifest written after it (:func:`manifest_entry`).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from backend import paths
from backend.blocklist_match import BlocklistError, match, match_on, normalize_url
from backend.manifest import now, write_json_atomic

KINDS = ("sha256", "md5", "phash", "url", "domain")
SUBSET = "blocklisted"
LOG = "removal_log.jsonl"
HEX = {"sha256": re.compile(r"[0-9a-f]{64}"), "md5": re.compile(r"[0-9a-f]{32}"),
       "phash": re.compile(r"(0x)?[0-9a-f]{16}")}  # fmt: skip
LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def folder(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / "blocklists"


def log_path(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / LOG


def _entry(token: str, kind: str) -> tuple[str | None, str]:
    """(normalised entry, "") or (None, why it is malformed)."""
    t = token.strip()
    if kind in HEX:
        low = t.lower()
        if not HEX[kind].fullmatch(low):
            want = {"sha256": "64", "md5": "32", "phash": "16"}[kind]
            return None, f"{t[:40]!r} is not a {kind} ({want} hex digits)"
        return low.removeprefix("0x"), ""
    if kind == "url":
        norm = normalize_url(t)
        return (norm, "") if norm else (None, f"{t[:60]!r} is not an http(s) URL")
    d = t.lower().rstrip(".").removeprefix("*.")
    labels = d.split(".")
    if len(labels) < 2 or len(d) > 253 or not all(LABEL.fullmatch(x) for x in labels):
        return None, f"{t[:60]!r} is not a domain name (like example.com)"
    return d, ""


def parse(path: Path, kind: str) -> list[str]:
    """The list's entries (unique, in file order). One entry per line, its first token (the
    rest of the line, after whitespace or a comma, is ignored); blank lines and ``#`` lines
    are skipped. Any malformed line fails the whole list, naming the lines."""
    if kind not in KINDS:
        raise BlocklistError(f"unknown list kind {kind!r}: use one of {', '.join(KINDS)}")
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise BlocklistError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise BlocklistError(f"cannot read {path}: {e.strerror or e}") from None
    entries: dict[str, None] = {}
    bad: list[tuple[int, str]] = []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        token = re.split(r"[\s,]+", line, maxsplit=1)[0]
        got, why = _entry(token, kind)
        if got is None:
            bad.append((no, why))
        else:
            entries[got] = None
    if bad:
        shown = ", ".join(str(n) for n, _ in bad[:20]) + (" …" if len(bad) > 20 else "")
        raise BlocklistError(f"{path}: {len(bad)} malformed line(s) of a {kind} list: line(s) "
                             f"{shown} (line {bad[0][0]}: {bad[0][1]}); nothing was applied")
    if not entries:
        raise BlocklistError(f"{path}: no {kind} entries (blank and # lines only)")
    return list(entries)


def add(
    name: str, list_path: Path, kind: str, list_name: str | None = None,
    threshold: int | None = None, who: str | None = None, root: Path | None = None,
    executor: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Apply one list: flag its rows, refresh the ``blocklisted`` subset, log it; the record.
    ``executor``: match row ranges as units on it (a process pool, Ray), else in-process."""
    list_path = Path(list_path)
    list_name = list_name or list_path.stem
    try:
        paths.check_name(list_name)
    except paths.BadName:
        raise BlocklistError(f"bad list name {list_name!r}: use letters, digits, '_', '-', "
                             "'.' (pass --list-name)") from None
    if not paths.store_path(name, root).is_file():
        raise BlocklistError(f"dataset {name!r} is not built: run "
                             f"`python -m backend build {name} --source PATH`")
    if threshold is not None and kind != "phash":
        raise BlocklistError("--threshold applies to phash lists only")
    entries = parse(list_path, kind)
    if executor is None:
        table, notes = match(name, kind, entries, threshold, root)
    else:
        table, notes = match_on(executor, name, kind, entries, threshold, root)
    out = folder(name, root)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{list_name}.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, out / f"{list_name}.parquet")
    record = {
        "list": list_name, "kind": kind, "file": str(list_path.resolve()),
        "file_sha256": hashlib.sha256(list_path.read_bytes()).hexdigest(),
        "entries": len(entries), "rows": table.num_rows,
        "entries_matched": len(set(table.column("entry").to_pylist())),
        "who": who or _user(), "at": now(), **notes,
    }  # fmt: skip
    write_json_atomic(out / f"{list_name}.json", record)
    record["rows_blocklisted"] = _refresh_subset(name, root)
    _append_log(name, {"action": "flag", **record, "subset": SUBSET}, root)
    return record


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def flagged(name: str, root: Path | None = None) -> pa.Table:
    """(row_id, list, kind, entry, distance) over every applied list, by row."""
    parts = []
    for rec in lists(name, root):
        t = pq.read_table(folder(name, root) / f"{rec['list']}.parquet")
        parts.append(t.append_column("list", pa.array([rec["list"]] * t.num_rows, pa.string()))
                     .append_column("kind", pa.array([rec["kind"]] * t.num_rows, pa.string())))
    if not parts:
        return pa.table({"row_id": pa.array([], pa.int64()), "list": pa.array([], pa.string())})
    return pa.concat_tables(parts).sort_by([("row_id", "ascending"), ("list", "ascending")])


def count_in(con: Any, sel: Any, ids: list[int]) -> int:
    """How many of the rows ``ids`` (those on a list) the Selection ``sel`` holds."""
    from backend.browse import columns
    from backend.selection import IDS_IN

    where, params = sel.where(columns(con))
    return con.execute(f"SELECT count(*) FROM samples WHERE ({where}) AND {IDS_IN}",
                       [*params, list(ids)]).fetchone()[0]  # fmt: skip


def lists(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The records of every applied list, by name."""
    base = folder(name, root)
    if not base.is_dir():
        return []
    out = []
    for p in sorted(base.glob("*.json")):
        if (base / f"{p.stem}.parquet").is_file():
            out.append(json.loads(p.read_text(encoding="utf-8")))
    return out


def _refresh_subset(name: str, root: Path | None) -> int:
    """Save subset ``blocklisted`` = every row any list flags; its size."""
    from backend import subsets
    from backend.selection import Selection

    t = flagged(name, root)
    ids = tuple(int(i) for i in np.unique(t.column("row_id").to_numpy())) if t.num_rows else ()
    names = ", ".join(r["list"] for r in lists(name, root))
    sel = Selection(row_ids=ids, row_ids_label="rows on a blocklist")
    sub = subsets.save(name, SUBSET, sel, root, note=f"rows matched by blocklists: {names}",
                       overwrite=True)  # fmt: skip
    return sub.count


def _append_log(name: str, entry: dict[str, Any], root: Path | None) -> None:
    """One JSON line, appended (never rewritten): O_APPEND keeps concurrent lines whole."""
    path = log_path(name, root)
    line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_log(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    path = log_path(name, root)
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def manifest_entry(
    name: str, root: Path | None, recipe: dict[str, Any],
    selected_ids: Callable[[], np.ndarray] | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """What an export manifest records about the removal log (None when there is none): the
    log's path, lines and sha256 at export time, whether the export excluded ``blocklisted``,
    and how many exported rows are on a list (``selected_ids``: called only when a log exists)."""
    path = log_path(name, root)
    if not path.is_file():
        return None
    data = path.read_bytes()
    entries = [json.loads(x) for x in data.decode("utf-8").splitlines() if x.strip()]
    sel = recipe.get("selection") or {}
    out: dict[str, Any] = {
        "path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "lines": len(entries),
        "last_at": entries[-1].get("at") if entries else None,
        "lists": sorted({e.get("list") for e in entries if e.get("list")}),
        "blocklisted_excluded": SUBSET in (sel.get("subsets_none") or []),
    }  # fmt: skip
    if selected_ids is not None:
        t = flagged(name, root)
        listed = np.unique(t.column("row_id").to_numpy()) if t.num_rows else np.array([], np.int64)
        out["blocklisted_rows_exported"] = int(np.isin(selected_ids(), listed).sum())
    return out
