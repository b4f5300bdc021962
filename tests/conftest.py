"""Shared fixtures: a throwaway workspace and small real datasets built through the CLI path;
and the helpers every page test uses to run a page headless and read what it shows."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent

PHOTOS = {
    "astronaut": "an astronaut in a spacesuit in front of an American flag",
    "coffee": "a cup of coffee on a saucer",
    "chelsea": "a tabby cat looking at the camera",
    "rocket": "a rocket on a launch pad",
    "camera": "a man with a camera on a tripod, black and white",
    "coins": "old coins on a dark background",
    "hubble_deep_field": "galaxies in the hubble deep field",
    "immunohistochemistry": "a stained tissue sample under a microscope",
}


def write_photo_folder(folder: Path) -> dict[str, str]:
    """Real skimage photos as ``name.jpg`` + ``name.txt`` (+ ``name.json``); returns captions."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, caption) in enumerate(PHOTOS.items()):
        Image.fromarray(getattr(skimage.data, name)()).save(folder / f"{name}.jpg", quality=90)
        (folder / f"{name}.txt").write_text(caption, encoding="utf-8")
        (folder / f"{name}.json").write_text(
            f'{{"url": "https://example.invalid/{name}.jpg", "aesthetic": {5 + i / 10}, '
            f'"license": "demo", "width": 1}}'
        )
    return dict(PHOTOS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules holding a test marked ``slow`` run first, the rest in their usual order: the
    xdist workers of ``dev.py test`` take one module at a time in this order
    (``--dist loadfile --no-loadscope-reorder``), and a long module taken last would end the
    run alone on one core."""
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``TAILSCOPE_HOME`` for one test."""
    home = tmp_path / "ws"
    home.mkdir()
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    return home


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    write_photo_folder(folder)
    return folder


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding a small demo dataset (``demo``), built once per test session."""
    from backend.demo import generate
    from backend.ingest import build

    home = tmp_path_factory.mktemp("demo_ws")
    source = home / "demo" / "source"
    generate(source, rows=600, seed=0, shard_size=200)
    build("demo", source, "webdataset", root=home, workers=1)
    import shutil

    shutil.copytree(home / "demo", home.parent / f"{home.name}-pristine" / "demo", symlinks=True)
    return home


@pytest.fixture(scope="session")
def demo_pristine(demo_home: Path) -> Path:
    """A workspace holding the demo as ingest left it (no embeddings, map or scores), whatever
    other tests did to ``demo_home``; copy it before changing it."""
    return demo_home.parent / f"{demo_home.name}-pristine"


# -- the built demo, shared: each expensive step runs once per run -------------------------------
# Read-only: a test that changes a dataset copies it first (``copy_demo``; a copy is ~13 MB of
# links and files and takes well under a second, an embed or a map takes tens of seconds).
# ``dev.py test`` runs the suite on pytest-xdist workers; the first worker that needs a step
# runs it and the others read its workspace (``once_per_run``).


def once_per_run(factory: pytest.TempPathFactory, key: str, build: Callable[[], dict]) -> dict:
    """``build()``'s result (JSON: paths as strings), built once for all xdist workers of this
    run: the first to ask builds it under a file lock and leaves it beside their temp folders;
    without xdist, built here. Every worker gets the JSON round trip, whoever built it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return json.loads(json.dumps(build()))
    from filelock import FileLock

    shared = factory.getbasetemp().parent  # the run's temp folder, parent of each worker's
    done = shared / f"{key}.json"
    with FileLock(str(shared / f"{key}.lock")):
        if not done.is_file():
            done.write_text(json.dumps(build()))
        return json.loads(done.read_text())


def copy_demo(src: Path, dest: Path, ignore: tuple[str, ...] = ()) -> Path:
    """A private workspace ``dest`` holding a copy of ``src``'s demo (``ignore``: name patterns
    left out, as for ``shutil.ignore_patterns``); returns ``dest``."""
    import shutil

    shutil.copytree(src / "demo", dest / "demo", symlinks=True,
                    ignore=shutil.ignore_patterns(*ignore) if ignore else None)  # fmt: skip
    return dest


@pytest.fixture(scope="session")
def demo_embedded(demo_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding the demo embedded with the packaged models (EfficientNet-Lite0 for
    images, MiniLM for captions) and indexed (FAISS + keywords), built once per run
    (``once_per_run``) for the search tests and pages that read it; copy it before changing it."""

    def build() -> dict:
        from backend.embed import embed
        from backend.search import build_indexes

        home = copy_demo(demo_pristine, tmp_path_factory.mktemp("demo_embedded"))
        embed("demo", root=home, mode="packaged")
        build_indexes("demo", root=home)
        return {"home": str(home)}

    return Path(once_per_run(tmp_path_factory, "demo_embedded", build)["home"])


@pytest.fixture(scope="session")
def demo_map_run(demo_embedded: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``demo_embedded`` copied and mapped (the map step's defaults), once per run:
    ``home`` (copy it before changing it), the step's ``record`` and the ``phases`` its progress
    reported."""

    def build() -> dict:
        from backend.map import build_map

        home = copy_demo(demo_embedded, tmp_path_factory.mktemp("demo_mapped"))
        phases: list[str] = []
        record = build_map("demo", home, progress=lambda p, d, n: phases.append(p))
        return {"home": str(home), "record": record, "phases": phases}

    run = once_per_run(tmp_path_factory, "demo_map_run", build)
    return {**run, "home": Path(run["home"])}


@pytest.fixture(scope="session")
def demo_mapped(demo_map_run: dict) -> Path:
    """A workspace holding the demo embedded, indexed and mapped (see ``demo_map_run``)."""
    return demo_map_run["home"]


@pytest.fixture(scope="session")
def demo_score_run(demo_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The ingested demo scored by toxicity, nsfw and quality (no embeddings, map or dedup),
    once per run: ``home`` (copy it before changing it) and the step's ``record``."""

    def build() -> dict:
        from backend.safety.run import score

        home = copy_demo(demo_pristine, tmp_path_factory.mktemp("demo_scored"))
        return {"home": str(home),
                "record": score("demo", ["toxicity", "nsfw", "quality"], root=home)}  # fmt: skip

    run = once_per_run(tmp_path_factory, "demo_score_run", build)
    return {**run, "home": Path(run["home"])}


# -- page tests (streamlit.testing.v1.AppTest) --------------------------------------------------
# Plain functions, not fixtures: ``from conftest import run_ok, count_text, open_page``.


def run_ok(at: AppTest) -> AppTest:
    """Run the script; an exception box on the page fails the test, showing its message."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def thumbs(at: AppTest) -> int:
    """How many card thumbnails the page shows: JPEGs inline in the cards' HTML (ui.cards
    img_html), each checked to be a JPEG."""
    found = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)"',
                       "".join(m.value for m in at.markdown))  # fmt: skip
    assert all(base64.b64decode(b)[:2] == b"\xff\xd8" for b in found), "not a JPEG"
    return len(found)


def count_text(at: AppTest) -> str:
    """The page's shared count line (``ts-count``: "N of M rows match", a search's summary) as
    plain text."""
    hit = [m.value for m in at.markdown if 'class="ts-count"' in m.value]
    assert hit, "no count line (ts-count) on the page"
    return re.sub(r"<[^>]+>", "", hit[0])


def open_app(timeout: float = 60) -> AppTest:
    """The app's home page, run once, as a user's browser first opens it."""
    from streamlit.testing.v1 import AppTest

    return run_ok(AppTest.from_file(str(REPO / "app.py"), default_timeout=timeout))


def open_page(page: str, at: AppTest | None = None, timeout: float = 60) -> AppTest:
    """Open ``page`` (``pages/…py``) the way a user does: the app first (or ``at``), then the
    page."""
    at = at or open_app(timeout)
    at.switch_page(page)
    return run_ok(at)
