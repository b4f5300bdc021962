"""scripts/ldd_check.py finds a compiled extension whose shared library the system lacks (what
opencv's libGL.so.1 is on python:3.11-slim), and not the libraries the venv itself ships."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import ldd_check  # noqa: E402

needs_gcc = pytest.mark.skipif(not shutil.which("gcc") or not shutil.which("ldd"),
                               reason="needs gcc and ldd")  # fmt: skip


def _so(folder: Path, name: str, links: list[str]) -> Path:
    src = folder / f"{name}.c"
    src.write_text(f"int {name}_f(void) {{ return 1; }}\n")
    out = folder / f"lib{name}.so"
    cmd = ["gcc", "-shared", "-fPIC", "-o", str(out), str(src), f"-L{folder}"]
    links_ = ["-Wl,--no-as-needed", *(f"-l{x}" for x in links)]  # keep an unused NEEDED
    subprocess.run(cmd + links_, check=True, capture_output=True)
    return out


@needs_gcc
def test_a_missing_library_is_named_with_the_file_that_needs_it(tmp_path: Path, capsys) -> None:
    site = tmp_path / "site"
    (site / "fakecv").mkdir(parents=True)
    build = tmp_path / "build"
    build.mkdir()
    _so(build, "fakegl", [])  # the system library the image lacks
    ext = _so(build, "ext", ["fakegl"])
    shutil.copy(ext, site / "fakecv" / "ext.so")  # the extension, without its library
    assert ldd_check.main(["--site", str(site), "--ignore"]) == 1
    out = capsys.readouterr().out
    assert "NOT FOUND libfakegl.so: needed by 1 file(s), e.g. fakecv/ext.so" in out
    shutil.copy(build / "libfakegl.so", site / "fakecv" / "libfakegl.so")  # shipped by the venv
    assert ldd_check.main(["--site", str(site), "--ignore"]) == 0
    assert "0 missing libraries" in capsys.readouterr().out
