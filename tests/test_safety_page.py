"""The Safety page headless (AppTest) on the 600-row demo after `score` and `dedup`: threshold
counts and margins against SQL, "keep" composing with Browse, per-cluster/concept rates, the
planted exact duplicate groups, keep-one-per-group, NSFW blurring; and boolean ``values`` in the
Selection."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from conftest import copy_demo, count_text, open_page, run_ok
from streamlit.testing.v1 import AppTest

from backend import safety_dups, safety_scores
from backend.columns import add_columns
from backend.concepts import vocab
from backend.concepts.run import analyse, load, rows_with
from backend.dedup import dedup
from backend.map_files import clusters_path
from backend.safety_scores import by_column
from backend.selection import BadSelection, Selection
from backend.store import connect

SAFETY, BROWSE = "pages/5_Safety.py", "pages/1_Browse.py"
TIMEOUT = 120
N_CLUSTERS = 3


@pytest.fixture(scope="module")
def home(demo_score_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's scored demo (toxicity, nsfw, quality), deduplicated, with a small
    cluster column (row_id % 3, labels in clusters.json), one concept column and the
    `concepts` step's caption hits of a two-concept vocabulary."""
    root = copy_demo(demo_score_run["home"], tmp_path_factory.mktemp("safety_page_ws"))
    dedup("demo", root=root)
    con = connect("demo", root)
    got = con.execute("SELECT row_id, caption FROM samples ORDER BY row_id").fetchall()
    ids, caps = [r[0] for r in got], [r[1] for r in got]
    con.close()
    add_columns("demo", pa.table({
        "row_id": pa.array(ids, pa.int64()),
        "cluster": pa.array([i % N_CLUSTERS for i in ids], pa.int32()),
        "concept_grass": pa.array(["grass" in (c or "").lower() for c in caps], pa.bool_()),
    }), root)  # fmt: skip
    path = clusters_path("demo", root)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [{"cluster": k, "label": f"group {k}", "size": 0} for k in range(N_CLUSTERS)]
    path.write_text(json.dumps({"clusters": labels}))
    analyse("demo", vocab.build("shapes", [("circle", ["circle"]), ("square", ["square"])]),
            root)  # fmt: skip
    return root


@pytest.fixture
def ws(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    return home


def sql(home: Path, query: str, params: list | None = None) -> list[tuple]:
    con = connect("demo", home)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def safety_page(view: str | None = None) -> AppTest:
    at = open_page(SAFETY, timeout=TIMEOUT)
    if view:
        at.session_state["w.safety.view"] = view
        run_ok(at)
    return at


def metric(at: AppTest, label: str) -> int:
    (m,) = [m for m in at.metric if m.label == label]
    return int(m.value.replace(",", ""))


def keys_by_heading(at: AppTest) -> dict[str, list[str]]:
    """Card keys in page order, under the last ##### heading before them."""
    out: dict[str, list[str]] = {}
    current = ""
    for m in at.markdown:
        if m.value.startswith("##### "):
            current = m.value
            out[current] = []
        for k in re.findall(r'title="key ([^"]+)"', m.value):
            out.setdefault(current, []).append(html.unescape(k))
    return out


def test_boolean_values_in_the_selection():
    con = duckdb.connect()
    con.execute("CREATE TABLE samples AS SELECT range AS row_id, range % 3 = 0 AS rep, "
                "range::DOUBLE AS x FROM range(10)")  # fmt: skip
    cols = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE samples)").fetchall())
    for vals, want in (([True], [0, 3, 6, 9]), ([False], [1, 2, 4, 5, 7, 8])):
        where, params = Selection(values={"rep": vals}).where(cols)
        got = con.execute(f"SELECT row_id FROM samples WHERE {where} ORDER BY 1", params)
        assert [r[0] for r in got.fetchall()] == want
    with pytest.raises(BadSelection, match="true/false"):
        Selection(values={"rep": ["yes"]}).where(cols)
    with pytest.raises(BadSelection, match="not a number"):
        Selection(values={"x": [True]}).where(cols)  # a bool is no number
    assert Selection(values={"rep": [True]}).describe() == ["rep"]
    back = Selection.from_dict(json.loads(json.dumps(Selection(values={"rep": [True]}).to_dict())))
    assert back.values == {"rep": [True]}


def test_keep_intersects_ranges_and_blur_picks_rows_above_the_nsfw_threshold():
    tox, blur = by_column("toxicity"), by_column("blur")
    assert safety_scores.keep(Selection(), tox, 0.4).ranges == {"toxicity": (None, 0.4)}
    sel = Selection(ranges={"toxicity": (0.1, 0.3)})
    assert safety_scores.keep(sel, tox, 0.4).ranges["toxicity"] == (0.1, 0.3)
    assert safety_scores.keep(sel, tox, 0.2).ranges["toxicity"] == (0.1, 0.2)
    assert safety_scores.keep(Selection(), blur, 50.0).ranges == {"blur": (50.0, None)}
    rows = [{"row_id": 1, "nsfw": 0.9}, {"row_id": 2, "nsfw": 0.1}, {"row_id": 3, "nsfw": None}]
    assert safety_scores.blurred(rows, 0.5) == {1}
    assert safety_scores.slider_bounds(0.0002, 0.9999) == (0.0, 1.0, 0.001)
    lo, hi, step = safety_scores.slider_bounds(0.68, 5303.9)
    assert lo <= 0.68 and hi >= 5303.9 and step == 20
    assert safety_scores.slider_bounds(0.68, 5303.9, 50.0)[2] == 10  # 50 is a position


