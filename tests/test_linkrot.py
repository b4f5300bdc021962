"""Link rot against a loopback HTTP server the test starts: every planted outcome is found.

Nothing here touches another address: every fetched URL is http://127.0.0.1:<port>, and the
module sets TAILSCOPE_FETCH_ONLY_HOSTS=127.0.0.1 so the fetcher refuses any other host (the
planted redirect to example.invalid and the non-http URL are reported, never sent).
"""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from backend import linkrot
from backend.cli import main
from backend.ingest import build
from backend.selection import Selection
from backend.store import connect
from backend.subsets import resolve, select_ids
from backend.urlfetch import ONLY_HOSTS_ENV, Fetcher, classify

SLOW_S, TIMEOUT_S = 1.5, 0.4


def _png(rgb: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), rgb).save(buf, "PNG")
    return buf.getvalue()


class Server:
    """Routes path -> (status, headers, body, delay); HEAD gets the same without the body."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict, bytes, float]] = {}
        self.seen: list[tuple[str, str, str]] = []  # (method, path, user agent)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _answer(self, body: bool) -> None:
                server.seen.append((self.command, self.path, self.headers.get("User-Agent", "")))
                status, headers, data, delay = server.routes.get(self.path, (404, {}, b"", 0))
                if delay:
                    time.sleep(delay)
                if self.command == "HEAD" and headers.get("x-no-head"):
                    status, headers, data = 405, {}, b""
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        if not k.startswith("x-"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if body:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out
                    pass

            def do_GET(self):
                self._answer(True)

            def do_HEAD(self):
                self._answer(False)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module", autouse=True)
def loopback_only():
    """Every Fetcher made in this module refuses any host but 127.0.0.1 (the guard)."""
    mp = pytest.MonkeyPatch()
    mp.setenv(ONLY_HOSTS_ENV, "127.0.0.1")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


PLANTED = {  # image name -> the outcome the check must report
    "ok1": "alive", "ok2": "alive", "changed": "alive", "redirected": "alive",
    "gone": "http_error", "gone410": "http_error", "slow": "timeout",
    "html": "not_image", "redirect_out": "refused", "ftp": "not_http",
}  # fmt: skip


@pytest.fixture(scope="module")
def rot(server: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 10-row image-folder dataset whose URLs point at the loopback server's planted routes."""
    home = tmp_path_factory.mktemp("rot_ws")
    src = home / "src"
    src.mkdir()
    urls = {}
    for i, name in enumerate(PLANTED):
        data = _png((20 * i, 255 - 20 * i, 7 * i))
        (src / f"{name}.png").write_bytes(data)
        (src / f"{name}.txt").write_text(f"image {name}")
        path = f"/img/{name}.jpg"
        urls[name] = f"{server.base}{path}"
        png = {"Content-Type": "image/png"}
        route = {
            "ok1": (200, png, data, 0), "ok2": (200, png, data, 0),
            "changed": (200, png, _png((1, 2, 3)), 0),
            "redirected": (301, {"Location": "/moved/r.png"}, b"", 0),
            "gone": (404, {}, b"", 0), "gone410": (410, {}, b"", 0),
            "slow": (200, png, data, SLOW_S),
            "html": (200, {"Content-Type": "text/html"}, b"<html>parked</html>", 0),
            "redirect_out": (302, {"Location": "http://example.invalid/a.jpg"}, b"", 0),
        }.get(name)  # fmt: skip
        if route:
            server.routes[path] = route
        if name == "redirected":
            server.routes["/moved/r.png"] = (200, png, data, 0)
        if name == "ftp":
            urls[name] = "ftp://files.example.org/ftp.jpg"
        (src / f"{name}.json").write_text(json.dumps({"url": urls[name]}))
    build("rot", src, "folder", root=home, workers=1)
    return home, urls


def _by_name(table: pa.Table, home: Path) -> dict[str, dict]:
    con = connect("rot", home)
    names = dict(con.execute("SELECT row_id, caption FROM samples").fetchall())
    con.close()
    return {names[r["row_id"]].split()[-1]: r for r in table.to_pylist()}


