"""The Streamlit pages, driven headless through ``streamlit.testing.v1.AppTest``.

Every test builds a real dataset with :func:`backend.ingest.build` into the per-test
workspace (``TAILSCOPE_HOME``) and runs the real page scripts against it.
"""

from __future__ import annotations

import csv
import html
import json
import re
import tarfile
from pathlib import Path

import pytest
from conftest import count_text, open_page, run_ok, thumbs
from PIL import Image
from streamlit.testing.v1 import AppTest

from backend.ingest import build
from backend.selection import Selection
from backend.store import StoreMissing

REPO = Path(__file__).resolve().parent.parent
BROWSE = "pages/1_Browse.py"
TIMEOUT = 60


def app() -> AppTest:
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)


def browse(at: AppTest | None = None) -> AppTest:
    """Open Browse the way a user does: the app first, then the page."""
    return open_page(BROWSE, at or run_ok(app()))


def shown_ids(at: AppTest) -> list[int]:
    """Row ids of the cards on screen (each card has a ``detail-<row_id>`` button)."""
    return [int(b.key.split("-", 1)[1]) for b in at.button if str(b.key).startswith("detail-")]


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


@pytest.fixture
def photos(workspace: Path, photo_folder: Path) -> Path:
    build("photos", photo_folder, root=workspace, workers=1)
    return workspace


