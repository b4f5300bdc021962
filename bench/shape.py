"""The codebase's shape: module sizes, long functions and import cycles, in one command.

    python bench/shape.py [--max-module 400] [--max-function 60] [--json]

A module over ``--max-module`` lines or a function over ``--max-function`` lines is listed
unless its first body line is a comment starting ``# long:`` saying why (a parser table, a
page script). Import cycles are strongly connected components of the graph of project
modules importing each other, lazy (function-level) imports included: a lazy import hides a
cycle from Python, not from the reader. Exits 1 when anything is listed, so CI can hold it.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("backend", "ui")
LONG_OK = "# long:"


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    imports: set[str] = field(default_factory=set)
    long_functions: list[tuple[str, int]] = field(default_factory=list)


def module_name(path: Path) -> str:
    """``backend/concepts/run.py`` → ``backend.concepts.run``; packages by their ``__init__``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(tree: ast.Module, here: str, is_package: bool, known: set[str]) -> set[str]:
    """Project modules this one imports, anywhere in its body (``from a import b`` counts
    ``a.b`` when ``a.b`` is a module, else ``a``)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, here, is_package)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                     for a in node.names]  # fmt: skip
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != here:
                out.add(name)
    return out


def _long_functions(tree: ast.Module, source: list[str], limit: int) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        first = node.body[0].lineno - 1
        said_why = any(LONG_OK in line for line in source[node.lineno - 1: first + 2])
        if length > limit and not said_why:
            out.append((node.name, length))
    return out


def scan(max_function: int) -> dict[str, Module]:
    """Every project module, parsed once."""
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    known = {module_name(p) for p in files}
    mods: dict[str, Module] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        name = module_name(path)
        lines = text.splitlines()
        mods[name] = Module(name, path, len(lines),
                            _imports(tree, name, path.name == "__init__.py", known),
                            _long_functions(tree, lines, max_function))  # fmt: skip
    return mods


def cycles(mods: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(mods):
        if start in index:
            continue
        work = [(start, iter(sorted(mods[start].imports)))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(mods[nxt].imports))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def report(max_module: int, max_function: int) -> dict:
    mods = scan(max_function)
    big = sorted(((m.name, m.lines) for m in mods.values() if m.lines > max_module
                  and not any(LONG_OK in ln for ln in m.path.read_text().splitlines()[:5])),
                 key=lambda t: -t[1])  # fmt: skip
    long_fns = sorted(((f"{m.name}.{f}", n) for m in mods.values() for f, n in m.long_functions),
                      key=lambda t: -t[1])  # fmt: skip
    return {"modules": len(mods), "lines": sum(m.lines for m in mods.values()),
            "big_modules": big, "long_functions": long_fns, "cycles": cycles(mods)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-module", type=int, default=400)
    ap.add_argument("--max-function", type=int, default=60)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = report(a.max_module, a.max_function)
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        print(f"{r['modules']} modules, {r['lines']} lines under {', '.join(PACKAGES)}/")
        print(f"modules over {a.max_module} lines: {len(r['big_modules'])}")
        for n, lines in r["big_modules"]:
            print(f"  {lines:5d}  {n}")
        print(f"functions over {a.max_function} lines: {len(r['long_functions'])}")
        for n, lines in r["long_functions"]:
            print(f"  {lines:5d}  {n}")
        print(f"import cycles: {len(r['cycles'])}")
        for c in r["cycles"]:
            print("  " + " ↔ ".join(c))
    return 1 if (r["big_modules"] or r["long_functions"] or r["cycles"]) else 0


if __name__ == "__main__":
    sys.exit(main())
