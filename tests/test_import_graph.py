"""The import graph holds its shape (bench/shape.py reads it): no cycles among backend/ and ui/
modules, lazy imports included; the library never imports Streamlit, ui/ or the CLI; the
verb modules reach the CLI only through backend.commands, and pages/ui/backend go one way."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import shape  # noqa: E402

MODS = shape.scan(max_function=10**6)
CLI_SIDE = {"backend.cli", "backend.__main__"}


def test_no_import_cycles() -> None:
    assert shape.cycles(MODS) == []


def test_backend_never_imports_ui_or_the_cli() -> None:
    bad = {m.name: sorted(i for i in m.imports if i.startswith("ui") or i == "backend.cli")
           for m in MODS.values() if m.name.startswith("backend") and m.name not in CLI_SIDE}
    assert {k: v for k, v in bad.items() if v} == {}


def test_backend_never_imports_streamlit() -> None:
    found = []
    for path in sorted((ROOT / "backend").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [str(path.relative_to(ROOT)) for n in names if n.split(".")[0] == "streamlit"]
    assert found == []


def test_the_cli_lists_every_verb_module_once() -> None:
    from backend import commands

    adders = [f"{f.__module__}.{f.__name__}" for f in commands.VERBS]
    assert len(adders) == len(set(adders))
    assert MODS["backend.cli"].imports <= {"backend.commands", "backend.paths", "backend.bounded",
                                           "backend.index", "backend.sources"}


def test_modules_and_functions_stay_small() -> None:
    """One idea per module: none over 400 lines, no function over 60 unless its first line
    says why (``# long: …``); the same measure ``python bench/shape.py`` prints."""
    report = shape.report(max_module=400, max_function=60)
    assert report["big_modules"] == [] and report["long_functions"] == []
