"""Filter impact on a 40-row dataset with planted groups: every retention equals a direct count
of the planted rows, the planted over-removed cluster is flagged, the long tail's vanished and
thinned concepts are the planted ones, and an export manifest records the summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from backend import impact
from backend.bounded import wrap
from backend.selection import Selection
from backend.store import connect

# 40 rows: cluster = i // 10; domain alternates; toxicity > 0.5 ("removed" by the filter) for
# 8 of cluster 3's rows and for rows 0, 10, 20 (one in each other cluster).
N = 40
TOXIC = {0, 10, 20} | set(range(30, 38))
WORDS = ["dog", "cat", "tree", "car"]


def caption(i: int) -> str:
    if i >= 30:  # cluster 3 is about foxes; its two kept rows (38, 39) name "owl"
        return "a red fox in the snow" if i < 38 else "an owl on a branch with a fox"
    return f"a photo of a {WORDS[i % 4]} and a {WORDS[(i + 1) % 4]}"


def truth_cluster(i: int) -> int:
    return i // 10


def truth_domain(i: int) -> str:
    return "a.example" if i % 2 == 0 else "b.example"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from backend.columns import add_columns
    from backend.concepts import analyse, parse
    from backend.ingest import build

    root = tmp_path_factory.mktemp("impact_ws")
    src = root / "src.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["url", "caption"])
        for i in range(N):
            w.writerow([f"https://{truth_domain(i)}/img{i}.jpg", caption(i)])
    build("tiny", src, "csv", root=root, workers=1)
    con = connect("tiny", root)
    key_of = dict(con.execute("SELECT row_id, url FROM samples").fetchall())
    con.close()
    ids = sorted(key_of)
    # planted values by the row's own url (the row order of ingest is not assumed)
    idx = {r: int(key_of[r].rsplit("img", 1)[1].split(".")[0]) for r in ids}
    add_columns("tiny", pa.table({
        "row_id": pa.array(ids, pa.int64()),
        "cluster": pa.array([truth_cluster(idx[r]) for r in ids], pa.int32()),
        "toxicity": pa.array([0.9 if idx[r] in TOXIC else 0.1 for r in ids], pa.float64()),
    }), root)  # fmt: skip
    analyse("tiny", parse("words", b"fox\nowl\ndog\ncat\ntree\ncar\nzebra\n"), root)
    (root / "idx.json").write_text(json.dumps({str(r): i for r, i in idx.items()}))
    return root


def _measure(root: Path, sel: Selection, base: Selection = Selection(), **kw):
    con = wrap(connect("tiny", root))
    try:
        got = impact.dataset_inputs(con, "tiny", root)
        return impact.measure(con, base, sel, hits=got["hits"], labels={3: "foxes"},
                              scores={"toxicity": "synthetic"}, name="tiny", **kw), got
    finally:
        con.close()


KEEP = Selection(ranges={"toxicity": (None, 0.5)})


def test_retention_per_group_equals_direct_count(tiny: Path) -> None:
    imp, _ = _measure(tiny, KEEP)
    kept = [i for i in range(N) if i not in TOXIC]
    assert (imp.base_rows, imp.kept_rows) == (N, len(kept))
    for kind, truth in (("cluster", truth_cluster), ("domain", truth_domain)):
        got = {g.key: (g.base, g.kept) for g in imp.by_kind(kind)}
        want: dict = {}
        for i in range(N):
            b, k = want.get(truth(i), (0, 0))
            want[truth(i)] = (b + 1, k + (i not in TOXIC))
        assert got == want, kind
    concepts = {g.label: (g.base, g.kept) for g in imp.by_kind("concept")}
    for word in ("fox", "owl", "dog", "cat", "tree", "car"):
        rows = [i for i in range(N) if word in caption(i).split()]
        assert concepts[word] == (len(rows), sum(i not in TOXIC for i in rows)), word
    assert "zebra" not in concepts  # never seen in the base: no group
    bins = {g.label: (g.base, g.kept) for g in imp.by_kind("score")}
    assert sum(b for b, _ in bins.values()) == N
    assert (bins["toxicity 0.1–0.18"], bins["toxicity 0.82–0.9"]) == ((29, 29), (11, 0))
    assert any("caption language: not run" in n and "score tiny --scorers language" in n
               for n in imp.notes)  # no language column: said, with the command


def test_image_side_retention(tiny: Path) -> None:
    """Image-side hits (planted: the image of rows 0-9 shows a "dog", concept id 2) are counted
    as their own groups: 10 in the base, 9 kept (row 0 is toxic)."""
    idx = json.loads((tiny / "idx.json").read_text())
    row_of = {i: int(r) for r, i in idx.items()}
    rows = np.array(sorted(row_of[i] for i in range(10)), np.int64)
    imp, got = _measure(tiny, KEEP, image_hits=(rows, np.full(10, 2, np.int32)))
    assert got["hits"][2][2] == "dog"
    assert [(g.label, g.base, g.kept) for g in imp.by_kind("image concept")] == [("dog", 10, 9)]
    assert not any(n.startswith("image concepts") for n in imp.notes)


def test_base_is_another_selection(tiny: Path) -> None:
    """Against a base of clusters 0-1 only, counts are of those 20 rows."""
    base = Selection(values={"cluster": [0, 1]})
    imp, _ = _measure(tiny, KEEP, base)
    assert (imp.base_rows, imp.kept_rows) == (20, 18)
    assert {g.key for g in imp.by_kind("cluster")} == {0, 1}
    first5, _ = _measure(tiny, Selection(sort="toxicity DESC", limit=5))  # as Export writes
    assert (first5.base_rows, first5.kept_rows) == (40, 5)
    idx = json.loads((tiny / "idx.json").read_text())
    top5 = sorted(int(r) for r, i in idx.items() if i in TOXIC)[:5]  # ties: lowest row first
    want = {c: sum(truth_cluster(idx[str(r)]) == c for r in top5) for c in range(4)}
    assert {g.key: g.kept for g in first5.by_kind("cluster")} == want


def test_disproportion_flag_finds_planted_cluster(tiny: Path) -> None:
    imp, got = _measure(tiny, KEEP)
    assert imp.removal == pytest.approx(11 / 40)
    flags = imp.flags(factor=2.0)
    clusters = [g for g in flags if g.kind == "cluster"]
    assert [g.label for g in clusters] == ["foxes (#3)"]  # 8/10 removed >= 2 x 0.275
    assert flags[0].removal == 1.0  # the most disproportionate first: fox 8/8, bin 11/11 ...
    assert {g.label for g in flags} == {"foxes (#3)", "fox", "toxicity 0.82–0.9"}
    assert imp.flags(factor=4.0) == []  # 0.8 < 4 x 0.275 = 1.1: nothing can reach it
    con = wrap(connect("tiny", tiny))
    idx = json.loads((tiny / "idx.json").read_text())
    try:
        g = clusters[0]
        where = impact.group_clause(g, imp)
        removed = impact.gallery(con, Selection(), KEEP, where, removed=True, limit=20)
        kept = impact.gallery(con, Selection(), KEEP, where, removed=False, limit=20)
        fox = next(x for x in flags if x.label == "fox")
        fox_rows = impact.gallery(con, Selection(), KEEP, impact.group_clause(
            fox, imp, got["hits"]), removed=True, limit=20)  # fmt: skip
    finally:
        con.close()
    assert sorted(idx[str(r["row_id"])] for r in removed) == list(range(30, 38))
    assert sorted(idx[str(r["row_id"])] for r in kept) == [38, 39]
    assert sorted(idx[str(r["row_id"])] for r in fox_rows) == list(range(30, 38))


def test_long_tail_vanished_and_below(tiny: Path) -> None:
    imp, _ = _measure(tiny, KEEP, min_count=5)
    tail = imp.tail
    assert tail["vanished"] == []  # fox keeps its two owl rows
    assert tail["below"] == [("fox", 10, 2)]  # 10 rows before, 2 after: under 5
    strict = Selection(ranges={"toxicity": (None, 0.5)}, values={"cluster": [0, 1, 2]})
    imp2, _ = _measure(tiny, strict)
    assert [v[0] for v in imp2.tail["vanished"]] == ["fox", "owl"]
    s = imp2.summary()
    assert s["long_tail"]["vanished"] == 2 and s["flagged"] >= 1
    assert s["kept_rows"] == 27 and s["base_rows"] == 40
    assert imp2.tail["before"][0] >= imp2.tail["before"][-1]  # rank-frequency, descending


def test_export_manifest_records_impact(tiny: Path) -> None:
    from backend.export import export

    res = export("tiny", selection=KEEP, fmt="csv", out="kept", root=tiny)
    man = json.loads(res.manifest.read_text())
    assert man["impact"]["base"] == "whole dataset"
    assert (man["impact"]["base_rows"], man["impact"]["kept_rows"]) == (40, 29)
    flagged = {(f["kind"], f["group"]): f["removal_rate"] for f in man["impact"]["flags"]}
    assert flagged == {("cluster", "cluster (#3)"): 0.8, ("concept", "fox"): 0.8}
    assert man["recipe"]["selection"]["ranges"] == {"toxicity": [None, 0.5]}
    assert np.isclose(man["impact"]["removal_rate"], 11 / 40)


def test_impact_page_shows_the_planted_flag(tiny: Path, monkeypatch) -> None:
    """The Impact page on the current Selection: its counts and the flagged cluster are the
    planted ones; the flagged group's gallery lists its removed rows."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TAILSCOPE_HOME", str(tiny))
    at = AppTest.from_file(str(Path(__file__).parent.parent / "pages/6_Impact.py"),
                           default_timeout=60)  # fmt: skip
    at.session_state["ts.selections"] = {"tiny": KEEP}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    got = {m.label: m.value for m in at.metric}
    assert (got["Base rows"], got["Kept"], got["Removed overall"]) == ("40", "29", "27.5%")
    assert got["Groups over-removed"] == "2"  # cluster #3 and "fox" (no score catalog here)
    flags = at.selectbox(key="w.impact.flag")
    assert flags.options[0].startswith("cluster: cluster (#3)")
    text = " ".join(m.value for m in at.markdown)
    assert "Removed** · 8 of 10 rows" in text and "Kept** · 2 of 10 rows" in text
    assert any("caption language: not run" in c.value for c in at.caption)


