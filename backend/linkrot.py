"""Link rot: how much of a Selection can still be downloaded, overall and per domain.

A LAION-style pool is a list of URLs, and images vanish every month, unevenly by site. This
samples N URLs of the Selection stratified by registered domain (proportional allocation, seeded,
so a rerun checks the same rows), checks each with :class:`backend.urlfetch.Fetcher` (bounded
concurrency, per-host rate, timeouts, HEAD with GET fallback), and reports the alive share with
Wilson 95% intervals overall and per domain, the expected re-download yield of the whole
Selection, and the worst domains. Each run is kept beside the dataset as
``linkrot/<stamp>.parquet`` (one row per URL, joinable by ``row_id``) and ``<stamp>.json``
(the report, with when it ran and how long it took); the newest run is also joined into the
store as ``link_*`` columns, so "keep only alive" is an ordinary filter (``link_alive``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from backend import paths
from backend.manifest import now, write_json_atomic
from backend.selection import Selection
from backend.urlfetch import CONNECTION, NOT_FETCHED, Checked, Fetcher

MAX_SAMPLE = 1_000_000
Z95 = 1.959964
WORST_MIN_CHECKED = 3  # a domain needs this many checked URLs to be ranked among the worst
NO_DOMAIN = "(no host)"
UINT64_MAX = 2**64 - 1
HOST_SQL = ("nullif(split_part(lower(split_part(split_part(split_part(split_part(split_part("
            "url, '://', 2), '/', 1), '?', 1), '#', 1), '@', -1)), ':', 1), '')")  # fmt: skip
RESULT_SCHEMA = pa.schema([
    ("row_id", pa.int64()), ("url", pa.string()), ("domain", pa.string()),
    ("outcome", pa.string()), ("alive", pa.bool_()), ("status", pa.int32()),
    ("not_image", pa.bool_()), ("bytes_changed", pa.bool_()), ("content_type", pa.string()),
    ("final_url", pa.string()), ("redirects", pa.int32()), ("method", pa.string()),
    ("seconds", pa.float64()), ("detail", pa.string()), ("checked_at", pa.string()),
])  # fmt: skip
JOINED = {"link_alive": "alive", "link_status": "status", "link_outcome": "outcome",
          "link_changed": "bytes_changed", "link_checked_at": "checked_at"}  # fmt: skip
Progress = Callable[[int, int], None]


def folder(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / "linkrot"


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials (sane at 0 and n, unlike p ± z·se)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z / den * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def allocate(counts: dict[str, int], n: int) -> dict[str, int]:
    """Proportional allocation of ``n`` draws over domains by their row counts (largest
    remainder, ties by name; never more than a domain holds)."""
    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    exact = {d: n * c / total for d, c in counts.items()}
    out = {d: min(counts[d], int(v)) for d, v in exact.items()}
    left = n - sum(out.values())
    for d in sorted(exact, key=lambda d: (-(exact[d] - int(exact[d])), d)):
        if left <= 0:
            break
        if out[d] < counts[d]:
            out[d] += 1
            left -= 1
    return {d: k for d, k in out.items() if k}


def sample_rows(
    name: str, sel: Selection, n: int, seed: int, root: Path | None = None
) -> tuple[pa.Table, dict[str, int], int]:
    """(sampled rows: row_id, url, domain, sha256; rows per domain in the Selection; rows of
    the Selection without a URL). The same seed draws the same rows: per domain, the k rows
    with the smallest ``hash(row_id, seed)``."""
    from backend import bounded
    from backend.browse import columns
    from backend.store import connect
    from backend.subsets import resolve

    if not 1 <= n <= MAX_SAMPLE:
        raise ValueError(f"--sample must be 1..{MAX_SAMPLE:,}, got {n}")
    sel = resolve(name, sel, root)
    con = bounded.wrap(connect(name, root))
    try:
        cols = columns(con)
        if "url" not in cols:
            raise ValueError(f"{name!r} has no url column: link rot needs the rows' URLs")
        where, params = sel.where(cols)
        # no domain column (a store built before domains were derived): stratify by host
        dom = f"coalesce({'domain' if 'domain' in cols else HOST_SQL}, '{NO_DOMAIN}')"
        has_url = "url IS NOT NULL AND trim(url) <> ''"
        got = con.execute(f"SELECT {dom} AS d, count(*) FROM samples WHERE ({where}) AND "
                          f"{has_url} GROUP BY 1", params).fetchall()  # fmt: skip
        counts = {str(d): int(c) for d, c in got}
        no_url = con.execute(f"SELECT count(*) FROM samples WHERE ({where}) AND NOT "
                             f"({has_url})", params).fetchall()[0][0]  # fmt: skip
        quota = allocate(counts, n)
        sha = "sha256" if "sha256" in cols else "NULL::VARCHAR"
        rows = _draw(con, quota, counts, dom, sha, f"({where}) AND {has_url}", params, seed)
    finally:
        con.close()
    return rows, counts, int(no_url)


def _draw(con, quota: dict[str, int], counts: dict[str, int], dom: str, sha: str, where: str,
          params: list, seed: int) -> pa.Table:  # fmt: skip
    """Each domain's ``k`` rows of smallest hash. Only rows whose hash is below a per-domain
    cut (k/count of the hash range, plus a margin of 4 standard deviations) are sorted, so the
    draw does not sort the whole Selection; a domain the cut left short is drawn again
    without it (rare), so the result is exactly the k smallest either way."""
    full: set[str] = set()
    while True:
        cut = [UINT64_MAX if d in full else
               min(UINT64_MAX, int((k + 4 * math.sqrt(k) + 8) / counts[d] * UINT64_MAX))
               for d, k in quota.items()]  # fmt: skip
        con.register("quota", pa.table({"domain": list(quota), "k": list(quota.values()),
                                        "cut": pa.array(cut, pa.uint64())}))  # fmt: skip
        with con.deadline():
            rows = con.sql(
                f"SELECT s.row_id, s.url, s.domain, s.sha256 FROM (SELECT row_id, url, "
                f"{dom} AS domain, {sha} AS sha256, hash(row_id, ?::BIGINT) AS h FROM samples "
                f"WHERE {where}) s JOIN quota q USING (domain) WHERE s.h <= q.cut "
                "QUALIFY row_number() OVER (PARTITION BY s.domain ORDER BY s.h, s.row_id) "
                "<= q.k ORDER BY s.row_id", params=[int(seed), *params],
            ).to_arrow_table()  # fmt: skip
        got: dict[str, int] = {}
        for d in rows.column("domain").to_pylist():
            got[d] = got.get(d, 0) + 1
        short = {d for d, k in quota.items() if got.get(d, 0) < k} - full
        if not short:
            return rows
        full |= short


def _interleaved(rows: list[dict]) -> list[dict]:
    """Rows ordered round-robin over domains, so the per-host rate spreads the waiting."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["domain"], []).append(r)
    queues = sorted(by.values(), key=lambda q: -len(q))
    out: list[dict] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def check_rows(
    rows: list[dict], fetcher: Fetcher, concurrency: int, progress: Progress | None = None
) -> list[tuple[dict, Checked, str]]:
    """Each row checked (at most ``concurrency`` at once): (row, outcome, when)."""
    order = _interleaved(rows)
    done = 0

    def one(r: dict) -> tuple[dict, Checked, str]:
        try:
            got = fetcher.check(r["url"], want_sha256=bool(r.get("sha256")))
        except Exception as e:  # noqa: BLE001 - one odd URL is an outcome, not a lost run
            got = Checked(r["url"], CONNECTION, detail=f"{type(e).__name__}: {e}"[:200])
        return r, got, now()

    out = []
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="linkrot") as pool:
        for res in pool.map(one, order):
            out.append(res)
            done += 1
            if progress:
                progress(done, len(order))
    return out


