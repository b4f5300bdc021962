"""Bad-input catalogue, WebDataset tars: hostile members and their outcomes."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from backend.ingest import build
from tests.hostile.catalogue import Case, Ok, Rej, accounted, check_case, png, store_state
from tests.test_sources import add, jpeg

JPG = jpeg("chelsea", 48)


def members(**by_name: bytes):
    """A case writer that appends these members to the first tar."""
    return lambda tar, second: [add(tar, n, d) for n, d in by_name.items()]


def special(name: str, kind: bytes, target: str):
    def write(tar: tarfile.TarFile, second: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        tar.addfile(info)
        add(tar, name.rsplit(".", 1)[0] + ".txt", b"a link member")

    return write


def in_second(**by_name: bytes):
    return lambda tar, second: [add(second, n, d) for n, d in by_name.items()]


CASES = [
    Case("000001", "a whole item", members(**{"000001.jpg": JPG, "000001.txt": b"a tabby cat"}),
         Ok("a tabby cat", "utf-8", (48, 48), "jpeg")),
    Case("../escape", "a member named ../x",
         members(**{"../escape.jpg": JPG, "../escape.txt": b"leaves"}), Rej("unsafe member name")),
    Case("/etc/evil", "absolute member names",
         members(**{"/etc/evil.jpg": JPG, "/etc/evil.txt": b"absolute"}),
         Rej("unsafe member name", "/etc/evil")),
    Case("C:/win", "a drive-letter member name",
         members(**{"C:/win.jpg": JPG, "C:/win.txt": b"drive"}), Rej("unsafe member name")),
    Case("symlinked", "a symlink member to /etc/passwd",
         special("symlinked.jpg", tarfile.SYMTYPE, "/etc/passwd"), Rej("not a regular file")),
    Case("hardlinked", "a hard-link member",
         special("hardlinked.jpg", tarfile.LNKTYPE, "000001.jpg"),
         Rej("not a regular file")),
    Case("000002", "an image only (orphan image)", members(**{"000002.jpg": JPG}),
         Rej("missing caption")),
    Case("000003", "a caption only (orphan caption)", members(**{"000003.txt": b"lonely"}),
         Rej("missing image")),
    Case("000004", "HTML saved as .jpg",
         members(**{"000004.jpg": b"<html><head></head><body>blocked</body></html>",
                    "000004.txt": b"x"}),
         Rej("not an image", "HTML")),
    Case("000005", "a zero-byte image member", members(**{"000005.jpg": b"", "000005.txt": b"x"}),
         Rej("empty file")),
    Case("000006", "a cp1252 caption", members(**{"000006.jpg": JPG,
                                                 "000006.txt": "Ça coûte 5€".encode("cp1252")}),
         Ok("Ça coûte 5€", "cp1252")),
    Case("000007", "a UTF-16 caption",
         members(**{"000007.jpg": JPG, "000007.txt": "שלום 👋".encode("utf-16")}),
         Ok("שלום 👋", "utf-16")),
    Case("000008", "caption only in the .json sidecar",
         members(**{"000008.jpg": JPG, "000008.json": b'{"caption": " from json ", "url": "u"}'}),
         Ok("from json", fields={"url": "u"})),
    Case("000009", "a .json sidecar that is a list",
         members(**{"000009.jpg": JPG, "000009.txt": b"x", "000009.json": b"[1, 2]"}),
         Rej("bad metadata", "not an object")),
    Case("000010", "a 16-bit PNG member",
         members(**{"000010.png": png((5, 3), "I;16"), "000010.txt": b"deep"}),
         Ok("deep", size=(5, 3), fmt="png")),
    Case("000011", "the same key in a second tar: the first wins",
         lambda tar, second: (
             members(**{"000011.jpg": JPG, "000011.txt": b"first"})(tar, second),
             in_second(**{"000011.jpg": JPG, "000011.txt": b"second"})(tar, second),
         ),
         Ok("first"), items=2),
    Case("000012", "the same member twice in one tar: the first is kept",
         members(**{"000012.jpg": JPG, "000012.txt": b"once"}), Ok("once", size=(48, 48))),
    Case("000012.jpg", "the repeated member", lambda tar, second: add(tar, "000012.jpg", b"junk"),
         Rej("duplicate key", "appears twice")),
    Case("000013", "two images for one key: the first is kept",
         members(**{"000013.jpg": JPG, "000013.png": png((4, 4)), "000013.txt": b"two"}),
         Ok("two", fmt="jpeg")),
    Case("000013.png", "the second image", lambda tar, second: None,
         Rej("duplicate key", "appears twice")),
    Case("sub/dir/000014", "a member in sub-folders",
         members(**{"sub/dir/000014.jpg": JPG, "sub/dir/000014.txt": b"nested"}), Ok("nested")),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("hostile_wds")
    src, home = base / "src", base / "ws"
    src.mkdir()
    home.mkdir()
    with tarfile.open(src / "00000.tar", "w") as tar, tarfile.open(src / "00001.tar", "w") as sec:
        for case in CASES:
            case.write(tar, sec)
    result = build("wds", src, root=home, workers=1)
    samples, rejects = store_state("wds", home)
    return result, samples, rejects


@pytest.mark.parametrize("case", CASES, ids=str)
def test_webdataset_item(case: Case, built) -> None:
    _, samples, rejects = built
    check_case(case, samples, rejects)


def test_webdataset_accounts_for_every_item(built) -> None:
    result, samples, rejects = built
    accounted(CASES, samples, rejects)
    dup = [r for r in rejects if r["key"] == "000011"]
    assert dup == [
        {"key": "000011", "shard": "00001.tar", "reason": "duplicate key",
         "detail": "first seen in 00000.tar"}
    ]  # fmt: skip
    assert result.rows + result.rejects == sum(c.items for c in CASES)


@pytest.mark.parametrize(
    "data, detail",
    [(b"", "empty file"), (b"this is not a tar archive\n" * 40, "reading stopped after 0")],
    ids=["zero-byte tar", "text named .tar"],
)
def test_unreadable_tar_is_one_reject_and_the_other_shards_survive(
    tmp_path: Path, data: bytes, detail: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with tarfile.open(src / "00000.tar", "w") as tar:
        add(tar, "a.jpg", JPG)
        add(tar, "a.txt", b"kept")
    (src / "00001.tar").write_bytes(data)
    result = build("bad", src, root=tmp_path / "ws", workers=1)
    samples, rejects = store_state("bad", tmp_path / "ws")
    assert set(samples) == {"a"} and samples["a"]["caption"] == "kept"
    assert [(r["key"], r["reason"]) for r in rejects] == [("00001.tar#end", "truncated tar")]
    assert detail in rejects[0]["detail"]
    assert (result.rows, result.rejects) == (1, 1)


def test_tar_member_bytes_are_never_written_outside(tmp_path: Path) -> None:
    """Ingest reads members in memory: an unsafe name creates no file anywhere."""
    src = tmp_path / "src"
    src.mkdir()
    with tarfile.open(src / "00000.tar", "w") as tar:
        add(tar, "../../planted.jpg", JPG)
        add(tar, "../../planted.txt", b"x")
    build("safe", src, root=tmp_path / "ws", workers=1)
    assert not list(tmp_path.rglob("planted*"))
    assert not (src.parent.parent / "planted.jpg").exists()

