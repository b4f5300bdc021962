"""Bad-input catalogue, image folders: every hostile item of a folder source and its outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import media
from backend.ingest import build
from tests.hostile.catalogue import (
    Case,
    Ok,
    Rej,
    accounted,
    animated_gif,
    bomb_png,
    check_case,
    png,
    store_state,
)
from tests.test_sources import jpeg

JPG = jpeg("coffee", 64)
LONG = ("a very long caption " * 800)[:15_000]
RTL = "قطة على الأريكة 🐈‍⬛ — חתול על הספה 👍🏽"


def pair(stem: str, image: bytes | None, caption: bytes | None, img_ext: str = ".jpg"):
    def write(src: Path, outside: Path) -> None:
        if image is not None:
            (src / f"{stem}{img_ext}").write_bytes(image)
        if caption is not None:
            (src / f"{stem}.txt").write_bytes(caption)

    return write


def link_outside(src: Path, outside: Path) -> None:
    (outside / "secret.jpg").write_bytes(JPG)
    (src / "link_out.jpg").symlink_to(outside / "secret.jpg")
    (src / "link_out.txt").write_text("a link that leaves the source")


def caption_link_outside(src: Path, outside: Path) -> None:
    (outside / "passwd.txt").write_text("root:x:0:0:secret")
    (src / "cap_out.jpg").write_bytes(JPG)
    (src / "cap_out.txt").symlink_to(outside / "passwd.txt")


def link_inside(src: Path, outside: Path) -> None:
    (src / "sub").mkdir(exist_ok=True)
    (src / "sub" / "target.jpg").write_bytes(jpeg("chelsea", 40))
    (src / "sub" / "target.txt").write_text("the link's target")
    (src / "link_in.jpg").symlink_to(src / "sub" / "target.jpg")
    (src / "link_in.txt").write_text("a link to a file inside the source")


def dangling_link(src: Path, outside: Path) -> None:
    (src / "dangling.jpg").symlink_to(src / "gone.jpg")
    (src / "dangling.txt").write_text("its image was deleted")


def two_images(src: Path, outside: Path) -> None:
    (src / "twin.jpg").write_bytes(JPG)
    (src / "twin.png").write_bytes(png((5, 5)))
    (src / "twin.txt").write_text("two images share one name")


CASES = [
    Case("good", "a plain jpeg and utf-8 caption", pair("good", JPG, b"a cup of coffee"),
         Ok("a cup of coffee", "utf-8", (64, 64), "jpeg")),
    Case("truncated", "a jpeg cut in half", pair("truncated", JPG[: len(JPG) // 2], b"cut"),
         Rej("truncated or corrupt image")),
    Case("zero", "a zero-byte .jpg", pair("zero", b"", b"nothing"), Rej("empty file")),
    Case("html", "an HTML error page saved as .jpg",
         pair("html", b"<!DOCTYPE html><html><body>404 Not Found</body></html>", b"page"),
         Rej("not an image", "HTML or XML saved as an image")),
    Case("text", "plain text saved as .jpg", pair("text", b"Access denied.\n", b"txt"),
         Rej("not an image", "text saved as an image")),
    Case("garbage", "random binary saved as .jpg",
         pair("garbage", bytes(range(256)) * 4, b"noise"),
         Rej("not an image", "unrecognised image format")),
    Case("bomb", "a 10000x10000 PNG of a few kB (decompression bomb)",
         pair("bomb", bomb_png(), b"bomb", ".png"), Rej("decompression bomb")),
    Case("strip_tall", "a 1x8000 strip", pair("strip_tall", png((1, 8000)), b"tall", ".png"),
         Ok("tall", size=(1, 8000), fmt="png")),
    Case("strip_wide", "an 8000x1 strip", pair("strip_wide", png((8000, 1)), b"wide", ".png"),
         Ok("wide", size=(8000, 1), fmt="png")),
    Case("animated", "an animated GIF (3 frames)",
         pair("animated", animated_gif(), b"blinking", ".gif"), Ok(size=(12, 10), fmt="gif")),
    Case("cmyk", "a CMYK jpeg", pair("cmyk", png((9, 7), "CMYK", "JPEG"), b"print"),
         Ok(size=(9, 7), fmt="jpeg")),
    Case("deep16", "a 16-bit greyscale PNG",
         pair("deep16", png((6, 4), "I;16"), b"sixteen bits", ".png"), Ok(size=(6, 4), fmt="png")),
    Case("webp_as_jpg", "a PNG named .jpg (wrong extension, valid image)",
         pair("webp_as_jpg", png((3, 3)), b"misnamed"), Ok(fmt="png")),
    Case("utf16", "a UTF-16 caption with BOM",
         pair("utf16", JPG, "Kaffee für zwei ☕".encode("utf-16")),
         Ok("Kaffee für zwei ☕", "utf-16")),
    Case("utf8bom", "a UTF-8 caption with BOM",
         pair("utf8bom", JPG, b"\xef\xbb\xbfcaf\xc3\xa9 au lait"), Ok("café au lait", "utf-8-sig")),
    Case("cp1252", "a cp1252 caption (fixed by decoding, recorded)",
         pair("cp1252", JPG, "naïve “quotes” – 5€".encode("cp1252")),
         Ok("naïve “quotes” – 5€", "cp1252")),
    Case("utf16_nobom", "UTF-16LE ASCII without a BOM (NULs dropped)",
         pair("utf16_nobom", JPG, "plain words".encode("utf-16-le")), Ok("plain words", "utf-8")),
    Case("nul_only", "a caption of NUL bytes only", pair("nul_only", JPG, b"\x00\x00\x00"),
         Rej("missing caption")),
    Case("long", "a 15000-character caption, kept whole", pair("long", JPG, LONG.encode()),
         Ok(LONG.strip(), "utf-8")),
    Case("rtl", "right-to-left text with emoji and ZWJ sequences",
         pair("rtl", JPG, RTL.encode()), Ok(RTL, "utf-8")),
    Case("orphan_caption", "a caption with no image", pair("orphan_caption", None, b"alone"),
         Rej("missing image")),
    Case("orphan_image", "an image with no caption", pair("orphan_image", JPG, None),
         Rej("missing caption")),
    Case("blank", "a whitespace-only caption", pair("blank", JPG, b" \r\n\t "),
         Rej("missing caption")),
    Case("link_out", "an image symlink to a file outside the source", link_outside,
         Rej("symlink outside source", "link_out.jpg")),
    Case("cap_out", "a caption symlink to a file outside the source", caption_link_outside,
         Rej("symlink outside source", "cap_out.txt")),
    Case("link_in", "an image symlink to a file inside the source", link_inside,
         Ok("a link to a file inside the source", size=(40, 40))),
    Case("sub/target", "the symlink's target, itself an item", lambda s, o: None,
         Ok("the link's target", size=(40, 40))),
    Case("dangling", "a symlink whose target is gone", dangling_link, Rej("unreadable file")),
    Case("bad_json", "a sidecar .json that is not JSON",
         lambda s, o: (pair("bad_json", JPG, b"ok")(s, o),
                       (s / "bad_json.json").write_text("{not json")),
         Rej("bad metadata", "bad json sidecar")),
    Case("twin", "two images with one name (twin.jpg, twin.png): the first is kept",
         two_images, Ok("two images share one name", size=(64, 64), fmt="jpeg")),
    Case("twin.png", "the second image of that name", lambda s, o: None,
         Rej("duplicate key", "same name as twin.jpg")),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("hostile_folder")
    src, outside, home = base / "src", base / "outside", base / "ws"
    for d in (src, outside, home):
        d.mkdir()
    for case in CASES:
        case.write(src, outside)
    result = build("folder", src, root=home, workers=1)
    samples, rejects = store_state("folder", home)
    return result, samples, rejects


@pytest.mark.parametrize("case", CASES, ids=str)
def test_folder_item(case: Case, built) -> None:
    _, samples, rejects = built
    check_case(case, samples, rejects)


def test_folder_accounts_for_every_item(built) -> None:
    result, samples, rejects = built
    accounted(CASES, samples, rejects)
    assert (result.rows, result.rejects) == (len(samples), len(rejects))
    assert sum(result.reasons.values()) == len(rejects)


@pytest.mark.parametrize("key", ["animated", "cmyk", "deep16", "strip_tall", "link_in"])
def test_accepted_odd_images_make_thumbnails(key: str, built) -> None:
    """Accepted means usable: the card thumbnail of each odd image decodes to a JPEG."""
    _, samples, _ = built
    thumb = media.thumb(samples[key], 32)
    assert thumb is not None and thumb[:2] == b"\xff\xd8"


def test_symlink_inside_is_stored_as_its_target(built) -> None:
    _, samples, _ = built
    assert samples["link_in"]["sha256"] == samples["sub/target"]["sha256"]
    assert samples["link_in"]["path"].endswith("sub/target.jpg")
