"""End to end: the CLI builds the demo, and the store matches the demo's ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backend import browse, media
from backend.images import probe
from backend.selection import Selection
from backend.store import connect

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cli_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """``python -m backend demo`` in a fresh workspace, as a user runs it. 200 rows: the demo
    plants each kind of record at any size it accepts (130 up); the steps cost per row."""
    home = tmp_path_factory.mktemp("cli_demo")
    env = {"TAILSCOPE_HOME": str(home), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "backend", "demo", "--rows", "200", "--json"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ingest demo" in out.stderr  # the progress bar was drawn
    result = json.loads(out.stdout)
    truth = json.loads((home / "demo" / "source" / "ground_truth.json").read_text())
    return home, result, truth


def test_counts_match_ground_truth(cli_demo):
    home, result, truth = cli_demo
    assert result["rows"] == truth["expected_samples"]
    assert result["rejects"] == truth["expected_rejects"]
    assert result["rows"] + result["rejects"] == truth["items_total"]


def test_each_reject_has_its_known_reason(cli_demo, monkeypatch):
    home, _, truth = cli_demo
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    con = connect("demo")
    got = sorted((r["key"], r["reason"]) for r in browse.rejects(con))
    assert got == sorted((r["key"], r["reason"]) for r in truth["rejects"])


def test_samples_keep_captions_and_bytes(cli_demo, monkeypatch):
    home, _, truth = cli_demo
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    con = connect("demo")
    n = browse.count(con, Selection())
    rows = {r["key"]: r for r in browse.page(con, Selection(), limit=n)}
    assert set(rows) == set(truth["samples"])
    for key, expected in truth["samples"].items():
        assert rows[key]["caption"] == expected["caption"], key
        assert rows[key]["shard"] == expected["shard"], key
    for key in truth["cp1252_captions"]:
        assert browse.row(con, rows[key]["row_id"])["caption_encoding"] == "cp1252"
    # images are read back from their tars by byte offset, intact
    for key in list(rows)[:: max(1, n // 40)]:
        row = browse.row(con, rows[key]["row_id"])
        info = probe(media.image_bytes(row))
        assert (info.width, info.height, info.sha256) == (
            row["width"],
            row["height"],
            row["sha256"],
        )
    # exact duplicates share a sha256, and nothing else does by accident
    for group in truth["exact_duplicates"]:
        kept = [k for k in group if k in rows]
        assert len({browse.row(con, rows[k]["row_id"])["sha256"] for k in kept}) == 1, group


def test_demo_if_missing_is_a_no_op(cli_demo):
    home, _, _ = cli_demo
    env = {"TAILSCOPE_HOME": str(home), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "backend", "demo", "--if-missing"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "already built" in out.stdout


def test_the_demo_runs_every_build_step(cli_demo):
    """One command leaves every page something to show: the manifest records each step and
    the store holds the columns the later steps add."""
    home, result, _ = cli_demo
    manifest = json.loads((home / "demo" / "manifest.json").read_text())
    assert {"ingest", "embed", "map", "score", "dedup"} <= set(manifest["steps"])
    con = connect("demo", home)
    cols = {r[0] for r in con.execute("DESCRIBE samples").fetchall()}
    con.close()
    assert {"map_x", "cluster", "toxicity", "nsfw", "blur", "is_dup_rep"} <= cols
    assert (home / "demo" / "concepts" / "mined" / "summary.json").is_file()
    assert (home / "demo" / "index" / "text.faiss").is_file()


def test_offline_the_cli_demo_is_embedded_with_the_demo_clip(cli_demo):
    """No real CLIP weights here: `python -m backend demo` falls back to the demo CLIP through
    the checkpoint path, says so, and text→image search answers from the image vectors."""
    from backend.democlip import CHECKPOINT, DEMO_CLIP_NOTE, is_demo_clip

    home, _, _ = cli_demo
    embed = json.loads((home / "demo" / "manifest.json").read_text())["steps"]["embed"]
    assert embed["cross_modal"] is True and embed["clip_unavailable"] is None
    for kind in ("img", "text"):
        assert is_demo_clip(embed["kinds"][kind]["model"])
        assert embed["kinds"][kind]["checkpoint"] == str(CHECKPOINT.resolve())
    env = {"TAILSCOPE_HOME": str(home), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "backend", "search", "demo", "--text", "a photo of a red star",
           "-k", "5", "--json"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["vectors"] == "img" and is_demo_clip(res["model"])
    assert any(DEMO_CLIP_NOTE in n for n in res["notes"])
    assert sum("star" in r["caption"] for r in res["results"]) >= 3
