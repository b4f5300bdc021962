"""Exports a training job can consume — parquet, JSON lines, CSV, WebDataset shards, img2dataset
url lists, DataComp uid lists — each with a manifest holding its recipe and source build.

One module per idea: :mod:`.rows` (which rows), :mod:`.tables` and :mod:`.wds` (writers),
:mod:`.uids`, :mod:`.target` (where), :mod:`.run` (``export()``), :mod:`.jobs` (background).
"""

from backend.export.rows import ExportError, plan, replay
from backend.export.run import FORMATS, ExportExists, ExportResult, export
from backend.export.target import (
    BadExportName,
    check_export_name,
    exports_dir,
    list_exports,
    resolve_out,
)

__all__ = [
    "FORMATS", "BadExportName", "ExportError", "ExportExists", "ExportResult", "check_export_name",
    "export", "exports_dir", "list_exports", "plan", "replay", "resolve_out",
]  # fmt: skip
