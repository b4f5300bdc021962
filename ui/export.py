"""The Export page's parts: the format picker's words, a small export built for download, the
background jobs' progress, and the list of past exports with their manifests."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import streamlit as st

from backend import paths
from backend.export import jobs, list_exports
from backend.export.run import export
from backend.selection import Selection
from ui import fmt, shared, style

DOWNLOAD_MAX = 50_000  # rows: above this, write under the export folder in the background
DOWNLOAD_MB_ENV = "TAILSCOPE_DOWNLOAD_MAX_MB"  # bytes: a bigger file is refused (default 500)


class DownloadTooBig(ValueError):
    """A "download now" file over the byte cap: the background export is the way."""


def download_cap_mb() -> int:
    raw = os.environ.get(DOWNLOAD_MB_ENV, "").strip()
    return max(1, int(raw)) if raw.isdigit() else 500
FORMAT_HELP = {
    "parquet": ("Parquet", "One parquet file with all or the chosen columns."),
    "jsonl": ("JSON lines", "One JSON object per row."),
    "csv": ("CSV", "One CSV file with a header row."),
    "webdataset": ("WebDataset", "Tar shards of {key}.jpg (the original bytes), {key}.txt "
                   "caption and {key}.json metadata, ready for webdataset/open_clip."),
    "urls": ("img2dataset urls", "A parquet of url, caption for img2dataset to download."),
    "uids": ("DataComp uids", "A .npy of the uid column as DataComp's filters write it."),
}  # fmt: skip
MIME = {
    ".parquet": "application/vnd.apache.parquet", ".jsonl": "application/jsonl",
    ".csv": "text/csv", ".npy": "application/octet-stream", ".zip": "application/zip",
}  # fmt: skip


def format_label(f: str) -> str:
    return FORMAT_HELP[f][0]


def download_bytes(
    name: str,
    fmt_: str,
    *,
    selection: Selection | None,
    subset: str | None,
    columns: list[str] | None,
    shard_size: int,
) -> tuple[str, bytes, str, int]:
    """(file name, bytes, mime, rows) of a small export built in a temp folder: the one data
    file itself, or a zip of the files and the manifest when there are several (zipped to a
    temp file, not in memory). Over ``TAILSCOPE_DOWNLOAD_MAX_MB`` it is refused
    (:class:`DownloadTooBig`) before its bytes are read."""
    tmp = Path(tempfile.mkdtemp(prefix="tailscope-export-"))
    try:
        res = export(name, selection=selection, subset=subset, fmt=fmt_, out=tmp / "x",
                     root=paths.workspace(), columns=columns, shard_size=shard_size,
                     allow_absolute=True)  # fmt: skip
        base = f"{name}-{subset or 'selection'}-{fmt_}"
        if len(res.files) == 1 and fmt_ != "webdataset":
            f = res.out / res.files[0]["path"]
            file, mime = f"{base}{f.suffix}", MIME.get(f.suffix, "application/octet-stream")
        else:
            f, file, mime = tmp / f"{base}.zip", f"{base}.zip", MIME[".zip"]
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
                for part in sorted(res.out.iterdir()):
                    z.write(part, f"{base}/{part.name}")
        cap = download_cap_mb()
        if f.stat().st_size > cap * 1_000_000:
            raise DownloadTooBig(f"the file is {f.stat().st_size / 1e6:,.0f} MB, over the "
                                 f"{cap:,} MB a download may hold: save it under the export "
                                 "folder instead")  # fmt: skip
        return file, f.read_bytes(), mime, res.count
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def seed_from_job(name: str, offered: list[str]) -> None:
    """Start a fresh page (a reload, or back from another page) on the format of the export
    shown under "Background exports" (the running one, else the newest), not on Parquet."""
    if "w.export.fmt" in st.session_state:
        return
    current = jobs.list_jobs(name, paths.workspace())
    running = [j for j in current if j.get("state") in ("starting", "running")]
    job = (running or current or [{}])[0]
    if job.get("format") in offered:
        st.session_state["w.export.fmt"] = job["format"]


def _job_row(job: dict[str, Any]) -> None:
    name = job.get("export_name", "?")
    state = job.get("state")
    done, total = job.get("done") or 0, job.get("total")
    f = job.get("format", "")
    label = f"**{style.esc(name)}** · {style.esc(format_label(f) if f in FORMAT_HELP else f)}"
    if state in ("starting", "running"):
        frac = done / total if total else 0.0
        st.progress(min(frac, 1.0), text=f"{label} · {fmt.num(done)} of {fmt.num(total)} rows")
    elif state == "done":
        st.success(f"{label} · {fmt.num(job.get('count'))} rows written in "
                   f"{job.get('seconds', 0):.1f} s", icon=":material/check_circle:")  # fmt: skip
    else:
        st.error(f"{label} failed: {job.get('error', 'unknown error')}", icon=":material/error:")


def _running(jobs_list: list[dict[str, Any]]) -> bool:
    return any(j.get("state") in ("starting", "running") for j in jobs_list)


@st.fragment(run_every=1.0)
def _poll(name: str) -> None:
    current = jobs.list_jobs(name, paths.workspace())
    for job in current:
        _job_row(job)
    if not _running(current):
        st.rerun()  # a job finished: redraw the page so its export is listed


def jobs_panel(name: str) -> None:
    """Progress of background exports (polled while one runs; survives a page reload)."""
    current = jobs.list_jobs(name, paths.workspace())
    if not current:
        return
    st.markdown("#### Background exports")
    if _running(current):
        _poll(name)
        return
    for job in current[:5]:
        _job_row(job)
    st.button("Clear finished", key="jobs-clear", type="tertiary",
              icon=":material/clear_all:", on_click=_forget_all, args=(name,))  # fmt: skip


def _forget_all(name: str) -> None:
    for job in jobs.list_jobs(name, paths.workspace()):
        if job.get("state") not in ("starting", "running"):
            jobs.forget(Path(job["status_file"]))


def recipe_text(m: dict[str, Any]) -> str:
    r = m.get("recipe") or {}
    if r.get("subset"):
        return f"subset {r['subset']}"
    if r.get("row_ids"):
        return f"{r['row_ids'].get('count')} chosen rows"
    sel = Selection.from_dict(r.get("selection") or {})
    return " · ".join(sel.describe()) or "every row"


def past_exports(name: str) -> None:
    """Every finished export under the dataset's export folder, newest first."""
    done = list_exports(name, paths.workspace())
    st.markdown("#### Past exports")
    if not done:
        st.caption("None yet. Exports saved under the export folder are listed here.")
        return
    for m in done:
        size = sum(f.get("bytes", 0) for f in m.get("files", []))
        with st.expander(
            f"**{m['export_name']}** · {format_label(m.get('format', 'parquet'))} · "
            f"{fmt.num(m.get('count'))} rows · {fmt.size(size)} · {fmt.when(m.get('created_at'))}"
        ):
            folder = shared.show_path(m["dir"])
            st.markdown(f"Rows: {style.esc(recipe_text(m))}  \nFolder: `{folder}`")
            for note in m.get("notes", []):
                st.caption(note)
            st.dataframe(
                [{"file": f["path"], "rows": f.get("rows"), "size": fmt.size(f.get("bytes")),
                  "sha256": f.get("sha256", "")[:16] + "…"} for f in m.get("files", [])],
                hide_index=True, width="stretch",
            )  # fmt: skip
            st.code(json.dumps({"recipe": m.get("recipe"), "source": m.get("source")}, indent=2),
                    language="json")  # fmt: skip
