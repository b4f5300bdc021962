"""Export: write the current Selection or a saved subset for a training job, with its recipe."""

from __future__ import annotations

import time

import streamlit as st

from backend import paths
from backend.export import FORMATS, BadExportName, ExportError, check_export_name, exports_dir
from backend.export import jobs as export_jobs
from backend.export import plan as export_plan
from ui import baselines as ui_baselines
from ui import export as ui_export
from ui import page, selection_bar, shared, state, style

name, con, info, sel = page.open_dataset(
    "Export", state.EXPORT_PAGE, "Write a selection or a saved subset for training.", "export"
)
root = paths.workspace()
style.hero(
    f"Export · {name}",
    "Write the rows you picked in a format a training job reads, with a manifest that says "
    "exactly how to get these rows again.",
)
columns = state.facts(name)["columns"]
ui_baselines.panel(name)

try:
    from backend import subsets

    subset_names = [s.name for s in subsets.list_subsets(name, root)]
except ImportError:
    subset_names = []

ss = st.session_state
src = st.segmented_control(
    "Rows to export", ["Current selection", "Saved subset"], key="w.export.src",
    default="Current selection", required=True,
)  # fmt: skip
selection, subset = sel, None
if src == "Saved subset":
    if not subset_names:
        st.info("This dataset has no saved subsets yet. Save one from Browse, or export the "
                "current selection.", icon=":material/bookmarks:")  # fmt: skip
        st.stop()
    subset = st.selectbox("Subset", subset_names, key="w.export.subset")
    selection = None

try:
    p = export_plan(name, selection=selection, subset=subset, root=root)
    matched = p.total
    p.close()
except (ValueError, OSError) as e:
    st.error(f"These rows cannot be exported: {e}", icon=":material/error:")
    st.stop()

with st.container(horizontal=True, vertical_alignment="center", gap="small"):
    st.markdown(selection_bar.count_html(matched, info["rows"]), unsafe_allow_html=True,
                width="content")  # fmt: skip
    if subset is None:
        selection_bar.render(name, sel)
    else:
        st.markdown(f'<div class="ts-meta" style="height:auto">· subset '
                    f"<b>{style.esc(subset)}</b></div>", unsafe_allow_html=True,
                    width="content")  # fmt: skip

datacomp_keys = (info.get("profile") or {}).get("name") == "datacomp"  # uid kept as key
offered = [f for f in FORMATS if (f != "uids" or "uid" in columns or datacomp_keys)
           and (f != "urls" or "url" in columns)]  # fmt: skip
ui_export.seed_from_job(name, offered)
left, right = st.columns([1, 1], gap="large")
with left:
    fmt_ = st.selectbox("Format", offered, format_func=ui_export.format_label, key="w.export.fmt")
    st.caption(ui_export.FORMAT_HELP[fmt_][1])
with right:
    chosen: list[str] = []
    if fmt_ in ("parquet", "jsonl", "csv", "webdataset"):
        chosen = st.multiselect(
            "Columns" if fmt_ != "webdataset" else "Metadata columns in {key}.json",
            list(columns), key="w.export.cols", placeholder="All columns",
        )  # fmt: skip
    shard_size = 10_000
    if fmt_ == "webdataset":
        shard_size = int(st.number_input("Rows per tar shard", 1, 1_000_000, 10_000, 1000,
                                         key="w.export.shard"))  # fmt: skip

if matched == 0:
    st.warning("No rows to export: loosen the filters in the sidebar.", icon=":material/info:")
    st.stop()

spec = dict(selection=selection, subset=subset, columns=chosen or None, shard_size=shard_size)
dl, job = st.columns([1, 1], gap="large")
with dl, st.container(border=True):
    st.markdown("##### Download")
    if matched > ui_export.DOWNLOAD_MAX:
        st.caption(f"{matched:,} rows is more than a browser download should hold "
                   f"({ui_export.DOWNLOAD_MAX:,}): save it under the export folder.")  # fmt: skip
    else:
        key = repr((name, fmt_, spec, matched))
        ready = ss.get("ts.export.ready")
        if st.button("Prepare download", icon=":material/package_2:", key="w.export.prep"):
            try:
                with shared.download_slot() as free:
                    if not free:  # a few at once, for the whole server
                        raise ValueError("other downloads are being prepared; try again soon")
                    with st.spinner(f"Writing {matched:,} rows…"):
                        fname, data, mime, n = ui_export.download_bytes(name, fmt_, **spec)
                ss["ts.export.ready"] = ready = {"key": key, "file": fname, "data": data,
                                                 "mime": mime, "rows": n}  # fmt: skip
            except (ValueError, OSError) as e:
                st.error(f"The export failed: {e}", icon=":material/error:")
        if ready and ready["key"] == key:
            st.download_button(f"Download {ready['file']} ({ready['rows']:,} rows)",
                               ready["data"], ready["file"], ready["mime"], type="primary",
                               icon=":material/download:", key="w.export.dl")  # fmt: skip
        else:
            st.caption(f"Builds the {ui_export.format_label(fmt_)} file of these "
                       f"{matched:,} rows (up to {ui_export.download_cap_mb():,} MB), then "
                       "offers it to save.")  # fmt: skip

with job, st.container(border=True):
    st.markdown("##### Save under the export folder")
    st.caption(f"`{shared.show_path(exports_dir(name, root))}` · runs in the background; "
               "progress survives a reload.")  # fmt: skip
    default = f"{subset or 'selection'}-{fmt_}-{time.strftime('%Y%m%d-%H%M')}"
    out_name = st.text_input("Export name", default, key=f"w.export.name.{fmt_}.{subset}",
                             help="A plain folder name (letters, digits, _ - .)")  # fmt: skip
    overwrite = st.checkbox("Replace an export of the same name", key="w.export.over")
    if st.button("Start export", icon=":material/play_arrow:", type="primary",
                 key="w.export.start"):  # fmt: skip
        try:
            check_export_name(out_name)
            if (exports_dir(name, root) / out_name).exists() and not overwrite:
                raise ExportError(f"an export named {out_name!r} already exists: choose "
                                  "another name or tick Replace")  # fmt: skip
            export_jobs.start(name, out_name, fmt_, root=root, overwrite=overwrite, **spec)
        except (BadExportName, ExportError) as e:
            st.error(str(e), icon=":material/error:")

ui_export.jobs_panel(name)
ui_export.past_exports(name)