@pytest.fixture
def many_folder(tmp_path: Path) -> Path:
    """60 small images ``item00``…``item59`` whose captions are all different."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        color = (i * 4, 100, 200 - i * 3)
        Image.new("RGB", (40 + i, 30 + i), color).save(folder / f"item{i:02d}.png")
        parity = "even" if i % 2 == 0 else "odd"
        (folder / f"item{i:02d}.txt").write_text(f"swatch number {i} {parity}")
    return folder


# -- home ---------------------------------------------------------------------------------------


def test_home_lists_built_dataset_with_counts_and_steps(photos: Path) -> None:
    at = run_ok(app())
    assert "### photos" in markdown_text(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "8"
    assert metrics["Rejected"] == "0"
    steps = next(m.value for m in at.markdown if "ts-steps" in m.value)
    assert re.search(r'class="ts-step done"[^>]*>✓ ingest<', steps)
    for pending in ("embed", "index", "map", "score", "concepts", "dedup"):
        assert re.search(rf'class="ts-step"[^>]*>○ {pending}<', steps), pending
    assert "folder" in markdown_text(at)  # the format
    # where it is stored, relative to the workspace: no absolute server path (issue 16)
    assert "<code>photos</code>" in markdown_text(at)
    assert str(photos) not in markdown_text(at)
    assert at.sidebar.selectbox[0].value == "photos"


def test_home_shows_rejects_and_their_reasons(workspace: Path, photo_folder: Path) -> None:
    (photo_folder / "broken.jpg").write_bytes(b"<html>404 not found</html>")
    (photo_folder / "broken.txt").write_text("a picture that never downloaded")
    (photo_folder / "nocap.jpg").write_bytes((photo_folder / "coffee.jpg").read_bytes())
    build("photos", photo_folder, root=workspace, workers=1)
    at = run_ok(app())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "8"
    assert metrics["Rejected"] == "2"
    assert [e.label for e in at.expander] == ["Rejected items (2)"]
    table = at.dataframe[0].value
    assert list(table.columns) == ["reason", "key", "shard", "detail"]
    assert dict(zip(table["key"], table["reason"], strict=True)) == {
        "broken": "not an image",
        "nocap": "missing caption",
    }
    reasons = next(m.value for m in at.markdown if "ts-reason" in m.value)
    assert "not an image" in reasons and "missing caption" in reasons


def test_empty_workspace_shows_how_to_build(workspace: Path) -> None:
    at = run_ok(app())
    text = markdown_text(at)
    assert "No datasets yet" in text
    assert f"<code>{workspace.name}</code>" in text and str(workspace) not in text  # relative
    assert any(c.value == "python -m backend demo" for c in at.code)
    assert at.button(key="build-demo").label == "Build the demo dataset here"
    assert not at.metric  # no dataset cards


def test_build_demo_button_builds_and_activates_it(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("backend.demo.generate")
    monkeypatch.setattr("ui.home.DEMO_ROWS", 200)
    at = run_ok(app())
    at.button(key="build-demo").click()
    run_ok(at)
    assert (workspace / "demo" / "store.duckdb").is_file()
    assert "### demo" in markdown_text(at)
    assert at.sidebar.selectbox[0].value == "demo"
    assert int(next(m.value for m in at.metric if m.label == "Rows").replace(",", "")) > 50
    steps = next(m.value for m in at.markdown if "ts-steps" in m.value)
    for step in ("ingest", "embed", "index", "map", "score", "concepts", "dedup"):
        assert re.search(rf'class="ts-step done"[^>]*>✓ {step}<', steps), step  # every pill


def test_browse_button_on_a_card_opens_that_dataset(photos: Path, many_folder: Path) -> None:
    build("many", many_folder, root=photos, workers=1)
    at = run_ok(app())
    assert at.sidebar.selectbox[0].value == "many"  # the first, alphabetically
    at.button(key="browse-photos").click()
    run_ok(at)
    assert "Browse · photos" in markdown_text(at)
    assert count_text(at).startswith("8 rows")


# -- browse -------------------------------------------------------------------------------------


def test_browse_shows_count_and_a_card_per_row(photos: Path) -> None:
    at = browse()
    assert count_text(at).startswith("8 rows")
    assert sorted(shown_ids(at)) == list(range(8))
    assert thumbs(at) == 8  # a thumbnail on every card
    caps = [m.value for m in at.markdown if 'class="ts-cap"' in m.value]
    assert any("a cup of coffee on a saucer" in c for c in caps)


def test_caption_filter_narrows_to_the_known_row(photos: Path) -> None:
    at = browse()
    at.sidebar.text_input(key="w.f.text").input("coffee")
    run_ok(at)
    assert count_text(at).startswith("1 of 8 rows match")
    (rid,) = shown_ids(at)
    card = next(m.value for m in at.markdown if 'class="ts-cap"' in m.value)
    assert "a cup of coffee on a saucer" in card
    assert "coffee" in card and "astronaut" not in markdown_text(at).split("ts-count")[1]
    assert [b.label for b in at.button if str(b.key).startswith("selbar-")] == [
        'caption has "coffee"',
        "Clear all",
    ]
    # two words must both appear
    at.sidebar.text_input(key="w.f.text").input("camera black")
    run_ok(at)
    assert count_text(at).startswith("1 of 8")
    at.sidebar.text_input(key="w.f.text").input("camera")
    run_ok(at)
    assert count_text(at).startswith("2 of 8")  # the tripod man and the cat looking at it


def test_range_filters_on_size_and_any_numeric_column(photos: Path) -> None:
    at = browse()
    width = at.sidebar.slider(key="w.f.range::width")
    assert (width.min, width.max) == (384, 1000)  # coins … hubble_deep_field
    width.set_range(384, 600)
    run_ok(at)
    assert count_text(at).startswith("6 of 8")  # all but rocket (640) and hubble (1000)
    assert len(shown_ids(at)) == 6
    assert any("width ≤ 600" in b.label for b in at.button if str(b.key).startswith("selbar-"))
    at.sidebar.slider(key="w.f.range::height").set_range(400, 872)
    run_ok(at)
    assert count_text(at).startswith("4 of 8")  # and at least 400 high: not chelsea, coins
    # any numeric column: aesthetic is 5.0 + i/10 for the i-th photo of the folder
    at.sidebar.slider(key="w.f.range::width").set_range(384, 1000)
    at.sidebar.slider(key="w.f.range::height").set_range(300, 872)
    at.sidebar.multiselect(key="w.f.extra").select("aesthetic")
    run_ok(at)
    assert count_text(at).startswith("8 rows")  # a column picked but not narrowed
    at.sidebar.slider(key="w.f.range::aesthetic").set_range(5.0, 5.15)
    run_ok(at)
    assert count_text(at).startswith("2 of 8")  # astronaut (5.0) and coffee (5.1)


def test_shard_filter(workspace: Path, photo_folder: Path, tmp_path: Path) -> None:
    wds = tmp_path / "wds"
    wds.mkdir()
    groups = {"a.tar": ["astronaut", "coffee", "chelsea"],
              "b.tar": ["rocket", "camera", "coins", "hubble_deep_field"]}  # fmt: skip
    for tar_name, stems in groups.items():
        with tarfile.open(wds / tar_name, "w") as tar:
            for stem in stems:
                for ext in (".jpg", ".txt", ".json"):
                    tar.add(photo_folder / f"{stem}{ext}", arcname=f"{stem}{ext}")
    build("shards", wds, root=workspace, workers=1)
    at = browse()
    assert count_text(at).startswith("7 rows")
    shards = at.sidebar.multiselect(key="w.f.shards")
    assert shards.options == ["a.tar  (3)", "b.tar  (4)"]
    shards.select("a.tar")
    run_ok(at)
    assert count_text(at).startswith("3 of 7")
    assert "shard in a.tar" in [b.label for b in at.button]


def test_paging_is_keyset_and_goes_both_ways(workspace: Path, many_folder: Path) -> None:
    build("many", many_folder, root=workspace, workers=1)
    at = browse()
    assert count_text(at).startswith("60 rows")
    assert shown_ids(at) == list(range(48))
    assert at.button(key="pg-prev-top").disabled
    at.button(key="pg-next-top").click()
    run_ok(at)
    assert shown_ids(at) == list(range(48, 60))
    assert at.button(key="pg-next-top").disabled
    assert at.session_state["ts.cursor"] == {"after": 47}
    at.button(key="pg-prev-top").click()
    run_ok(at)
    assert shown_ids(at) == list(range(48))
    at.segmented_control(key="w.page_size").set_value(24)
    run_ok(at)
    assert shown_ids(at) == list(range(24))
    at.button(key="pg-next-top").click()
    run_ok(at)
    at.button(key="pg-next-top").click()
    run_ok(at)
    assert shown_ids(at) == list(range(48, 60))
    assert "Page <b>3</b> of 3" in markdown_text(at)
    at.button(key="pg-first-top").click()
    run_ok(at)
    assert shown_ids(at) == list(range(24))


def test_sorting_pages_in_that_order_and_shows_the_values(workspace: Path,
                                                          many_folder: Path) -> None:  # fmt: skip
    build("many", many_folder, root=workspace, workers=1)  # item i is 40 + i pixels wide
    at = browse()
    sort = at.selectbox(key="w.sort")
    assert sort.value == "" and "width ↓ high first" in sort.options
    sort.set_value("width DESC")
    run_ok(at)
    assert shown_ids(at) == list(range(59, 11, -1))
    assert "sorted by width ↓" in [b.label for b in at.button]  # the chip
    assert '<b>99</b>' in markdown_text(at)  # row 59's card shows its width
    at.button(key="pg-next-top").click()
    run_ok(at)
    assert shown_ids(at) == list(range(11, -1, -1))
    assert at.session_state["ts.cursor"] == {"after": 12, "value": 52}
    at.button(key="pg-prev-top").click()
    run_ok(at)
    assert shown_ids(at) == list(range(59, 11, -1))
    next(b for b in at.button if b.label == "sorted by width ↓").click()  # remove the chip
    run_ok(at)
    assert shown_ids(at) == list(range(48)) and at.selectbox(key="w.sort").value == ""


def test_paging_follows_the_selection(workspace: Path, many_folder: Path) -> None:
    build("many", many_folder, root=workspace, workers=1)
    at = browse()
    at.sidebar.text_input(key="w.f.text").input("odd")
    run_ok(at)
    assert count_text(at).startswith("30 of 60")
    assert shown_ids(at) == list(range(1, 60, 2))
    assert at.button(key="pg-next-top").disabled
    at.segmented_control(key="w.page_size").set_value(24)
    run_ok(at)
    at.button(key="pg-next-top").click()
    run_ok(at)
    assert shown_ids(at) == list(range(49, 60, 2))


def test_filters_persist_across_page_switches(photos: Path) -> None:
    at = browse()
    at.sidebar.text_input(key="w.f.text").input("coffee")
    run_ok(at)
    at.switch_page("app.py")
    run_ok(at)
    assert "### photos" in markdown_text(at)
    at.switch_page(BROWSE)
    run_ok(at)
    assert at.sidebar.text_input(key="w.f.text").value == "coffee"
    assert count_text(at).startswith("1 of 8")
    assert isinstance(at.session_state["ts.selections"]["photos"], Selection)


def test_no_match_shows_empty_state_and_clear_button(photos: Path) -> None:
    at = browse()
    at.sidebar.text_input(key="w.f.text").input("zebra")
    run_ok(at)
    assert "No rows match" in markdown_text(at)
    assert shown_ids(at) == []
    at.button(key="empty-clear").click()
    run_ok(at)
    assert at.sidebar.text_input(key="w.f.text").value == ""
    assert count_text(at).startswith("8 rows")


def test_chip_removes_one_filter(photos: Path) -> None:
    at = browse()
    at.sidebar.text_input(key="w.f.text").input("camera tripod")
    run_ok(at)
    assert count_text(at).startswith("1 of 8")
    chip = next(b for b in at.button if b.label == 'caption has "tripod"')
    chip.click()
    run_ok(at)
    assert at.sidebar.text_input(key="w.f.text").value == "camera"
    assert count_text(at).startswith("2 of 8")


def test_bad_selection_is_an_error_not_a_crash(photos: Path) -> None:
    at = run_ok(app())
    at.session_state["ts.selections"] = {"photos": Selection(ranges={"no_such": (0, 1)})}
    browse(at)
    assert at.error and "no column named 'no_such'" in at.error[0].value
    at.button(key="bad-clear").click()
    run_ok(at)
    assert not at.error
    assert count_text(at).startswith("8 rows")


def test_missing_store_shows_its_message(photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str, root: Path | None = None):
        raise StoreMissing(f"dataset {name!r} is not built: run `python -m backend build`")

    monkeypatch.setattr("backend.store.connect", missing)
    monkeypatch.setattr("backend.catalog.connect", missing)
    at = browse()
    assert "dataset 'photos' is not built" in at.error[0].value
    assert shown_ids(at) == []


def detail_columns(at) -> dict[str, str]:
    """The detail's all-columns table (ui.cards._columns_table: HTML) as column -> value."""
    table = next(m.value for m in at.markdown if 'class="ts-cols"' in m.value)
    cells = re.findall(r'<td class="c">(.*?)</td><td class="v">(.*?)</td>', table)
    return {html.unescape(c): html.unescape(v) for c, v in cells}