def test_threshold_counts_and_margin_match_sql(ws: Path):
    at = safety_page("Thresholds")
    assert at.session_state["w.safety.score"] == "toxicity"
    values = dict(sql(ws, "SELECT key, toxicity FROM samples"))
    for t in (0.5, 0.3):
        at.slider(key="w.safety.t::toxicity").set_value(t)
        run_ok(at)
        (want,) = sql(ws, "SELECT count(*) FROM samples WHERE NOT coalesce(toxicity <= ?, FALSE)",
                      [t])[0]  # fmt: skip
        assert want > 0
        assert metric(at, "Removed by the threshold") == want
        shown = keys_by_heading(at)
        removed = next(v for k, v in shown.items() if "Removed" in k and f"{t:g}" in k)
        kept = next(v for k, v in shown.items() if "Kept" in k and f"{t:g}" in k)
        assert len(removed) == len(kept) == safety_scores.MARGIN
        above = sorted((v - t, k) for k, v in values.items() if v > t)
        below = sorted((t - v, k) for k, v in values.items() if v <= t)
        assert removed == [k for _, k in above[: len(removed)]]  # nearest first
        assert kept == [k for _, k in below[: len(kept)]]


def test_keep_adds_the_range_and_browse_agrees(ws: Path):
    at = safety_page("Thresholds")
    at.slider(key="w.safety.t::toxicity").set_value(0.3)
    run_ok(at)
    at.button(key="safety-keep").click()
    run_ok(at)
    sel = at.session_state["ts.selections"]["demo"]
    assert sel.ranges["toxicity"][1] == pytest.approx(0.3)
    assert metric(at, "Removed by the threshold") == 0  # the selection holds only kept rows
    (want,) = sql(ws, "SELECT count(*) FROM samples WHERE toxicity <= 0.3")[0]
    (total,) = sql(ws, "SELECT count(*) FROM samples")[0]
    assert count_text(at).startswith(f"{want} of {total} rows match")
    at.switch_page(BROWSE)
    run_ok(at)
    assert count_text(at).startswith(f"{want} of {total} rows match")


def test_rates_per_cluster_and_concept_match_sql(ws: Path):
    at = safety_page("By cluster / concept")
    df = at.dataframe[0].value
    assert set(df["kind"]) == {"cluster", "concept"}
    col = "toxicity > 0.8"  # the default threshold, chosen from the demo's planted truth
    assert list(df[col]) == sorted(df[col], reverse=True)  # highest rate first
    got = sql(ws, "SELECT cluster, count(*), avg((toxicity > 0.8)::DOUBLE), "
                  "avg((blur < 50)::DOUBLE) FROM samples GROUP BY 1")  # fmt: skip
    for k, n, tox, blur in got:
        (row,) = df[df["group"] == f"group {k} (#{k})"].to_dict("records")
        assert row["rows"] == n
        assert row[col] == pytest.approx(tox) and row["blur < 50"] == pytest.approx(blur)
    (n_grass,) = sql(ws, "SELECT count(*) FROM samples WHERE concept_grass")[0]
    (row,) = df[df["group"] == "grass"].to_dict("records")  # a concept column
    assert row["rows"] == n_grass
    result = load("demo", "shapes", ws)
    for concept in ("circle", "square"):  # the concepts step's caption hits
        ids = rows_with(result, [concept]).tolist()
        ((n, tox),) = sql(ws, "SELECT count(*), avg((toxicity > 0.8)::DOUBLE) FROM samples "
                              "WHERE row_id IN (SELECT unnest(?::BIGINT[]))", [ids])  # fmt: skip
        (row,) = df[df["group"] == concept].to_dict("records")
        assert row["rows"] == n > 0 and row[col] == pytest.approx(tox)


def test_duplicates_view_lists_the_planted_exact_groups(ws: Path):
    truth = json.loads((ws / "demo" / "source" / "ground_truth.json").read_text())
    keys = dict(sql(ws, "SELECT key, row_id FROM samples"))
    planted = {frozenset(g) for g in truth["exact_duplicates"] if all(k in keys for k in g)}
    assert planted
    at = safety_page("Duplicates")
    assert at.session_state["w.safety.kind"] == "dup_exact_group"
    shown: list[list[str]] = []
    reps: list[str] = []
    for m in at.markdown:
        if re.match(r"\*\*\d+ rows\*\* · group \d+", m.value):
            shown.append([])
        elif "★ representative" in m.value:
            reps.append(m.value)
        for k in re.findall(r'title="key ([^"]+)"', m.value):
            shown[-1].append(html.unescape(k))
    assert len(shown) == min(len(planted), 10)
    assert [len(g) for g in shown] == sorted((len(g) for g in shown), reverse=True)
    assert {frozenset(g) for g in shown} <= planted
    if len(planted) <= 10:
        assert {frozenset(g) for g in shown} == planted
    for group in shown:  # the representative (lowest row) comes first
        assert keys[group[0]] == min(keys[k] for k in group)
    assert len(reps) == len(shown)


