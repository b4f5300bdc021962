"""Shared-server mode: what a visitor may start, and how server paths are shown.

A server reachable beyond loopback (Streamlit's ``server.address`` is not 127.0.0.1/::1/
localhost, as in the Docker image) or started with ``TAILSCOPE_SHARED=1`` is *shared*: the
buttons that start builds (the demo, the map, concept counts) are hidden and the command to run
instead is named; ``TAILSCOPE_SHARED=0`` turns that off. Paths are shown relative to the
workspace (a source outside it by its last two parts) unless the operator sets
``TAILSCOPE_SHOW_PATHS=1``. docs/operations.md describes both.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from backend import paths

SHARED_ENV, PATHS_ENV = "TAILSCOPE_SHARED", "TAILSCOPE_SHOW_PATHS"
DOWNLOADS_ENV = "TAILSCOPE_DOWNLOADS_AT_ONCE"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _flag(var: str) -> bool | None:
    raw = os.environ.get(var, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    return None


def is_shared() -> bool:
    """True when this server is (or is said to be) used by others: see the module's doc."""
    forced = _flag(SHARED_ENV)
    if forced is not None:
        return forced
    try:
        address = str(st.get_option("server.address") or "")
    except RuntimeError:  # not inside a Streamlit server (a bare script): nothing is exposed
        return False
    return address not in LOOPBACK  # "" = every interface


def builds_allowed() -> bool:
    return not is_shared()


def cli_instead(command: str | None) -> None:
    """Where a build button would be on a private server: the command that does it (None:
    the commands are shown just above)."""
    where = f": `{command}`" if command else " (the commands above)"
    st.caption(f":material/terminal: This server is shared, so builds run from the command "
               f"line on the server{where}")  # fmt: skip


def show_path(path: str | Path | None) -> str:
    """``path`` as a visitor may see it: relative to the workspace, else its last two parts;
    in full with ``TAILSCOPE_SHOW_PATHS=1``."""
    if path is None or str(path) == "":
        return "—"
    if _flag(PATHS_ENV):
        return str(path)
    p = Path(str(path))
    if not p.is_absolute():
        return str(p)
    home = paths.workspace()
    try:
        rel = p.resolve().relative_to(home)
        return str(rel) if str(rel) != "." else home.name
    except ValueError:
        return str(Path("…", *p.parts[-2:])) if len(p.parts) > 2 else str(p)


def _downloads_at_once() -> int:
    raw = os.environ.get(DOWNLOADS_ENV, "").strip()
    return max(1, int(raw)) if raw.isdigit() else 2


@st.cache_resource(show_spinner=False)
def _download_slots() -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(_downloads_at_once())


@contextmanager
def download_slot() -> Iterator[bool]:
    """One of the server's few "download now" builds (``TAILSCOPE_DOWNLOADS_AT_ONCE``, default
    2, for every session together); yields False at once when all are taken."""
    slots = _download_slots()
    got = slots.acquire(blocking=False)
    try:
        yield got
    finally:
        if got:
            slots.release()