def test_detail_dialog_shows_caption_columns_and_source(photos: Path, photo_folder: Path) -> None:
    at = browse()
    at.sidebar.text_input(key="w.f.text").input("coffee")
    run_ok(at)
    (rid,) = shown_ids(at)
    at.button(key=f"detail-{rid}").click()
    run_ok(at)
    text = markdown_text(at)
    assert '<div class="ts-caption-full">a cup of coffee on a saucer</div>' in text
    # outside the workspace: its last two parts, never the absolute server path (issue 16)
    assert f"image file <code>…/{photo_folder.name}/coffee.jpg</code>" in text
    assert str(photo_folder.resolve()) not in text
    assert "https://example.invalid/coffee.jpg" in text
    values = detail_columns(at)
    assert values["key"] == "coffee"
    assert values["caption"] == "a cup of coffee on a saucer"
    assert values["aesthetic"] == "5.1"
    assert {"row_id", "width", "height", "sha256", "shard", "license"} <= set(values)
    assert at.button(key="dlg-next").disabled  # the only row on the page


def test_url_only_rows_show_a_placeholder_with_the_url(workspace: Path, tmp_path: Path) -> None:
    src = tmp_path / "meta.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["url", "caption", "width", "height"])
        for i in range(5):
            w.writerow([f"https://cdn.example.com/{i}.jpg", f"remote picture {i}", 640, 480])
    build("remote", src, root=workspace, workers=1)
    at = browse()
    assert count_text(at).startswith("5 rows")
    assert thumbs(at) == 0
    holders = [m.value for m in at.markdown if 'class="ts-ph"' in m.value]
    assert len(holders) == 5
    assert "URL only" in holders[0] and 'href="https://cdn.example.com/0.jpg"' in holders[0]


