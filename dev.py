#!/usr/bin/env python3
"""Tailscope's two commands, needing nothing but Python 3.11+:

python3 dev.py run    set up .venv, build the demo dataset if needed, start the app
python3 dev.py test   set up .venv with test tools (and Chromium where possible), run tests
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def die(msg: str) -> None:
    print(f"\n[tailscope] error: {msg}", file=sys.stderr)
    raise SystemExit(1)


def say(msg: str) -> None:
    print(f"[tailscope] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    say("$ " + " ".join(str(c) for c in cmd))
    rc = subprocess.call([str(c) for c in cmd], cwd=ROOT, env=child_env(), **kw)
    if rc != 0:
        die(f"command failed with exit code {rc}: {' '.join(str(c) for c in cmd)}")


def ensure_venv(requirements: str) -> None:
    """Create .venv and install pinned requirements; skip when nothing changed since last time."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may run under an older python3
        die(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]} ({sys.executable})")
    if not PY.exists():
        say(f"creating virtual environment in {VENV}")
        rc = subprocess.call([sys.executable, "-m", "venv", str(VENV)])
        if rc != 0 or not PY.exists():
            shutil.rmtree(VENV, ignore_errors=True)
            die("could not create a virtual environment; on Debian/Ubuntu install python3-venv")
    files = [ROOT / requirements, ROOT / "requirements.txt", ROOT / "constraints.txt"]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    say(f"installing pinned dependencies from {requirements} (first time: about a minute)")
    # --no-compile: pip would byte-compile all ~22k .py files of site-packages (~45 s of one
    # core); Python compiles only the ~5k it imports, once, on first import (see child_env)
    run(
        [
            PY,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-compile",
            "--disable-pip-version-check",
            "-r",
            requirements,
            "-c",
            "constraints.txt",
        ]
    )
    stamp.write_text(digest)


def child_env() -> dict[str, str]:
    """The environment of the commands we start. Bytecode is written, whatever
    PYTHONDONTWRITEBYTECODE says: the venv is installed without .pyc files, so without it every
    process (each test's CLI run, server and worker) would compile torch's modules again (~8 s).
    It goes to __pycache__ folders in .venv and in this checkout, which git ignores."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> None:
    """The browser tests drive Debian's Chromium; install it when we may, else they skip."""
    if chromium():
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        say("installing Chromium for the browser tests (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.call(["apt-get", "update", "-qq"], env=env)
        subprocess.call(["apt-get", "install", "-y", "-qq", "chromium"], env=env)
    if not chromium():
        say("Chromium is not available: the browser tests will be skipped (they say why)")


def cmd_run(args: list[str]) -> None:
    ensure_venv("requirements.txt")
    run([PY, "-m", "backend", "demo", "--if-missing"])
    port = os.environ.get("TAILSCOPE_PORT", "8501")
    say(f"starting Tailscope on http://127.0.0.1:{port} (Ctrl-C stops it)")
    os.chdir(ROOT)
    os.execve(
        str(PY),
        [
            str(PY),
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            port,
            "--server.headless",
            "true",
            *args,
        ],
        child_env(),
    )


def cmd_test(args: list[str]) -> None:
    ensure_venv("requirements-dev.txt")
    ensure_chromium()
    run([BIN / "ruff", "check", "."])
    # One pytest-xdist worker per core (at most 4: a worker peaks near 5 GB), a module at a time
    # in the order tests/conftest.py sets (modules with slow tests first); `-n 0` after the
    # command runs them in this process. The 15 slowest tests close the report, so a test that
    # grows slow is seen when it lands.
    workers = str(min(os.cpu_count() or 1, 4))
    run([PY, "-m", "pytest", "-n", workers, "--dist", "loadfile", "--no-loadscope-reorder",
         "--durations=15", *args])  # fmt: skip


def main() -> None:
    commands = {"run": cmd_run, "test": cmd_test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        raise SystemExit(2)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