def result_table(checked: list[tuple[dict, Checked, str]]) -> pa.Table:
    """One row per URL, sorted by row id, in :data:`RESULT_SCHEMA`."""
    recs = []
    for r, c, at in sorted(checked, key=lambda t: t[0]["row_id"]):
        stored = r.get("sha256")
        changed = (c.sha256 != stored.lower()) if (stored and c.alive and c.sha256) else None
        recs.append({"row_id": r["row_id"], "url": r["url"], "domain": r["domain"],
                     "outcome": c.outcome, "alive": c.alive, "status": c.status,
                     "not_image": c.outcome == "not_image", "bytes_changed": changed,
                     "content_type": c.content_type, "final_url": c.final_url,
                     "redirects": c.redirects, "method": c.method, "seconds": c.seconds,
                     "detail": c.detail, "checked_at": at})  # fmt: skip
    return pa.Table.from_pylist(recs, schema=RESULT_SCHEMA)


def report(table: pa.Table, counts: dict[str, int], no_url: int = 0) -> dict[str, Any]:
    """Alive shares (Wilson 95%) overall and per domain, expected yield, worst domains."""
    rows = table.to_pylist()
    fetched = [r for r in rows if r["outcome"] not in NOT_FETCHED]
    alive = sum(r["alive"] for r in fetched)
    lo, hi = wilson(alive, len(fetched))
    per: dict[str, list[int]] = {}
    for r in fetched:
        per.setdefault(r["domain"], [0, 0])[0] += 1
        per[r["domain"]][1] += r["alive"]
    domains = []
    for d, (n, k) in per.items():
        dlo, dhi = wilson(k, n)
        domains.append({"domain": d, "rows": counts.get(d, 0), "checked": n, "alive": k,
                        "share": k / n, "lo": dlo, "hi": dhi})  # fmt: skip
    domains.sort(key=lambda x: (-x["rows"], x["domain"]))
    share = alive / len(fetched) if fetched else None
    total = sum(counts.values())
    expected = _expected(rows, counts, share)
    outcomes: dict[str, int] = {}
    for r in rows:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    compared = [r for r in rows if r["bytes_changed"] is not None]
    worst = sorted((x for x in domains if x["checked"] >= WORST_MIN_CHECKED),
                   key=lambda x: (x["hi"], x["share"], x["domain"]))[:10]  # fmt: skip
    return {
        "sampled": len(rows), "checked": len(fetched), "alive": alive, "alive_share": share,
        "ci95": [lo, hi] if fetched else None,
        "not_fetched": {k: outcomes.get(k, 0) for k in NOT_FETCHED},
        "outcomes": dict(sorted(outcomes.items())),
        "bytes_compared": len(compared),
        "bytes_changed": sum(bool(r["bytes_changed"]) for r in compared),
        "rows_with_url": total, "rows_without_url": no_url,
        "expected_yield": None if expected is None else {
            "rows": round(expected), "of": total, "share": expected / total if total else None,
            "lo": round(total * lo), "hi": round(total * hi)},
        "domains": domains, "worst_domains": worst,
        "method": "sample stratified by registered domain (proportional, largest remainder, "
                  "seeded); alive = 2xx after redirects with an image body/type; intervals: "
                  "Wilson 95%; yield = sum over domains of rows x the domain's alive share "
                  "(non-http URLs count as dead; domains not sampled: the overall share), "
                  "its interval = overall interval x rows",
    }  # fmt: skip