def test_statuses_equal_the_planted_truth(rot, server: Server):
    home, _ = rot
    rep = linkrot.run("rot", sample=50, seed=0, concurrency=4, per_host=0,
                      timeout=TIMEOUT_S, root=home)  # fmt: skip
    table = pq.read_table(home / "rot" / rep["table"])
    got = _by_name(table, home)
    assert {n: r["outcome"] for n, r in got.items()} == PLANTED
    assert [got[n]["status"] for n in ("gone", "gone410", "html")] == [404, 410, 200]
    assert got["redirected"]["redirects"] == 1 and got["redirected"]["final_url"].endswith("/r.png")
    assert got["redirect_out"]["final_url"] == "http://example.invalid/a.jpg"
    # bytes changed: only the row whose server copy differs from the stored sha256
    assert {n for n, r in got.items() if r["bytes_changed"]} == {"changed"}
    assert {n for n, r in got.items() if r["bytes_changed"] is False} == {"ok1", "ok2",
                                                                           "redirected"}
    # the report: 8 fetched (ftp and the off-host redirect were not), 4 alive
    assert (rep["sampled"], rep["checked"], rep["alive"]) == (10, 8, 4)
    assert rep["not_fetched"] == {"not_http": 1, "refused": 1}
    lo, hi = rep["ci95"]
    assert lo < 0.5 < hi and (lo, hi) == pytest.approx(linkrot.wilson(4, 8))
    # yield: 4/8 of 127.0.0.1's 9 rows + 0 of the ftp domain's 1 row (non-http: dead)
    assert rep["expected_yield"]["share"] == pytest.approx(4.5 / 10)
    assert rep["seconds"] > 0 and rep["started_at"] <= rep["finished_at"]
    # only the loopback server was asked, always with the Tailscope user agent
    assert {ua.split("/")[0] for _, _, ua in server.seen} == {"Tailscope"}
    # joined as columns: "keep only alive" is a filter
    sel = resolve("rot", Selection(values={"link_alive": [True]}), home)
    alive_ids = set(select_ids("rot", sel, home).tolist())
    assert alive_ids == {r["row_id"] for r in table.to_pylist() if r["alive"]}
    assert linkrot.latest("rot", home)["run"] == rep["run"]
    # an export of "only alive" names the run its link_* columns came from
    from backend.export.run import export

    out = export("rot", selection=Selection(values={"link_alive": [True]}), fmt="parquet",
                 out="alive", root=home)  # fmt: skip
    manifest = json.loads(out.manifest.read_text())
    assert out.count == 4 and manifest["link_rot"]["run"] == rep["run"]
    assert "link_rot" not in json.loads(export("rot", fmt="parquet", out="all", root=home)
                                        .manifest.read_text())  # fmt: skip


def test_head_falls_back_to_get_and_html_labelled_image_is_not_an_image(server: Server):
    jpg = b"\xff\xd8\xff\xe0" + bytes(200)
    server.routes["/nohead.jpg"] = (200, {"Content-Type": "image/jpeg", "x-no-head": "1"},
                                    jpg, 0)  # fmt: skip
    server.routes["/liar.jpg"] = (200, {"Content-Type": "image/jpeg"}, b"<!doctype html>", 0)
    f = Fetcher(timeout=2, per_host=0)
    got = f.check(f"{server.base}/nohead.jpg")
    assert (got.outcome, got.method, got.status) == ("alive", "GET", 200)
    head = f.check(f"{server.base}/liar.jpg")  # HEAD trusts the type …
    body = f.check(f"{server.base}/liar.jpg", want_sha256=True)  # … the body does not lie
    assert (head.outcome, body.outcome) == ("alive", "not_image")


def test_guard_refuses_other_hosts_and_rate_limit_spaces_requests(server: Server):
    f = Fetcher(timeout=1, per_host=0)
    for url in ("http://example.invalid/x.jpg", "https://10.0.0.1/a.png"):
        assert f.check(url).outcome == "refused"
    for url in ("http://[::1/x.jpg", "http://127.0.0.1:99999/x", "http:///x.jpg", "x.jpg"):
        assert f.check(url).outcome == "not_http", url  # malformed: reported, never sent
    before = len(server.seen)
    slow = Fetcher(timeout=1, per_host=10.0)  # 10 per second: 4 requests span >= 0.3 s
    t0 = time.monotonic()
    outs = [slow.check(f"{server.base}/img/ok1.jpg").outcome for _ in range(4)]
    assert outs == ["alive"] * 4 and time.monotonic() - t0 >= 0.29
    assert len(server.seen) == before + 4


def test_dns_failure_is_classified_without_a_lookup():
    from urllib3.exceptions import NameResolutionError

    assert classify(NameResolutionError("nowhere.invalid", None, OSError("no name"))) == \
        "dns_failure"  # fmt: skip
    assert classify(TimeoutError()) == "timeout"