def test_keep_one_per_group_gives_the_sql_count(ws: Path):
    at = safety_page("Duplicates")
    at.toggle(key="w.safety.keep_one").set_value(True)
    run_ok(at)
    sel = at.session_state["ts.selections"]["demo"]
    assert sel.values == {safety_dups.REP: [True]}
    (want,) = sql(ws, "SELECT count(*) FROM samples WHERE is_dup_rep")[0]
    (total,) = sql(ws, "SELECT count(*) FROM samples")[0]
    assert 0 < want < total
    assert count_text(at).startswith(f"{want} of {total} rows match")
    assert "is_dup_rep" in [b.label for b in at.button]  # its removable chip
    at.toggle(key="w.safety.keep_one").set_value(False)
    run_ok(at)
    assert safety_dups.REP not in at.session_state["ts.selections"]["demo"].values


def test_images_above_the_nsfw_threshold_start_blurred(ws: Path):
    values = dict(sql(ws, "SELECT row_id, nsfw FROM samples"))
    t = float(np.quantile(list(values.values()), 0.5))
    at = safety_page("Thresholds")
    at.session_state["w.safety.score"] = "nsfw"
    run_ok(at)
    at.slider(key="w.safety.t::nsfw").set_value(round(t, 3))
    run_ok(at)
    t = at.session_state["ts.safety.thresholds"]["nsfw"]
    reveal = {int(w.key.split("-")[1]) for w in at.toggle if str(w.key).startswith("reveal-")}
    assert reveal and all(values[r] > t for r in reveal)
    shown = keys_by_heading(at)
    removed = next(v for k, v in shown.items() if "Removed" in k)
    assert len(reveal) == len(removed)  # every removed card, no kept one
    rid = min(reveal)
    at.toggle(key=f"reveal-{rid}").set_value(True)
    run_ok(at)
    assert at.toggle(key=f"reveal-{rid}").value is True


def test_without_scores_the_page_says_what_to_run(demo_pristine: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    copy_demo(demo_pristine, tmp_path)
    monkeypatch.setenv("TAILSCOPE_HOME", str(tmp_path))
    at = safety_page()
    text = " ".join(m.value for m in at.markdown)
    assert "python -m backend score demo" in text and "python -m backend dedup demo" in text


def test_a_skipped_duplicate_kind_says_not_run_never_none_found(ws: Path):
    """The fixture's dedup ran without image embeddings: semantic duplicates were skipped, so
    their column is all NULL. The page must say "not run", why, and the command, not "0"."""
    (nulls,) = sql(ws, "SELECT count(*) FILTER (WHERE dup_semantic_group IS NOT NULL) "
                       "FROM samples")[0]  # fmt: skip
    assert nulls == 0
    at = safety_page("Duplicates")
    note = " ".join(c.value for c in at.caption)
    assert "semantic duplicates (`dup_semantic_group`)" in note and "Not run" in note
    labels = list(at.segmented_control(key="w.safety.kind").options)  # as formatted
    assert "Semantic · not run" in labels and not any(x.startswith("Semantic · 0") for x in labels)
    assert any(x.startswith("Exact · ") and x != "Exact · not run" for x in labels)
    at.session_state["w.safety.kind"] = "dup_semantic_group"
    run_ok(at)
    (warn,) = [w.value for w in at.warning if "Not run" in w.value]
    assert "semantic duplicates" in warn and "embed" in warn  # why: no image embeddings
    assert "python -m backend embed demo && python -m backend dedup demo" in [
        c.value for c in at.code
    ]
    assert not [s for s in at.success if "No duplicate group" in s.value]


def test_flag_counts_show_their_measured_precision_and_recall(ws: Path):
    """Beside the counts: each check's precision and recall on the demo's planted truth (the
    committed figures of backend.scorer_eval); the threshold view says it at its threshold."""
    at = safety_page()
    (line,) = [c.value for c in at.caption if c.value.startswith("Measured on the demo's")]
    assert "`toxicity > 0.8 OR profanity > 0` precision 1.00, recall 1.00" in line
    assert "nothing nsfw is planted in the demo" in line
    at = safety_page("Thresholds")
    at.session_state["w.safety.score"] = "toxicity"
    run_ok(at)
    assert at.slider(key="w.safety.t::toxicity").value == pytest.approx(0.8)
    assert any(c.value.startswith("On the ") and "toxicity > 0.8 flags" in c.value
               for c in at.caption)  # fmt: skip
