"""Exports run in the background for the UI: the CLI in a subprocess, its progress in a small
JSON status file under the export folder, so a page reload (or another session) still sees it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from backend import paths
from backend.export.target import check_export_name, exports_dir
from backend.manifest import now, read_manifest, write_json_atomic
from backend.selection import Selection

JOBS = ".jobs"


def status_path(name: str, export_name: str, root: Path | None = None) -> Path:
    return exports_dir(name, root) / JOBS / f"{check_export_name(export_name)}.json"


class StatusFile:
    """A progress callback that writes ``{state, done, total, ...}`` at most every ``every``
    seconds (and always at the start and the end)."""

    def __init__(self, path: Path, every: float = 0.5, **fields: Any) -> None:
        self.path, self.every, self.last = path, every, 0.0
        self.body: dict[str, Any] = {"state": "running", "done": 0, "total": None,
                                     "pid": os.getpid(), "started_at": now(), **fields}  # fmt: skip
        self.write()

    def write(self, **fields: Any) -> None:
        self.body.update(fields, updated_at=now())
        write_json_atomic(self.path, self.body)

    def __call__(self, done: int, total: int) -> None:
        t = time.monotonic()
        if t - self.last >= self.every or done >= total:
            self.last = t
            self.write(done=done, total=total)


def start(
    name: str,
    export_name: str,
    fmt: str,
    *,
    selection: Selection | None = None,
    subset: str | None = None,
    columns: list[str] | None = None,
    shard_size: int = 10_000,
    overwrite: bool = False,
    root: Path | None = None,
) -> Path:
    """Start ``python -m backend export`` for a plain export name in a detached subprocess;
    return its status file."""
    status = status_path(name, export_name, root)
    status.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "backend", "export", name, "--format", fmt, "--out",
           export_name, "--status", str(status), "--shard-size", str(int(shard_size))]  # fmt: skip
    if subset:
        cmd += ["--subset", subset]
    else:
        cmd += ["--selection", json.dumps((selection or Selection()).to_dict())]
    if columns:
        cmd += ["--columns", ",".join(columns)]
    if overwrite:
        cmd.append("--overwrite")
    env = {**os.environ, "TAILSCOPE_HOME": str(root or paths.workspace())}
    write_json_atomic(status, {"state": "starting", "done": 0, "total": None, "format": fmt,
                               "export_name": export_name, "started_at": now()})  # fmt: skip
    with open(status.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(cmd, cwd=paths.REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    body = read_manifest(status)
    if body.get("state") == "starting":
        body["pid"] = proc.pid
        write_json_atomic(status, body)
    return status


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def read_status(path: Path) -> dict[str, Any]:
    """The job's status; a running job whose process is gone is reported as failed, with the
    end of its log."""
    body = read_manifest(path)
    if body.get("state") in ("running", "starting") and body.get("pid") and not _alive(
        body["pid"]
    ):
        log = path.with_suffix(".log")
        tail = log.read_text(errors="replace")[-600:] if log.is_file() else ""
        body.update(state="failed", error=tail.strip() or "the export process stopped")
    return body


def list_jobs(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Every job's status, newest first."""
    d = exports_dir(name, root) / JOBS
    if not d.is_dir():
        return []
    out = [{**read_status(p), "status_file": str(p)} for p in d.glob("*.json")]
    return sorted(out, key=lambda b: str(b.get("started_at", "")), reverse=True)


def forget(path: Path) -> None:
    """Drop a finished or failed job's status and log."""
    path.unlink(missing_ok=True)
    path.with_suffix(".log").unlink(missing_ok=True)
