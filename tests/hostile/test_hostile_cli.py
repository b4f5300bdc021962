"""Bad-input catalogue, empty sources and the CLI: every format's empty source, and hostile
command-line input, end in one clear line on stderr and exit status 2 (never a traceback)."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.cli import main


def empty_dir(tmp: Path) -> Path:
    (tmp / "src").mkdir()
    return tmp / "src"


def captions_only(tmp: Path) -> Path:
    (tmp / "src").mkdir()
    (tmp / "src" / "a.txt").write_text("a caption with no image")
    return tmp / "src"


def empty_tar(tmp: Path) -> Path:
    with tarfile.open(tmp / "empty.tar", "w"):
        pass
    return tmp / "empty.tar"


def exe_file(tmp: Path) -> Path:
    (tmp / "run.sh").write_text("#!/bin/sh\n")
    return tmp / "run.sh"


def zero_parquet(tmp: Path) -> Path:
    (tmp / "t.parquet").write_bytes(b"")
    return tmp / "t.parquet"


def tsv_without_columns(tmp: Path) -> Path:
    (tmp / "t.tsv").write_text("a\tb\n1\t2\n")
    return tmp / "t.tsv"


# (name, dataset name, source maker, --format, stderr wording)
CLI_CASES: list[tuple[str, str, Callable[[Path], Path], str, str]] = [
    ("empty folder, auto", "ds", empty_dir, "auto", "is empty or holds nothing"),
    ("captions only, auto", "ds", captions_only, "auto", "is empty or holds nothing"),
    ("empty folder as folder", "ds", empty_dir, "folder", "holds no folder shards"),
    ("empty folder as webdataset", "ds", empty_dir, "webdataset", "holds no webdataset shards"),
    ("empty folder as parquet", "ds", empty_dir, "parquet", "holds no parquet shards"),
    ("empty folder as embeddings", "ds", empty_dir, "embeddings", "has no metadata/ folder"),
    ("a shell script", "ds", exe_file, "auto", "not a .tar, .parquet or .csv file"),
    ("zero-byte parquet", "ds", zero_parquet, "auto", "cannot be read as a table"),
    ("tsv without columns", "ds", tsv_without_columns, "auto", "lacks a caption column"),
    ("missing source", "ds", lambda t: t / "nope", "auto", "does not exist"),
    ("dataset name ../x", "../x", empty_dir, "auto", "name"),
    ("dataset name with ;", "a;rm -rf", empty_dir, "auto", "name"),
    ("unknown format", "ds", empty_dir, "zip", "invalid choice"),
]


@pytest.mark.parametrize(
    "case, name, make, fmt, wording", CLI_CASES, ids=[c[0] for c in CLI_CASES]
)
def test_cli_build_refuses_with_one_clear_line(
    case: str, name: str, make, fmt: str, wording: str, workspace: Path, tmp_path: Path, capsys
) -> None:
    src = make(tmp_path)
    try:
        rc = main(["build", name, "--source", str(src), "--format", fmt, "--workers", "1"])
    except SystemExit as e:  # argparse refuses an unknown choice itself
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, (case, err)
    assert wording in err, (case, err)
    assert "Traceback" not in err
    assert not any(workspace.rglob("store.duckdb")), "a refused build writes no store"


def test_a_tar_with_no_members_is_an_empty_dataset(workspace: Path, tmp_path: Path) -> None:
    """A well-formed tar with nothing in it is accepted as an empty dataset (like a CSV with
    only its header): 0 rows, 0 rejects, and Browse has nothing to show."""
    from backend.ingest import build
    from tests.hostile.catalogue import store_state

    result = build("ds", empty_tar(tmp_path), workers=1)
    assert (result.rows, result.rejects) == (0, 0)
    assert store_state("ds") == ({}, [])
