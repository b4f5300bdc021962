"""Known pools read as they ship (tests/pool_fixtures.py): each profile is detected, its shipped
scores become canonical columns with provenance, ``domain``/``tld`` are derived, every page
opens on it with data; LAION's NSFW and watermark counts on the Safety page equal a direct
count of ``punsafe``/``pwatermark`` > 0.5 and name their source; bad input gets one clear line.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from backend import profiles, safety_rates
from backend.catalog import summary
from backend.cli import main
from backend.executor import Executor
from backend.ingest import build
from backend.safety_scores import by_column
from backend.scores import catalog, pairs
from backend.selection import Selection
from backend.store import connect
from tests import pool_fixtures as pf

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 120
PAGES = ("pages/1_Browse.py", "pages/2_Search.py", "pages/3_Map.py", "pages/4_Concepts.py",
         "pages/5_Safety.py", "pages/8_Subsets.py", "pages/9_Export.py")  # fmt: skip
EXPECTED = {  # profile -> canonical score -> the pool's column
    "laion": {"nsfw": "punsafe", "watermark": "pwatermark", "clip_similarity": "similarity"},
    "datacomp": {"clip_similarity": "clip_b32_similarity_score",
                 "clip_similarity_l14": "clip_l14_similarity_score", "faces": "face_bboxes"},
    "coyo": {"nsfw": "nsfw_score_opennsfw2", "watermark": "watermark_score",
             "clip_similarity": "clip_similarity_vitb32",
             "clip_similarity_l14": "clip_similarity_vitl14",
             "aesthetic": "aesthetic_score_laion_v2", "faces": "num_faces"},
    "cc": {},
    "hf": {},
}  # fmt: skip


def _build(name: str, source: Path, root: Path, **kw) -> None:
    build(name, source, root=root, executor=Executor("inline"), **kw)


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    """One workspace holding every fixture pool, built as detected (no --profile)."""
    src = tmp_path_factory.mktemp("pools_src")
    root = tmp_path_factory.mktemp("pools_ws")
    truths = {}
    for name, writer in pf.WRITERS.items():
        path, truths[name] = writer(src / name)
        truths[name]["path"] = path
        _build(name, path.parent, root)
    return root, truths


def sql(root: Path, name: str, query: str, params: list | None = None) -> list[tuple]:
    con = connect(name, root)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_pool_is_detected_and_its_scores_mapped(pools, name: str):
    root, truths = pools
    info = summary(name, root)
    assert info["profile"]["name"] == name and info["profile"]["forced"] is False
    assert info["rows"] == truths[name]["rows"]
    shipped = {k: v for k, v in info["scores"].items() if v["source"] == "shipped"}
    assert {k: v["origin"] for k, v in shipped.items()} == EXPECTED[name]
    for canonical, column in EXPECTED[name].items():
        if column == "face_bboxes":  # faces are the boxes counted
            got = sql(root, name, "SELECT faces FROM samples ORDER BY row_id")
            assert [r[0] for r in got] == truths[name]["faces"]
            continue
        (bad,) = sql(root, name, f'SELECT count(*) FROM samples WHERE "{canonical}" IS DISTINCT '
                                 f'FROM "{column}"')[0]  # fmt: skip
        assert bad == 0, f"{canonical} differs from {column} in {bad} rows"


@pytest.mark.parametrize("name", ["laion", "datacomp", "coyo", "cc"])
def test_domain_and_tld_are_the_planted_registered_domains(pools, name: str):
    root, truths = pools
    got = sql(root, name, "SELECT domain, tld FROM samples ORDER BY row_id")
    assert [r[0] for r in got] == truths[name]["domain_of"]
    assert [r[1] for r in got] == truths[name]["tld_of"]
    assert dict(Counter(r[0] for r in got)) == truths[name]["domains"]


def test_url_only_rows_keep_the_pool_width_and_height(pools):
    root, truths = pools
    got = sql(root, "laion", "SELECT width, height FROM samples ORDER BY row_id")
    assert [r[0] for r in got] == truths["laion"]["width"]
    assert [r[1] for r in got] == truths["laion"]["height"]
    got = sql(root, "hf", "SELECT width, height FROM samples ORDER BY row_id")  # measured
    assert [r[0] for r in got] == truths["hf"]["width"]


def test_info_json_lists_scores_with_provenance(pools, monkeypatch, capsys):
    root, truths = pools
    monkeypatch.setenv("TAILSCOPE_HOME", str(root))
    assert main(["info", "laion", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["profile"]["name"] == "laion"
    nsfw = info["scores"]["nsfw"]
    assert nsfw == {**nsfw, "column": "nsfw", "source": "shipped", "origin": "punsafe"}
    assert nsfw["label"] == "shipped: LAION's CLIP-based NSFW detector (punsafe)"
    assert "model" in nsfw and nsfw["model"] != "unknown"
    assert main(["info", "laion"]) == 0
    text = capsys.readouterr().out
    assert "profile: laion" in text and "(punsafe)" in text


# -- forcing, mapping by hand, and bad input ---------------------------------------------------


def test_a_profile_forced_on_the_wrong_schema_names_the_missing_columns(tmp_path, workspace,
                                                                        capsys):  # fmt: skip
    path, _ = pf.coyo(tmp_path / "coyo", n=20)
    code = main(["build", "x", "--source", str(path), "--profile", "laion"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: --profile laion")
    assert "lacks similarity" in err[0] and "nsfw_score_opennsfw2" in err[0]  # its columns
    assert not (workspace / "x" / "store.duckdb").exists()


def test_forced_profile_and_map_column(tmp_path, workspace):
    """A plain table (no pool detected) mapped by hand; a COYO file forced as coyo."""
    n = 40
    rng = np.random.default_rng(3)
    risk = rng.random(n)
    pq.write_table(pa.table({"link": [f"https://a{i % 3}.example.com/{i}.jpg" for i in range(n)],
                             "alt": [f"caption {i}" for i in range(n)],
                             "risk": risk}), tmp_path / "plain.parquet")  # fmt: skip
    assert main(["build", "plain", "--source", str(tmp_path / "plain.parquet"),
                 "--map-column", "nsfw=risk", "--executor", "in-process"]) == 0  # fmt: skip
    info = summary("plain", workspace)
    assert info["profile"]["name"] is None and info["profile"]["hand_mapped"] == ["nsfw"]
    assert info["scores"]["nsfw"]["origin"] == "risk"
    assert "mapped by hand" in info["scores"]["nsfw"]["label"]
    got = [r[0] for r in sql(workspace, "plain", "SELECT nsfw FROM samples ORDER BY row_id")]
    assert got == pytest.approx(risk.tolist())
    path, _ = pf.coyo(tmp_path / "coyo", n=20)
    assert main(["build", "c", "--source", str(path), "--profile", "coyo",
                 "--executor", "in-process"]) == 0  # fmt: skip
    assert summary("c", workspace)["profile"] == {**summary("c", workspace)["profile"],
                                                  "name": "coyo", "forced": True}  # fmt: skip


def test_a_hand_mapping_to_a_missing_column_is_one_clear_line(tmp_path, workspace, capsys):
    path, _ = pf.laion(tmp_path / "laion", n=10)
    assert main(["build", "x", "--source", str(path), "--map-column", "nsfw=nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column 'nope'" in err[0] and "punsafe" in err[0]
    assert main(["build", "x", "--source", str(path), "--map-column", "nsfw"]) == 2
    assert "canonical=column" in capsys.readouterr().err


def test_cc_tsv_with_embedded_tabs_and_newlines_keeps_every_line_accounted(tmp_path, workspace):
    path, truth = pf.cc12m(tmp_path / "cc", n=50, bad=True)
    res = build("cc", path, root=workspace, executor=Executor("inline"))
    assert res.rows == truth["rows"] == 51 and res.rejects == truth["malformed"] == 2
    assert res.reasons == {"malformed row": 2}
    details = [r[0] for r in sql(workspace, "cc", "SELECT detail FROM rejects ORDER BY key")]
    assert any("an embedded tab" in d for d in details)
    assert any("an embedded newline" in d for d in details)
    caps = {r[0] for r in sql(workspace, "cc", "SELECT caption FROM samples")}
    assert '"quoted" caption with a quote at the start' in caps  # quotes are text in CC TSVs
    assert summary("cc", workspace)["profile"]["name"] == "cc"


def test_cc3m_order_caption_then_url_is_read_by_which_field_is_a_url(tmp_path, workspace):
    path, truth = pf.cc12m(tmp_path / "cc3m", n=30, caption_first=True)
    build("cc3m", path, root=workspace, executor=Executor("inline"))
    got = sql(workspace, "cc3m", "SELECT url, caption FROM samples ORDER BY row_id")
    assert [r[0] for r in got] == truth["urls"] and [r[1] for r in got] == truth["captions"]


def test_detect_is_by_schema():
    assert profiles.detect(["URL", "TEXT", "similarity", "punsafe"]).name == "laion"
    assert profiles.detect(["uid", "url", "text", "clip_b32_similarity_score"]).name == "datacomp"
    assert profiles.detect(["url", "caption"]) is None
    assert profiles.detect(["url", "caption"], headerless=True).name == "cc"
    assert profiles.detect(["image", "text"], image_struct=True).name == "hf"


# -- shipped and computed side by side ---------------------------------------------------------


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HF images with a shipped NSFW column (mapped by hand), then open_nsfw computed too."""
    from backend.safety.run import score

    src, root = tmp_path_factory.mktemp("both_src"), tmp_path_factory.mktemp("both_ws")
    path, _ = pf.hf(src, n=60)
    table = pq.read_table(path)
    shipped = np.random.default_rng(5).random(table.num_rows)
    pq.write_table(table.append_column("p_nsfw", pa.array(shipped, pa.float32())), path)
    _build("both", path, root, mapping={"nsfw": "p_nsfw"})
    rec = score("both", ["nsfw"], root=root)
    assert "nsfw" in rec["kept_shipped"] and "punsafe" not in rec["kept_shipped"]["nsfw"]
    assert "nsfw_computed" not in summary("both", root)["scores"]  # not recomputed
    score("both", ["nsfw"], root=root, recompute=True)
    return root


