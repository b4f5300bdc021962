"""Cluster mixtures: allocations exact to a row, draws reproducible by seed, the weight column
hitting the requested cluster shares within sampling error, and a saved mixture recorded in
its subset's export manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from backend import mixture
from backend.mixture import MixtureError, Pool

# 100 rows in 4 clusters of very different sizes: 70, 20, 8, 2
SIZES = {0: 70, 1: 20, 2: 8, 3: 2}


def make_pool() -> Pool:
    clusters = np.concatenate([np.full(n, c) for c, n in SIZES.items()])
    rng = np.random.default_rng(0)
    rng.shuffle(clusters)  # clusters interleaved in row order, as on a real map
    return Pool(np.arange(100, dtype=np.int64) * 3, clusters.astype(np.int64))


def test_flatten_and_match_weights() -> None:
    p = make_pool()
    assert mixture.flatten(p.counts()) == {0: 0.25, 1: 0.25, 2: 0.25, 3: 0.25}
    assert mixture.shares(p.counts()) == {0: 0.7, 1: 0.2, 2: 0.08, 3: 0.02}
    assert mixture.normalise({0: 2, 1: 2, 9: 5}, p.counts()) == {0: 0.5, 1: 0.5}  # 9: no rows
    with pytest.raises(MixtureError, match="zero"):
        mixture.normalise({0: 0, 1: 0}, p.counts())
    with pytest.raises(MixtureError, match="≥ 0"):
        mixture.normalise({0: -1}, p.counts())


def test_allocation_is_exact_to_one_row() -> None:
    """Largest remainder: every cluster within one row of w·rows, the total exactly rows."""
    w = {0: 0.5, 1: 0.3, 2: 0.15, 3: 0.05}
    for rows in (0, 1, 7, 33, 1000):
        got = mixture.allocate(w, rows)
        assert sum(got.values()) == rows
        assert all(abs(got[c] - w[c] * rows) < 1 for c in w)
    assert mixture.allocate(mixture.flatten({0: 1, 1: 1, 2: 1}), 4) == {0: 2, 1: 1, 2: 1}


def test_resample_reproducible_and_hits_weights() -> None:
    p = make_pool()
    w = mixture.flatten(p.counts())
    a = mixture.resample(p, w, 40, seed=7, replace=True)
    b = mixture.resample(p, w, 40, seed=7, replace=True)
    c = mixture.resample(p, w, 40, seed=8, replace=True)
    assert np.array_equal(a.row_ids, b.row_ids) and not np.array_equal(a.row_ids, c.row_ids)
    assert len(a.row_ids) == 40 and a.drawn == {0: 10, 1: 10, 2: 10, 3: 10}
    cluster_of = dict(zip(p.row_ids.tolist(), p.clusters.tolist(), strict=True))
    got = np.bincount([cluster_of[int(r)] for r in a.row_ids], minlength=4)
    assert got.tolist() == [10, 10, 10, 10]  # the drawn rows really are from those clusters
    assert len(np.unique(a.row_ids[np.isin(a.row_ids, p.row_ids[p.clusters == 3])])) <= 2
    # without replacement: unique rows; cluster 3 (2 rows) cannot give 10, said so
    d = mixture.resample(p, w, 40, seed=7, replace=False)
    assert len(np.unique(d.row_ids)) == len(d.row_ids) == 30
    assert d.drawn == {0: 10, 1: 10, 2: 8, 3: 2}
    assert any("cluster 2: 10 rows asked, it has 8" in n for n in d.notes)


def test_weight_column_hits_weights_within_sampling_error() -> None:
    """Drawing M rows i.i.d. in proportion to the weight column gives cluster c a
    Binomial(M, w_c) count: its share is within 4 standard deviations, sqrt(w(1-w)/M), of w_c
    (a false failure has probability < 6.4e-5 per cluster, < 3e-4 for four; seeded, so the
    check is also deterministic)."""
    p = make_pool()
    w = {0: 0.1, 1: 0.2, 2: 0.3, 3: 0.4}
    col = mixture.row_weights(p, w)
    assert col.mean() == pytest.approx(1.0)
    for c, share in w.items():  # exactly: the column's mass per cluster is its weight
        assert col[p.clusters == c].sum() / col.sum() == pytest.approx(share)
    m = 20_000
    draw = np.random.default_rng(1).choice(len(col), size=m, p=col / col.sum())
    got = np.bincount(p.clusters[draw], minlength=4) / m
    for c, share in w.items():
        assert abs(got[c] - share) <= 4 * np.sqrt(share * (1 - share) / m), c


def test_concept_preview_expected_counts() -> None:
    p = make_pool()
    in3 = p.row_ids[p.clusters == 3]
    hits = (np.concatenate([in3, p.row_ids[:5]]), np.array([0, 0, 1, 1, 1, 1, 1]), ["rare", "x"])
    hits = (hits[0][np.argsort(hits[0])], hits[1][np.argsort(hits[0])], hits[2])
    prev = {d["concept"]: d for d in mixture.concept_preview(p, {3: 1.0}, 50, hits)}
    assert prev["rare"]["now"] == 2 and prev["rare"]["expected"] == pytest.approx(50.0)


@pytest.fixture
def clustered(workspace: Path, tmp_path: Path) -> Path:
    from backend.columns import add_columns
    from backend.ingest import build
    from backend.store import connect

    src = tmp_path / "m.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["url", "caption"])
        for i in range(30):
            w.writerow([f"https://x.example/{i}.jpg", f"row {i}"])
    build("mix", src, "csv", root=workspace, workers=1)
    con = connect("mix", workspace)
    ids = [r for (r,) in con.execute("SELECT row_id FROM samples ORDER BY row_id").fetchall()]
    con.close()
    clusters = [None if i == 29 else i % 3 for i in range(30)]
    add_columns("mix", pa.table({"row_id": pa.array(ids, pa.int64()),
                                 "cluster": pa.array(clusters, pa.int32())}), workspace)
    return workspace


def test_cli_saves_subset_and_export_records_mixture(clustered: Path, capsys) -> None:
    from backend.cli import main
    from backend.export import export
    from backend.subsets import get

    assert main(["mixture", "mix", "--flatten", "--rows", "12", "--seed", "3",
                 "--save", "flat12"]) == 0
    out = capsys.readouterr().out
    assert "12 draws" in out and "1 rows without a cluster" in out
    sub = get("mix", "flat12", clustered)
    assert sub.count == 12  # without replacement: 4 + 4 + 4 distinct rows
    res = export("mix", subset="flat12", fmt="csv", out="flat12", root=clustered)
    man = json.loads(res.manifest.read_text())
    assert man["mixture"]["seed"] == 3 and man["mixture"]["drawn"] == {"0": 4, "1": 4, "2": 4}
    again = main(["mixture", "mix", "--flatten", "--rows", "12", "--seed", "3",
                  "--save", "flat12b"])
    assert again == 0 and np.array_equal(get("mix", "flat12b", clustered).row_ids, sub.row_ids)
    assert main(["mixture", "mix", "--weights", "0=1,1=0", "--weights-out", "w01"]) == 0
    import pyarrow.parquet as pq

    t = pq.read_table(clustered / "mix" / "mixtures" / "w01.weights.parquet").to_pydict()
    assert {c for c, w in zip(t["cluster"], t["weight"], strict=True) if w > 0} == {0}


def test_mixtures_page_flatten_and_save(clustered: Path) -> None:
    """The Mixtures page opens at the selection's own shares (a draw of every row changes
    nothing); "Flatten" then "Save draw as subset" saves the CLI's flattened draw."""
    from streamlit.testing.v1 import AppTest

    from backend.subsets import get

    at = AppTest.from_file(str(Path(__file__).parent.parent / "pages/7_Mixtures.py"),
                           default_timeout=60)  # fmt: skip
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.slider] == [1.0, 1.0, 0.9]  # 10, 10, 9 rows: shares as now
    assert any("29 rows drawn of 29 asked" in c.value and "1 rows of the selection have no "
               "cluster" in c.value for c in at.caption)  # fmt: skip
    at.button[0].click().run()  # Flatten
    at.number_input(key="w.mixture.n").set_value(12).run()
    at.number_input(key="w.mixture.seed").set_value(3).run()
    at.text_input(key="w.mixture.name").set_value("ui12").run()
    next(b for b in at.button if b.label == "Save draw as subset").click().run()
    assert not at.exception and any("Saved subset" in s.value for s in at.success)
    from backend.cli import main

    assert main(["mixture", "mix", "--flatten", "--rows", "12", "--seed", "3",
                 "--save", "c12"]) == 0
    ui, cli = get("mix", "ui12", clustered), get("mix", "c12", clustered)
    assert ui.count == 12 and np.array_equal(ui.row_ids, cli.row_ids)


