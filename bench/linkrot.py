"""Link-rot fetch throughput against a loopback server with planted latency.

    .venv/bin/python bench/linkrot.py [--urls 400] [--latency-ms 50] [--concurrency 32]
    .venv/bin/python bench/linkrot.py --dataset NAME [--sample 10000]   # the sampling query

A real audit waits on the network, not the CPU: throughput is set by how many requests are in
flight. The server (127.0.0.1 only) answers every request after ``--latency-ms``; the bench
checks the same URLs with one connection (the baseline, measured in the same run) and with
``--concurrency``, and prints URLs/s and the ratio; then the same with a per-host rate limit to
show it holds (requests/s to the one host never above the limit).

With ``--dataset`` it times the other part that grows with the pool, the stratified draw
(:func:`backend.linkrot.sample_rows`: each domain's rows under a hash cut, then sorted),
against the plain query that sorts every row of each domain, on the same dataset in the same
run (e.g. ``python -m backend synth big --rows 2000000`` first); both must give the same rows.
"""

from __future__ import annotations

import argparse
import http.server
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.linkrot import check_rows  # noqa: E402
from backend.urlfetch import Fetcher  # noqa: E402

JPEG = b"\xff\xd8\xff\xe0" + bytes(2000)


def serve(latency: float) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_HEAD(self):
            time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(JPEG)))
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def timed(rows: list[dict], concurrency: int, per_host: float) -> tuple[float, int]:
    f = Fetcher(timeout=10, per_host=per_host, concurrency=concurrency, only_hosts={"127.0.0.1"})
    t0 = time.perf_counter()
    got = check_rows(rows, f, concurrency)
    return time.perf_counter() - t0, sum(c.alive for _, c, _ in got)


def sampling(name: str, n: int) -> int:
    from backend import linkrot
    from backend.bounded import trust_local_user, wrap
    from backend.store import connect

    with trust_local_user(True):
        con = wrap(connect(name))
        cols = {r[0] for r in con.execute("DESCRIBE samples").fetchall()}
        dom = f"coalesce({'domain' if 'domain' in cols else linkrot.HOST_SQL}, "\
              f"'{linkrot.NO_DOMAIN}')"  # fmt: skip
        has_url = "url IS NOT NULL AND trim(url) <> ''"
        t0 = time.perf_counter()
        counts = dict(con.execute(f"SELECT {dom}, count(*) FROM samples WHERE {has_url} "
                                  "GROUP BY 1").fetchall())  # fmt: skip
        t_counts = time.perf_counter() - t0
        quota = linkrot.allocate(counts, n)
        t0 = time.perf_counter()
        ours = linkrot._draw(con, quota, counts, dom, "NULL::VARCHAR", has_url, [], 0)
        t_cut = time.perf_counter() - t0
        t0 = time.perf_counter()
        base = con.sql(
            f"SELECT s.row_id FROM (SELECT row_id, {dom} AS domain FROM samples WHERE "
            f"{has_url}) s JOIN quota q USING (domain) QUALIFY row_number() OVER (PARTITION BY "
            "s.domain ORDER BY hash(s.row_id, 0::BIGINT), s.row_id) <= q.k ORDER BY s.row_id"
        ).fetchall()  # the quota table _draw registered, with its k  # fmt: skip
        t_full = time.perf_counter() - t0
        con.close()
    same = [r[0] for r in base] == ours.column("row_id").to_pylist()
    print(f"{name}: {sum(counts.values()):,} rows with a URL, {len(counts):,} domains, "
          f"sample {n:,}; counting rows per domain: {t_counts:.2f} s (both need it)")
    print(f"draw by sorting every row of each domain (baseline): {t_full:6.2f} s")
    print(f"draw by hash cut, then sorting the candidates:       {t_cut:6.2f} s  -> "
          f"{t_full / t_cut:.1f}x faster; same rows: {same}")
    return 0 if same else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--urls", type=int, default=400)
    ap.add_argument("--latency-ms", type=float, default=50)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--per-host", type=float, default=20.0)
    ap.add_argument("--dataset", help="time the stratified draw on this dataset instead")
    ap.add_argument("--sample", type=int, default=10_000)
    a = ap.parse_args()
    if a.dataset:
        return sampling(a.dataset, a.sample)
    httpd = serve(a.latency_ms / 1000)
    base = f"http://127.0.0.1:{httpd.server_port}"
    rows = [{"row_id": i, "url": f"{base}/{i}.jpg", "domain": "127.0.0.1"}
            for i in range(a.urls)]  # fmt: skip
    n_base = max(20, a.urls // 10)  # the serial baseline on a tenth (it is the slow one)
    t1, ok1 = timed(rows[:n_base], 1, 0)
    tc, okc = timed(rows, a.concurrency, 0)
    n_rate = min(a.urls, int(a.per_host * 3))
    tr, okr = timed(rows[:n_rate], a.concurrency, a.per_host)
    httpd.shutdown()
    r1, rc = n_base / t1, a.urls / tc
    print(f"latency {a.latency_ms:g} ms per request, 127.0.0.1 only")
    print(f"concurrency 1 : {n_base:>5} URLs in {t1:6.2f} s = {r1:7.1f} URLs/s ({ok1} alive)")
    print(f"concurrency {a.concurrency:<2}: {a.urls:>5} URLs in {tc:6.2f} s = {rc:7.1f} URLs/s "
          f"({okc} alive)  -> {rc / r1:.1f}x the baseline")  # fmt: skip
    print(f"per-host {a.per_host:g}/s, concurrency {a.concurrency}: {n_rate} URLs in {tr:.2f} s "
          f"= {n_rate / tr:.1f} requests/s to the host ({okr} alive; limit {a.per_host:g}/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
