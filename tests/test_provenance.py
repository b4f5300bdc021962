"""Every analysis says which vectors and model it used, and names the demo CLIP with its note:
the map's layout line, a search's provenance, the Concepts page's misalignment help."""

from __future__ import annotations

from pathlib import Path

from backend import provenance
from backend.democlip import DEMO_CLIP_NOTE
from backend.manifest import update_manifest
from backend.search import Result, _provenance
from ui import concepts as ui_concepts
from ui import search as ui_search

DEMO = "open_clip:tailscope-demo-clip/demo-clip.pt"
REAL = "open_clip:ViT-B-32/laion2b_s34b_b79k"


def test_map_layout_line_names_the_vectors_and_the_demo_clip(tmp_path: Path) -> None:
    assert provenance.map_layout("d", tmp_path) is None  # no map step yet: nothing claimed
    rec = {"method": "umap", "mapped": 1200, "k": 9, "params": {"vectors": "img"},
           "vectors": {"kind": "img", "model": DEMO, "dim": 256}}  # fmt: skip
    update_manifest(tmp_path / "d" / "manifest.json", "map", rec)
    got = provenance.map_layout("d", tmp_path)
    assert got["line"] == f"Laid out by image vectors of {DEMO} (umap of 1,200 rows; 9 clusters)"
    assert got["demo_note"] == DEMO_CLIP_NOTE
    rec["clustering"] = "k-means on the 2-D layout"  # the map step says what it clustered
    update_manifest(tmp_path / "d" / "manifest.json", "map", rec)
    got = provenance.map_layout("d", tmp_path)
    assert got["line"].endswith("(umap of 1,200 rows; 9 clusters, k-means on the 2-D layout)")
    rec["vectors"] = {"kind": "text", "model": "minilm"}
    update_manifest(tmp_path / "d" / "manifest.json", "map", rec)
    got = provenance.map_layout("d", tmp_path)
    assert got["line"].startswith("Laid out by caption vectors of minilm") and not got["demo_note"]


def test_search_provenance_names_the_model_and_the_demo_clip() -> None:
    embed = {"kinds": {"img": {"model": DEMO}, "text": {"model": DEMO}}}
    assert _provenance(embed, "img") == (DEMO, [f"Searched with the {DEMO_CLIP_NOTE}."])
    assert _provenance({"kinds": {"img": {"model": REAL}}}, "img") == (REAL, [])
    demo = Result([], "images (CLIP text→image)", 0.01, [], "img", DEMO)
    line = ui_search.provenance_md(demo)
    assert line == f":material/neurology: Searched image vectors of {DEMO} · **{DEMO_CLIP_NOTE}**"
    assert ui_search.shown_elsewhere(f"Searched with the {DEMO_CLIP_NOTE}.")
    labelled = f"{DEMO} ({DEMO_CLIP_NOTE})"  # load_clip's own label: the note is said once
    assert ui_search.provenance_md(Result([], "images", 0.01, [], "img", labelled)) == (
        f":material/neurology: Searched image vectors of {labelled}"
    )
    hybrid = Result([], "keywords + images (CLIP text→image) (rank fusion)", 0.01, [], "img", REAL)
    assert ui_search.provenance_md(hybrid) == (
        f":material/neurology: Searched caption keywords (BM25) and image vectors of {REAL}"
    )
    keywords = Result([], "captions (keywords, BM25)", 0.01, model="BM25 over captions (tantivy)")
    assert ui_search.provenance_md(keywords) == (
        ":material/neurology: Searched BM25 over captions (tantivy)"
    )


def test_misalignment_help_says_how_and_with_which_model() -> None:
    s = {"image_note": f"image side: CLIP {DEMO} zero-shot, top-3 within 0.02 of the best",
         "misalignment": {"rows_named": 1000, "rows_misaligned": 42, "rate": 0.042}}  # fmt: skip
    text = ui_concepts.misalignment_help(s)
    assert text.startswith("Of the 1,000 rows whose image was tagged and whose caption names")
    assert "the 42 whose image shows none of the concepts its caption names" in text
    assert f"CLIP {DEMO} zero-shot, top-3 within 0.02 of the best" in text
    assert "“a photo of the small {concept}.”" in text
    assert text.endswith(f"Model: {DEMO_CLIP_NOTE}.")
    off = ui_concepts.misalignment_help({"image_note": "image side not run: count again"})
    assert off.startswith("Not run: the image side was not counted")


def test_safety_names_the_demo_clip_behind_its_scores() -> None:
    from ui.safety_measured import demo_clip_line

    embed = {"kinds": {"img": {"model": DEMO}}}
    line = demo_clip_line(embed, ["toxicity", "clip_similarity", "dup_semantic_group"])
    assert line == f"`clip_similarity` and `dup_semantic_group` come from the **{DEMO_CLIP_NOTE}**."
    assert demo_clip_line(embed, ["toxicity"]) is None  # no CLIP score shown: nothing to name
    labelled = {"kinds": {"img": {"model": f"{DEMO} ({DEMO_CLIP_NOTE})"}}}
    assert demo_clip_line(labelled, ["clip_similarity"]) == (
        f"`clip_similarity` comes from the **{DEMO_CLIP_NOTE}**."
    )
    assert demo_clip_line({"kinds": {"img": {"model": REAL}}}, ["clip_similarity"]) is None


def test_measured_figures_are_quoted_at_each_checks_own_threshold() -> None:
    from backend import safety_checks
    from ui import safety_measured

    for check in safety_checks.CHECKS:
        if check.column in safety_measured.CHECK_FIGURES:
            _, t = safety_measured.CHECK_FIGURES[check.column]
            assert f"{t:g}" in check.flagged, (check.flagged, t)
    line = safety_measured.check_line(["toxicity", "clip_similarity"])
    assert "`toxicity > 0.8 OR profanity > 0` precision 1.00, recall 1.00" in line
    assert "`clip_similarity < 0.2` precision" in line  # the check's 0.2, not the best-F1 0.1
