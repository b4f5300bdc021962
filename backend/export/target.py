"""Where exports go: one folder per export under ``<workspace>/<dataset>/exports/``.

Names typed in the UI are plain folder names only; an absolute folder is accepted only from a
caller that says so (the CLI, where the user typed it), so nothing can write outside by a name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend import paths
from backend.manifest import read_manifest

EXPORT_NAME_LONGEST = 128
MANIFEST = "manifest.json"


class BadExportName(ValueError):
    """An export name that is not a plain folder name (separators, ``..``, absolute)."""


def exports_dir(name: str, root: Path | None = None) -> Path:
    """The dataset's export folder (not created here)."""
    return paths.dataset_dir(name, root) / "exports"


def check_export_name(out: str) -> str:
    """``out`` if it is a plain name for a folder under the export folder, else raise."""
    if not paths.is_plain_name(out, EXPORT_NAME_LONGEST):
        raise BadExportName(
            f"bad export name {out!r}: use a plain name of letters, digits, '_', '-' or '.' "
            "(no folders, no '..', not an absolute path)"
        )
    return out


def resolve_out(
    name: str, out: str | Path, root: Path | None = None, allow_absolute: bool = False
) -> Path:
    """The final folder of an export: ``out`` as a plain name under the export folder, or, with
    ``allow_absolute`` (the CLI), an absolute folder the user chose."""
    if isinstance(out, Path) or str(out).startswith(("/", "\\", "~")):
        p = Path(out).expanduser()
        if not allow_absolute or not p.is_absolute():
            raise BadExportName(f"export name {str(out)!r} must be a plain name, not a path")
        if ".." in p.parts:
            raise BadExportName(f"export folder {str(out)!r} must not contain '..'")
        return p
    return exports_dir(name, root) / check_export_name(out)


def list_exports(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Finished exports in the export folder, newest first, each its manifest plus ``dir``."""
    base = exports_dir(name, root)
    if not base.is_dir():
        return []
    out = []
    for d in base.iterdir():
        if d.is_dir() and not d.name.startswith(".") and (d / MANIFEST).is_file():
            m = read_manifest(d / MANIFEST)
            if m:
                out.append({**m, "dir": str(d), "export_name": d.name})
    return sorted(out, key=lambda m: str(m.get("created_at", "")), reverse=True)