def test_recompute_keeps_both_and_the_shipped_one_unchanged(both: Path):
    cat = summary("both", both)["scores"]
    assert cat["nsfw"]["source"] == "shipped" and cat["nsfw"]["origin"] == "p_nsfw"
    assert cat["nsfw_computed"]["source"] == "computed"
    assert cat["nsfw_computed"]["label"].startswith("computed here: yahoo open_nsfw")
    assert pairs(cat) == [("nsfw", "nsfw_computed")]
    (bad,) = sql(both, "both", "SELECT count(*) FROM samples WHERE nsfw IS DISTINCT FROM p_nsfw")[0]
    assert bad == 0


def test_safety_page_shows_shipped_and_computed_agreement(both: Path, monkeypatch):
    monkeypatch.setenv("TAILSCOPE_HOME", str(both))
    at = page("pages/5_Safety.py", "both", view="Shipped vs computed")
    metrics = {m.label: m.value for m in at.metric}
    x, y = zip(*sql(both, "both", "SELECT nsfw, nsfw_computed FROM samples "
                                  "WHERE nsfw_computed IS NOT NULL"), strict=True)  # fmt: skip
    assert metrics["Rows with both"] == f"{len(x):,}"
    assert float(metrics["Pearson r"]) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-3)
    both_flag = sum(a > 0.5 and b > 0.5 for a, b in zip(x, y, strict=True))
    neither = sum(a <= 0.5 and b <= 0.5 for a, b in zip(x, y, strict=True))
    assert metrics["Agree on the flag"] == f"{(both_flag + neither) / len(x):.1%}"
    text = " ".join(c.value for c in at.caption)
    assert "shipped: mapped by hand with --map-column (p_nsfw)" in text
    assert "computed here: yahoo open_nsfw" in text
    labels = [m.label for m in at.metric]
    assert "NSFW images" in labels and "NSFW images · computed" in labels
    gap = max(abs(a - b) for a, b in zip(x, y, strict=True))  # the first card: the widest gap
    cards = [m.value for m in at.markdown if "vs computed" in m.value]
    assert cards and re.search(r"\[nsfw (\d\.\d\d) vs computed (\d\.\d\d)\]", cards[0])
    a, b = map(float, re.search(r"\[nsfw (\d\.\d\d) vs computed (\d\.\d\d)\]",
                                cards[0]).groups())  # fmt: skip
    assert abs(a - b) == pytest.approx(gap, abs=0.011)