def test_cli_impact_prints_the_flags(tiny: Path, monkeypatch, capsys) -> None:
    from backend.cli import main

    monkeypatch.setenv("TAILSCOPE_HOME", str(tiny))
    assert main(["impact", "tiny", "--where", "toxicity <= 0.5", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["base_rows"], s["kept_rows"], s["flagged"]) == (40, 29, 2)
    assert main(["impact", "tiny", "--where", "toxicity <= 0.5", "--subset", "x"]) == 2


def test_a_flag_needs_more_than_chance() -> None:
    """At a 0.4% overall rate, 1 removed row of 17 is 15x the rate but happens 6.6% of the
    time (binomial): not flagged; 3 of 20 (p = 7e-5) is."""
    imp = impact.Impact(1000, 996, [impact.Group("concept", 0, "arrows", 17, 16),
                                    impact.Group("concept", 1, "rare", 20, 17)])  # fmt: skip
    assert [g.label for g in imp.flags()] == ["rare"]
    assert [g.label for g in imp.flags(alpha=0.1)] == ["rare", "arrows"]


def test_summary_says_which_vocabulary(tiny: Path) -> None:
    con = wrap(connect("tiny", tiny))
    try:
        got = impact.dataset_inputs(con, "tiny", tiny)
    finally:
        con.close()
    imp, _ = _measure(tiny, KEEP)
    s = imp.attach(got).summary()
    assert s["vocab"] == "words" and "vocabulary 'words'" in s["sources"]["concepts"]
    assert "clusters" not in s["sources"]  # the fixture's clusters come from no map step


def test_safety_threshold_shows_its_impact(tiny: Path, monkeypatch) -> None:
    """On Safety's Thresholds view, moving the toxicity threshold to 0.5 redraws the impact:
    the planted counts, the cluster and concept flags, and not the thresholded score's own bins."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TAILSCOPE_HOME", str(tiny))
    at = AppTest.from_file(str(Path(__file__).parent.parent / "pages/5_Safety.py"),
                           default_timeout=60)  # fmt: skip
    at.session_state["w.safety.view"] = "Thresholds"
    at.session_state["w.safety.t::toxicity"] = 0.5
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    got = {m.label: m.value for m in at.metric}
    assert (got["Base rows"], got["Kept"], got["Groups over-removed"]) == ("40", "29", "2")
    flags = at.selectbox(key="w.safety-impact.flag").options
    assert [f.split(" — ")[0] for f in flags] == ["cluster: cluster (#3)", "concept: fox"]
    at.slider(key="w.safety.t::toxicity").set_value(0.95).run()  # removes nothing now
    assert {m.label: m.value for m in at.metric}["Kept"] == "40"