def test_cli_match_another_subsets_mixture(clustered: Path, capsys) -> None:
    """--match S takes S's cluster shares: a subset of 6 cluster-0 rows and 3 cluster-1 rows
    asks 2:1, so a 9-row draw is 6 + 3."""
    from backend import subsets
    from backend.cli import main
    from backend.selection import Selection
    from backend.store import connect

    con = connect("mix", clustered)
    c0 = [r for (r,) in con.execute("SELECT row_id FROM samples WHERE cluster = 0 "
                                    "ORDER BY row_id LIMIT 6").fetchall()]  # fmt: skip
    c1 = [r for (r,) in con.execute("SELECT row_id FROM samples WHERE cluster = 1 "
                                    "ORDER BY row_id LIMIT 3").fetchall()]  # fmt: skip
    con.close()
    subsets.save("mix", "two-to-one", Selection(row_ids=tuple(c0 + c1)), clustered)
    assert main(["mixture", "mix", "--match", "two-to-one", "--rows", "9", "--save", "m9"]) == 0
    rec = mixture.record_of("mix", "m9", clustered)
    assert rec["drawn"] == {"0": 6, "1": 3}
    assert rec["weights"] == {"0": pytest.approx(2 / 3), "1": pytest.approx(1 / 3)}
    assert main(["mixture", "mix", "--flatten", "--weights", "0=1"]) == 2  # one way only
    assert "exactly one of" in capsys.readouterr().err