# -- the pages ---------------------------------------------------------------------------------


def page(path: str, dataset: str, view: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.session_state["ts.dataset"] = dataset
    at.run()
    at.switch_page(path)
    at.run()
    if view:
        at.session_state["w.safety.view"] = view
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_laion_safety_counts_equal_a_direct_count_and_name_the_source(pools, monkeypatch):
    root, truths = pools
    monkeypatch.setenv("TAILSCOPE_HOME", str(root))
    at = page("pages/5_Safety.py", "laion")
    metrics = {m.label: m for m in at.metric}
    direct = pq.read_table(truths["laion"]["path"])
    punsafe = np.asarray(direct["punsafe"]); pwater = np.asarray(direct["pwatermark"])  # noqa: E702
    assert int(metrics["NSFW images"].value) == int((punsafe > 0.5).sum()) == truths["laion"][
        "nsfw_over"]  # fmt: skip
    assert int(metrics["Watermarks"].value) == int((pwater > 0.5).sum())
    assert "shipped: LAION's CLIP-based NSFW detector (punsafe)" in metrics["NSFW images"].help
    assert "shipped: LAION's watermark detector (pwatermark)" in metrics["Watermarks"].help
    sources = " ".join(c.value for c in at.caption)
    assert "`nsfw` shipped: LAION's CLIP-based NSFW detector (punsafe)" in sources
    assert "scores: `python -m backend score laion`" in sources  # shipped is not `score` run


def test_laion_threshold_slider_names_the_shipped_source(pools, monkeypatch):
    root, _ = pools
    monkeypatch.setenv("TAILSCOPE_HOME", str(root))
    at = page("pages/5_Safety.py", "laion", view="Thresholds")
    (slider,) = [s for s in at.slider if s.label.startswith("Threshold on `nsfw`")]
    assert "shipped: LAION's CLIP-based NSFW detector (punsafe)" in slider.label


def test_per_domain_rates_match_the_planted_domains(pools):
    root, truths = pools
    con = connect("laion", root)
    try:
        spec = by_column("nsfw")
        df = safety_rates.domain_rates(con, Selection(), [(spec, 0.5)])
    finally:
        con.close()
    doms = truths["laion"]["domain_of"]
    p = np.asarray(truths["laion"]["punsafe"])
    assert set(df["group"]) == set(doms) and set(df["kind"]) == {"domain"}
    for row in df.to_dict("records"):
        mask = np.array([d == row["group"] for d in doms])
        assert row["rows"] == mask.sum()
        assert row["nsfw > 0.5"] == pytest.approx(float((p[mask] > 0.5).mean()))


def test_browse_domain_facet_lists_counts_and_filters(pools, monkeypatch):
    root, truths = pools
    monkeypatch.setenv("TAILSCOPE_HOME", str(root))
    at = page("pages/1_Browse.py", "laion")
    (facet,) = [m for m in at.sidebar.multiselect if m.label == "Domain"]
    counts = truths["laion"]["domains"]
    assert set(facet.options) == {f"{d}  ({n:,})" for d, n in counts.items()}
    facet.select("bbc.co.uk").run()
    assert not at.exception
    shown = [m.value for m in at.markdown if 'class="ts-count"' in m.value][0]
    assert f"<b>{counts['bbc.co.uk']:,}</b>" in shown


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_page_opens_on_each_pool_with_data(pools, monkeypatch, name: str):
    root, truths = pools
    monkeypatch.setenv("TAILSCOPE_HOME", str(root))
    for path in PAGES:
        at = page(path, name)
        errors = [e.value for e in at.error]
        assert not errors, (path, errors)
        if path.endswith("Browse.py"):
            shown = [m.value for m in at.markdown if 'class="ts-count"' in m.value][0]
            assert f"{truths[name]['rows']:,}" in shown
        if path.endswith("Safety.py") and EXPECTED[name]:
            assert at.metric, "the shipped scores give the Safety page numbers"
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.session_state["ts.dataset"] = name
    at.run()
    home = " ".join(m.value for m in at.markdown)
    assert f"<b>{name}</b>" in home  # the profile on the dataset's card


def test_scores_catalog_without_a_profile_is_empty():
    assert catalog({}) == {}


def test_a_score_column_of_its_own_name_is_shipped_or_synthetic(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "ground_truth.json").write_text("{}")
    cat = catalog({"source": str(tmp_path / "demo")}, ["row_id", "aesthetic", "width"])
    assert list(cat) == ["aesthetic"] and cat["aesthetic"]["source"] == "synthetic"
    cat = catalog({"source": str(tmp_path)}, ["aesthetic"])
    assert cat["aesthetic"]["source"] == "shipped"
    assert cat["aesthetic"]["label"] == "shipped: the source's own column (aesthetic)"


def test_score_cli_keeps_shipped_scores_and_says_so(tmp_path, workspace, capsys):
    path, truth = pf.laion(tmp_path / "laion", n=30)
    assert main(["build", "l", "--source", str(path), "--executor", "in-process"]) == 0
    capsys.readouterr()
    assert main(["score", "l", "--scorers", "nsfw,clip", "--executor", "in-process"]) == 0
    out = capsys.readouterr()
    assert "kept shipped nsfw: nsfw is shipped: LAION's CLIP-based NSFW detector (punsafe)" \
        in out.err and "--recompute" in out.err  # fmt: skip
    assert "nothing to compute" in out.out
    got = [r[0] for r in sql(workspace, "l", "SELECT nsfw FROM samples ORDER BY row_id")]
    assert got == pytest.approx(truth["punsafe"])  # untouched


# -- img2dataset output joined back to its metadata by uid -------------------------------------


def _downloaded(folder: Path, meta_path: Path, take: list[int]) -> None:
    """img2dataset's WebDataset layout for rows ``take`` of a metadata parquet (+ one stray)."""
    import io
    import tarfile

    from PIL import Image

    meta = pq.read_table(meta_path).to_pylist()
    folder.mkdir(parents=True)
    items = [(i, meta[i]["uid"], meta[i]["url"], meta[i]["text"]) for i in take]
    items.append((999, "f" * 32, "https://stray.example.net/x.jpg", "not in the metadata"))
    with tarfile.open(folder / "00000.tar", "w") as tar:
        for n, (i, uid, url, text) in enumerate(items):
            buf = io.BytesIO()
            Image.new("RGB", (20 + n % 7, 16), (i % 255, 80, 120)).save(buf, format="JPEG")
            sidecar = {"url": url, "key": f"{n:09d}", "status": "success", "uid": uid,
                       "original_width": 640, "original_height": 480}  # fmt: skip
            for ext, data in ((".jpg", buf.getvalue()), (".txt", text.encode()),
                              (".json", json.dumps(sidecar).encode())):  # fmt: skip
                info = tarfile.TarInfo(f"{n:09d}{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_downloaded_shards_join_their_metadata_by_uid(tmp_path, workspace, capsys):
    meta, truth = pf.datacomp(tmp_path / "meta", n=40)
    take = list(range(0, 40, 2))  # half of the pool was downloaded
    _downloaded(tmp_path / "tars", meta, take)
    assert main(["build", "dl", "--source", str(tmp_path / "tars"), "--metadata", str(meta),
                 "--executor", "in-process"]) == 0  # fmt: skip
    assert "20 of 21 rows matched; 20 metadata rows were not downloaded" in capsys.readouterr().out
    info = summary("dl", workspace)
    assert info["profile"]["name"] == "datacomp" and info["profile"]["matched_rows"] == 20
    assert info["scores"]["clip_similarity"]["origin"] == "clip_b32_similarity_score"
    got = sql(workspace, "dl", "SELECT uid, clip_similarity, faces, meta_url FROM samples "
                               "ORDER BY row_id")  # fmt: skip
    by_uid = {u: i for i, u in enumerate(truth["uids"])}
    for uid, sim, faces, url in got[:-1]:
        i = by_uid[uid]
        assert sim == pytest.approx(truth["b32"][i], rel=1e-6) and faces == truth["faces"][i]
        assert url.endswith(".jpg")
    assert got[-1][1:] == (None, None, None)  # the stray row: kept, nothing invented
    # a rerun replaces the joined columns instead of piling up meta_meta_… copies
    from backend.metadata_join import join_metadata

    join_metadata("dl", meta, workspace)
    cols = [r[0] for r in sql(workspace, "dl", "DESCRIBE samples")]
    assert not [c for c in cols if c.startswith("meta_meta_")] and cols.count("faces") == 1


def test_a_source_column_named_like_a_canonical_score_is_kept_as_src(tmp_path, workspace):
    """LAION-400M's ``NSFW`` tag ("UNLIKELY"…) beside ``punsafe``: DuckDB names are
    case-insensitive, so the tag is kept as ``src_NSFW`` and ``nsfw`` is the probability."""
    path, truth = pf.laion(tmp_path / "l", n=12)
    table = pq.read_table(path)
    tags = ["NSFW" if p > 0.5 else "UNLIKELY" for p in truth["punsafe"]]
    pq.write_table(table.append_column("NSFW", pa.array(tags)), path)
    build("l4", path, root=workspace, executor=Executor("inline"))
    got = sql(workspace, "l4", "SELECT nsfw, src_NSFW FROM samples ORDER BY row_id")
    assert [r[0] for r in got] == pytest.approx(truth["punsafe"])
    assert [r[1] for r in got] == tags


def test_a_score_the_source_carries_under_its_own_name_is_not_overwritten(tmp_path, workspace):
    from backend.safety.run import score

    path, _ = pf.hf(tmp_path / "hf", n=8)
    own = np.linspace(0.05, 0.95, 8)
    pq.write_table(pq.read_table(path).append_column("nsfw", pa.array(own)), path)
    build("own", path, root=workspace, executor=Executor("inline"))
    rec = score("own", ["nsfw"], root=workspace)
    assert rec["kept_shipped"]["nsfw"].startswith("nsfw is shipped: the source's own column")
    score("own", ["nsfw"], root=workspace, recompute=True)
    got = sql(workspace, "own", "SELECT nsfw, nsfw_computed FROM samples ORDER BY row_id")
    assert [r[0] for r in got] == pytest.approx(own.tolist())
    assert all(r[1] is not None for r in got)
    rec = score("own", ["nsfw"], root=workspace, recompute=True)  # a rerun: same columns
    assert rec["scorers"]["nsfw"]["columns"] == ["nsfw_computed"]
