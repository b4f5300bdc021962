"""Shared fixtures: a throwaway workspace and small real datasets built through the CLI path."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

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
