"""The registered domain and top-level domain of an image URL, for per-site audits.

A pool's rows come from millions of hosts; what an audit groups by is the site that published
the image: ``i.pinimg.com`` and ``www.pinimg.com`` are both ``pinimg.com``, and
``news.bbc.co.uk`` is ``bbc.co.uk`` (not ``co.uk``). That needs the Public Suffix List:
``tldextract`` with its bundled snapshot, never fetched (the machine may be offline and a build
must not change with the network). Hosts repeat a lot, so each one is split once.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

_EXTRACT = None


def _extractor():
    """tldextract over its bundled suffix list only: no download, no cache directory."""
    global _EXTRACT
    if _EXTRACT is None:
        import tldextract

        _EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    return _EXTRACT


def host_of(url: str | None) -> str | None:
    """The lower-case host of ``url`` (no port, no user), or None when it has none."""
    if not url or not isinstance(url, str):
        return None
    text = url.strip()
    if "://" not in text[:12]:
        text = "//" + text  # "example.com/a.jpg": a host with no scheme
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    return host.rstrip(".") or None if host else None


@lru_cache(maxsize=1 << 18)
def split_host(host: str) -> tuple[str, str | None]:
    """(registered domain, tld) of a host: ``www.bbc.co.uk`` -> (``bbc.co.uk``, ``co.uk``);
    an IP address is its own domain with no tld; a host under no known suffix
    (``demo.example.invalid``) keeps its name and its last label as tld."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host, None
    except ValueError:
        pass
    parts = _extractor()(host)
    if parts.suffix and parts.domain:
        return f"{parts.domain}.{parts.suffix}", parts.suffix
    name = host.removeprefix("www.")
    return name, (name.rsplit(".", 1)[-1] if "." in name else None)


def domain_tld(url: str | None) -> tuple[str | None, str | None]:
    """(registered domain, tld) of ``url``; (None, None) when it has no host."""
    host = host_of(url)
    return split_host(host) if host else (None, None)