def test_sample_is_stratified_by_domain_and_seeded(workspace: Path):
    urls = ([f"https://a.example.com/{i}.jpg" for i in range(30)]
            + [f"https://img.b.example.org/{i}.jpg" for i in range(20)]
            + [f"https://c.example.net/{i}.jpg" for i in range(10)] + [None] * 3)  # fmt: skip
    src = workspace / "urls.parquet"
    pq.write_table(pa.table({"url": urls, "caption": [f"c{i}" for i in range(len(urls))]}), src)
    build("pool", src, "parquet", root=workspace, workers=1)
    rows, counts, no_url = linkrot.sample_rows("pool", Selection(), 12, 7, workspace)
    assert counts == {"example.com": 30, "example.org": 20, "example.net": 10} and no_url == 3
    doms = rows.column("domain").to_pylist()
    assert {d: doms.count(d) for d in counts} == {"example.com": 6, "example.org": 4,
                                                  "example.net": 2}
    # exactly each domain's rows of smallest hash(row_id, seed) (the oracle sorts them all)
    con = connect("pool", workspace)
    want = con.execute(
        "SELECT row_id FROM samples WHERE url IS NOT NULL QUALIFY row_number() OVER (PARTITION "
        "BY domain ORDER BY hash(row_id, 7::BIGINT), row_id) <= CASE domain WHEN "
        "'example.com' THEN 6 WHEN 'example.org' THEN 4 ELSE 2 END ORDER BY row_id").fetchall()
    assert rows.column("row_id").to_pylist() == [r[0] for r in want]
    # a cut that leaves every domain short (counts overstated 1000x) is redrawn without it
    from backend.bounded import wrap

    quota = {"example.com": 6, "example.org": 4, "example.net": 2}
    short = linkrot._draw(wrap(con), quota, {d: c * 1000 for d, c in counts.items()},
                          "domain", "NULL::VARCHAR", "url IS NOT NULL", [], 7)  # fmt: skip
    con.close()
    assert short.column("row_id").to_pylist() == [r[0] for r in want]
    again, _, _ = linkrot.sample_rows("pool", Selection(), 12, 7, workspace)
    other, _, _ = linkrot.sample_rows("pool", Selection(), 12, 8, workspace)
    assert again.column("row_id").to_pylist() == rows.column("row_id").to_pylist()
    assert other.column("row_id").to_pylist() != rows.column("row_id").to_pylist()
    assert linkrot.allocate({"a": 5, "b": 5, "c": 1}, 3) == {"a": 2, "b": 1}
    # every URL of this pool is off-host: the audit runs, fetches nothing, says so
    rep = linkrot.run("pool", sample=5, root=workspace, only_hosts={"127.0.0.1"}, join=False)
    assert (rep["checked"], rep["not_fetched"]["refused"], rep["alive_share"]) == (0, 5, None)
    assert rep["expected_yield"] is None and rep["domains"] == []


def test_wilson_interval_matches_the_formula():
    lo, hi = linkrot.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = linkrot.wilson(45, 50)
    assert (lo, hi) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    assert np.isclose(sum(linkrot.wilson(5, 10)), 1.0)


def test_cli_linkrot(rot, capsys):
    home, _ = rot
    mp = pytest.MonkeyPatch()
    mp.setenv("TAILSCOPE_HOME", str(home))
    try:
        assert main(["linkrot", "rot", "--sample", "3", "--seed", "1", "--timeout", "0.4",
                     "--per-host", "0", "--json"]) == 0  # fmt: skip
        rep = json.loads(capsys.readouterr().out)
        assert rep["sampled"] == 3 and rep["params"]["seed"] == 1
        assert main(["linkrot", "nosuch"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "python -m backend build nosuch" in err
        for bad, why in ((["--sample", "0"], "--sample must be"),
                         (["--concurrency", "0"], "--concurrency >= 1"),
                         (["--subset", "nope"], "no subset named 'nope'")):  # fmt: skip
            assert main(["linkrot", "rot", *bad]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and why in err, err
    finally:
        mp.undo()


def test_safety_page_shows_the_run_and_keeps_only_alive_rows(rot, monkeypatch):
    from streamlit.testing.v1 import AppTest

    home, _ = rot
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    rep = linkrot.latest("rot", home) or linkrot.run(
        "rot", sample=50, per_host=0, timeout=TIMEOUT_S, root=home)  # fmt: skip
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages/5_Safety.py"),
                           default_timeout=120)  # fmt: skip
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    alive = next(m for m in at.metric if m.label == "Alive")
    assert alive.value == f"{rep['alive_share']:.1%}"
    next(b for b in at.button if b.label == "Keep only alive rows").click()
    at.run()
    assert at.session_state["ts.selections"]["rot"].values == {"link_alive": [True]}
    # the Blocklists tab: a list applied to this dataset; its button excludes the listed rows
    from backend import blocklists

    con = connect("rot", home)
    sha = con.execute("SELECT sha256 FROM samples WHERE caption = 'image ok1'").fetchall()[0][0]
    con.close()
    (home / "list.txt").write_text(sha + "\n")
    blocklists.add("rot", home / "list.txt", "sha256", root=home)
    at.run()
    next(b for b in at.button if b.label == "Exclude listed rows").click()
    at.run()
    sel = at.session_state["ts.selections"]["rot"]
    assert sel.subsets_none == ["blocklisted"] and sel.values == {"link_alive": [True]}
    assert not at.exception
    # a rerun that changed nothing reads no rows (the listed-rows count is cached)
    from backend import bounded

    seen: list[str] = []
    run = bounded.Bounded.execute

    def recorded(self, query, parameters=None):
        seen.append(str(query))
        return run(self, query, parameters)

    monkeypatch.setattr(bounded.Bounded, "execute", recorded)
    at.run()
    assert not at.exception and not [q for q in seen if "FROM samples" in q], seen