def _expected(rows: list[dict], counts: dict[str, int], share: float | None) -> float | None:
    """Rows of the Selection a re-download would get: each domain's rows x its sampled yield
    (alive over fetched + not-http: a non-http URL downloads nothing); a domain with no such
    sample (only refused URLs, or none drawn) gets the overall alive share."""
    if share is None:
        return None
    per: dict[str, list[int]] = {}
    for r in rows:
        if r["outcome"] != "refused":
            got = per.setdefault(r["domain"], [0, 0])
            got[0] += 1
            got[1] += r["alive"]
    return sum(c * (per[d][1] / per[d][0] if d in per else share) for d, c in counts.items())


def run(
    name: str, selection: Selection | None = None, sample: int = 1000, seed: int = 0, *,
    concurrency: int = 16, per_host: float = 2.0, timeout: float = 10.0,
    root: Path | None = None, progress: Progress | None = None,
    only_hosts: set[str] | None = None, join: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Sample, check and report link rot of ``selection`` (all rows when None); keep the
    per-URL table and the report beside the dataset and (``join``) the ``link_*`` columns."""
    sel = selection or Selection()
    fetcher = Fetcher(timeout, per_host, concurrency, only_hosts=only_hosts)
    t0, started = time.perf_counter(), now()
    rows, counts, no_url = sample_rows(name, sel, sample, seed, root)
    checked = check_rows(rows.to_pylist(), fetcher, concurrency, progress)
    table = result_table(checked)
    rep = report(table, counts, no_url)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}"
    out = folder(name, root)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{stamp}.parquet.tmp"
    pq.write_table(table, tmp)
    tmp.replace(out / f"{stamp}.parquet")
    rep.update({
        "dataset": name, "run": stamp, "table": f"linkrot/{stamp}.parquet",
        "selection": sel.to_dict(), "started_at": started, "finished_at": now(),
        "seconds": round(time.perf_counter() - t0, 3),
        "params": {"sample": sample, "seed": seed, "concurrency": concurrency,
                   "per_host": per_host, "timeout": timeout,
                   "user_agent": fetcher.http.headers.get("User-Agent")},
    })  # fmt: skip
    if join and table.num_rows:
        from backend.columns import add_columns

        joined = pa.table({"row_id": table["row_id"],
                           **{c: table[src] for c, src in JOINED.items()}})  # fmt: skip
        rep["columns"] = add_columns(name, joined, root)
    write_json_atomic(out / f"{stamp}.json", rep)
    return rep


def runs(name: str, root: Path | None = None) -> list[str]:
    """The stamps of the dataset's link-rot runs, oldest first."""
    base = folder(name, root)
    return sorted(p.stem for p in base.glob("*.json")) if base.is_dir() else []


def latest(name: str, root: Path | None = None) -> dict[str, Any] | None:
    """The newest run's report, or None when link rot was never checked."""
    stamps = runs(name, root)
    if not stamps:
        return None
    return json.loads((folder(name, root) / f"{stamps[-1]}.json").read_text(encoding="utf-8"))


def load_table(name: str, stamp: str, root: Path | None = None) -> pa.Table:
    return pq.read_table(folder(name, root) / f"{stamp}.parquet")


def manifest_entry(name: str, root: Path | None, recipe: dict[str, Any]) -> dict[str, Any] | None:
    """What an export manifest records when its Selection filters or sorts on a ``link_*``
    column: which link-rot run those columns came from (None when it does not use them)."""
    if "link_" not in json.dumps(recipe.get("selection") or {}):
        return None
    rep = latest(name, root)
    if rep is None:
        return None
    return {"run": rep["run"], "table": rep["table"], "finished_at": rep["finished_at"],
            "checked": rep["checked"], "alive_share": rep["alive_share"],
            "selection_checked": rep["selection"]}  # fmt: skip
