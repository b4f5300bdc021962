"""Checking whether image URLs still answer: bounded, polite, and classified.

A link-rot audit asks thousands of hosts for one image each. It has to stay polite (one
identifying user agent, a per-host request rate, a bounded number of connections at once),
bounded (a timeout per request and a cap on bytes read, so a slow or endless response cannot
stall the audit), and honest about *why* a URL failed: a 404, a name that no longer resolves,
a timeout and a parked domain serving an HTML page under ``.jpg`` mean different things for a
re-download. urllib3 (already a dependency of requests) does the HTTP; redirects are followed
here, one hop at a time, so every hop passes the same host guard and rate limit.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3 import exceptions as ux

import backend

USER_AGENT = (f"Tailscope/{backend.__version__} link-rot audit "
              "(+https://github.com/tailscope; one request per URL)")  # fmt: skip
ONLY_HOSTS_ENV = "TAILSCOPE_FETCH_ONLY_HOSTS"  # comma-separated: refuse every other host
REDIRECTS = (301, 302, 303, 307, 308)
HEAD_REFUSED = (400, 403, 405, 406, 501)  # servers that answer HEAD badly: retry with GET
MAX_REDIRECTS = 5
MAX_BYTES = 32 * 1024 * 1024

# outcomes, one per URL
ALIVE, HTTP_ERROR, DNS, TIMEOUT, NOT_IMAGE, CONNECTION = (
    "alive", "http_error", "dns_failure", "timeout", "not_image", "connection_error")  # fmt: skip
NOT_HTTP, REFUSED, TOO_MANY_REDIRECTS = "not_http", "refused", "too_many_redirects"
NOT_FETCHED = (NOT_HTTP, REFUSED)  # never sent: not counted in alive shares


@dataclass
class Checked:
    """What one URL answered: the outcome, and the facts it rests on."""

    url: str
    outcome: str
    status: int | None = None
    content_type: str | None = None
    final_url: str | None = None
    redirects: int = 0
    method: str | None = None
    sha256: str | None = None  # of the body, when it was downloaded
    seconds: float = 0.0
    detail: str = ""

    @property
    def alive(self) -> bool:
        return self.outcome == ALIVE

    def to_dict(self) -> dict:
        return {**asdict(self), "alive": self.alive}


def sniff_image(head: bytes) -> bool:
    """Whether the first bytes are those of a common image format (a server may label an
    HTML error page ``image/jpeg``)."""
    return (head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a",
                             b"BM", b"II*\x00", b"MM\x00*", b"\x00\x00\x01\x00"))
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or head[4:12] in (b"ftypavif", b"ftypheic", b"ftypmif1"))  # fmt: skip


def only_hosts_from_env() -> frozenset[str] | None:
    raw = os.environ.get(ONLY_HOSTS_ENV, "").strip()
    return frozenset(h.strip().lower() for h in raw.split(",") if h.strip()) if raw else None


class HostRate:
    """At most ``per_second`` requests to one host, across all threads: each request reserves
    the host's next free slot and sleeps until it."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(host, 0.0))
            self._next[host] = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class Fetcher:
    """HEAD each URL (GET when the server refuses HEAD, when the type is unknown, or when the
    stored sha256 is to be compared), follow redirects by hand, and classify the result."""

    def __init__(
        self, timeout: float = 10.0, per_host: float = 2.0, concurrency: int = 16,
        only_hosts: frozenset[str] | set[str] | None = None, max_bytes: int = MAX_BYTES,
    ) -> None:  # fmt: skip
        if timeout <= 0 or concurrency < 1 or per_host < 0:
            raise ValueError("--timeout must be > 0, --concurrency >= 1, --per-host >= 0")
        self.timeout, self.max_bytes = float(timeout), int(max_bytes)
        self.rate = HostRate(per_host)
        env = only_hosts_from_env()
        self.only_hosts = (frozenset(h.lower() for h in only_hosts) if only_hosts is not None
                           else env)  # fmt: skip
        self.http = urllib3.PoolManager(
            num_pools=max(10, concurrency * 2), maxsize=concurrency, retries=False,
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5"},
        )  # fmt: skip

    def check(self, url: str, want_sha256: bool = False) -> Checked:
        """The outcome of ``url``; ``want_sha256`` downloads the body (up to the byte cap)."""
        t0 = time.monotonic()
        out = self._check(url, want_sha256)
        out.seconds = round(time.monotonic() - t0, 4)
        return out

    def _refusal(self, url: str) -> Checked | None:
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018 - raises on a malformed port or IPv6 host
        except ValueError as e:
            return Checked(url, NOT_HTTP, detail=f"malformed URL ({e}): not fetched")
        if parts.scheme.lower() not in ("http", "https"):
            return Checked(url, NOT_HTTP, detail=f"not an http(s) URL ({parts.scheme or 'no'} "
                           "scheme): not fetched")  # fmt: skip
        if not parts.hostname:
            return Checked(url, NOT_HTTP, detail="no host in the URL: not fetched")
        if self.only_hosts is not None and parts.hostname.lower() not in self.only_hosts:
            return Checked(url, REFUSED, detail=f"host {parts.hostname} is not in the allowed "
                           f"hosts ({', '.join(sorted(self.only_hosts))}): not fetched")
        return None

    def _check(self, url: str, want_sha256: bool) -> Checked:
        refused = self._refusal(url)
        if refused:
            return refused
        current, hops = url.strip(), 0
        method = "GET" if want_sha256 else "HEAD"
        while True:
            refused = self._refusal(current)
            if refused:  # a redirect to another scheme or host: reported, never followed
                refused.url, refused.final_url, refused.redirects = url, current, hops
                return refused
            try:
                res = self._request(method, current)
            except Exception as e:  # noqa: BLE001 - every network failure becomes an outcome
                return Checked(url, classify(e), final_url=current, redirects=hops,
                               method=method, detail=_short(e))  # fmt: skip
            try:
                if res.status in REDIRECTS and res.headers.get("Location"):
                    hops += 1
                    if hops > MAX_REDIRECTS:
                        return Checked(url, TOO_MANY_REDIRECTS, res.status, final_url=current,
                                       redirects=hops - 1, method=method,
                                       detail=f"more than {MAX_REDIRECTS} redirects")
                    current = urljoin(current, res.headers["Location"])
                    continue
                ctype = (res.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if method == "HEAD" and (res.status in HEAD_REFUSED or
                                         (200 <= res.status < 300 and not ctype)):  # fmt: skip
                    method = "GET"  # the fallback: ask again for the body itself
                    continue
                return self._finish(url, current, hops, method, res, ctype)
            finally:
                res.release_conn()

    def _request(self, method: str, url: str) -> urllib3.BaseHTTPResponse:
        self.rate.wait(urlsplit(url).hostname or "")
        return self.http.request(method, url, redirect=False, preload_content=False)

    def _finish(self, url: str, final: str, hops: int, method: str,
                res: urllib3.BaseHTTPResponse, ctype: str) -> Checked:  # fmt: skip
        out = Checked(url, HTTP_ERROR, res.status, ctype or None, final, hops, method)
        if not 200 <= res.status < 300:
            out.detail = f"HTTP {res.status}"
            return out
        if method == "GET":
            try:
                body, complete = self._read(res)
            except Exception as e:  # noqa: BLE001 - a body that stalls or breaks midway
                out.outcome, out.detail = classify(e), _short(e)
                return out
            if not sniff_image(body[:16]):
                out.outcome, out.detail = NOT_IMAGE, f"the body is not an image ({ctype or '?'})"
                return out
            out.sha256 = hashlib.sha256(body).hexdigest() if complete else None
        elif not ctype.startswith("image/"):
            out.outcome, out.detail = NOT_IMAGE, f"Content-Type {ctype or 'missing'}"
            return out
        out.outcome = ALIVE
        return out

    def _read(self, res: urllib3.BaseHTTPResponse) -> tuple[bytes, bool]:
        """The body, up to the byte cap and the timeout in total (a server trickling bytes
        forever is a timeout, not a hang); ``complete`` is False when the cap cut it."""
        deadline, chunks, size = time.monotonic() + self.timeout, [], 0
        for chunk in res.stream(64 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                return b"".join(chunks), False
            if time.monotonic() > deadline:
                raise TimeoutError(f"the body took over {self.timeout:g} s")
        return b"".join(chunks), True


def classify(e: BaseException) -> str:
    """The outcome a network exception stands for."""
    if isinstance(e, ux.MaxRetryError) and e.reason is not None:
        e = e.reason
    if isinstance(e, ux.NameResolutionError):
        return DNS
    if isinstance(e, ux.NewConnectionError):  # (a subclass of urllib3's connect timeout)
        return TIMEOUT if isinstance(e.__cause__, TimeoutError) else CONNECTION
    if isinstance(e, (ux.TimeoutError, TimeoutError)):
        return TIMEOUT
    return CONNECTION


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}"[:200]