def test_captions_are_escaped(workspace: Path, tmp_path: Path) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    Image.new("RGB", (20, 20)).save(folder / "x.png")
    (folder / "x.txt").write_text('<img src=x onerror="alert(1)"> <b>bold</b>')
    build("evil", folder, root=workspace, workers=1)
    at = browse()
    card = next(m.value for m in at.markdown if 'class="ts-cap"' in m.value)
    assert "<img src=x" not in card and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in card


def test_switching_dataset_resets_the_view(photos: Path, many_folder: Path) -> None:
    build("many", many_folder, root=photos, workers=1)
    at = browse()
    at.sidebar.selectbox(key="w.dataset").select("photos")
    run_ok(at)
    assert count_text(at).startswith("8 rows")
    at.sidebar.text_input(key="w.f.text").input("coffee")
    run_ok(at)
    at.sidebar.selectbox(key="w.dataset").select("many")
    run_ok(at)
    assert at.sidebar.text_input(key="w.f.text").value == ""
    assert count_text(at).startswith("60 rows")
    at.sidebar.selectbox(key="w.dataset").select("photos")
    run_ok(at)  # each dataset keeps its own selection
    assert at.sidebar.text_input(key="w.f.text").value == "coffee"


def test_rebuilt_store_is_reopened(photos: Path, photo_folder: Path) -> None:
    at = browse()
    assert count_text(at).startswith("8 rows")
    Image.new("RGB", (64, 48), "red").save(photo_folder / "red.png")
    (photo_folder / "red.txt").write_text("a plain red rectangle")
    build("photos", photo_folder, root=photos, workers=1)
    run_ok(at)
    assert count_text(at).startswith("9 rows")


def test_demo_home_and_browse_match_its_ground_truth(
    demo_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = json.loads((demo_home / "demo" / "source" / "ground_truth.json").read_text())
    monkeypatch.setenv("TAILSCOPE_HOME", str(demo_home))
    at = run_ok(app())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == f"{truth['expected_samples']:,}"
    assert metrics["Rejected"] == f"{truth['expected_rejects']:,}"
    table = at.dataframe[0].value
    shown = set(zip(table["key"], table["shard"], table["reason"], strict=True))
    assert shown == {(r["key"], r["shard"], r["reason"]) for r in truth["rejects"]}
    browse(at)
    assert count_text(at).startswith(f"{truth['expected_samples']:,} rows")
    assert len(shown_ids(at)) == 48
    assert thumbs(at) == 48  # every row of the first page has a readable image
    assert not [m for m in at.markdown if "ts-err" in m.value]
