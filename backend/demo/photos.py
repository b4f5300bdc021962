"""Real photographs shipped inside installed packages, each with captions that describe it.

Nothing is downloaded: scikit-image, scikit-learn and matplotlib carry these files. Each photo
is decoded, scaled and encoded once per process; every row that shows it reuses the bytes.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

MAX_SIDE = 512  # photos are stored at most this big, as img2dataset's resize would
# Indices into skimage's lfw_subset (its first 100 images are faces), with their captions.
LFW_FACES = {
    0: "small grainy black-and-white photo of a person's face",
    7: "low-resolution grayscale face crop",
    19: "a tiny monochrome headshot",
    33: "blurry grayscale close-up of a face",
    48: "pixelated black-and-white portrait of a person",
}


@dataclass(frozen=True)
class Photo:
    name: str
    captions: tuple[str, ...]  # plain, truthful captions; the first is the photo's main row
    credit: str
    offensive: str | None = None  # a crawl-style insulting caption for the same image
    cp1252: str | None = None  # a caption that will be written as cp1252 bytes
    variants_ok: bool = True  # whether near-dup and watermarked copies suit it (not tiny, PNG)


@dataclass(frozen=True)
class Encoded:
    data: bytes
    ext: str  # ".jpg" or ".png"
    width: int
    height: int
    original_width: int
    original_height: int
    image: Image.Image = field(compare=False, repr=False)


_SKI = "scikit-image sample data"
CATALOGUE: tuple[Photo, ...] = (
    Photo(
        "astronaut",
        (
            "Portrait of astronaut Eileen Collins in an orange spacesuit, with an American flag "
            "and a model space shuttle behind her",
            "NASA astronaut smiling in an orange flight suit, her helmet beside her",
            "official NASA portrait of a female astronaut",
        ),
        _SKI,
        offensive="dumbass astronaut grinning like an idiot in her stupid suit",
    ),
    Photo(
        "camera",
        (
            "a man in a dark coat looking through a camera on a tripod, monochrome",
            "The Cameraman: grayscale photo of a man filming on a lawn, buildings in the distance",
        ),
        _SKI,
    ),
    Photo(
        "chelsea",
        (
            "close-up of a tabby cat looking at the camera",
            "Chelsea the cat: a ginger tabby's face, close up",
        ),
        _SKI,
        offensive="this stupid fucking cat keeps staring at me",
        cp1252="chat tigré qui regarde l’objectif",
    ),
    Photo(
        "coffee",
        (
            "a cup of coffee on a saucer with a spoon, on a wooden table",
            "espresso in a red cup and saucer",
        ),
        _SKI,
        offensive="shitty coffee, tastes like crap",
        cp1252="café crème dans une tasse rouge, sur une table en bois",
    ),
    Photo(
        "coins",
        (
            "old coins arranged in four rows on a dark background, grayscale",
            "a collection of twenty-four ancient Greek coins",
        ),
        _SKI,
    ),
    Photo(
        "rocket",
        (
            "a SpaceX Falcon 9 rocket on the launch pad at dusk",
            "rocket standing between launch towers in the evening, floodlights on",
        ),
        _SKI,
    ),
    Photo(
        "horse",
        (
            "silhouette of a horse standing, side view",
            "a black horse silhouette on a white background",
        ),
        _SKI,
    ),
    Photo(
        "hubble_deep_field",
        (
            "Hubble Deep Field: hundreds of distant galaxies in deep space",
            "deep space image from the Hubble telescope, full of faint galaxies",
        ),
        _SKI,
    ),
    Photo("moon", ("monochrome close-up of the moon's surface with small craters",), _SKI),
    Photo(
        "page",
        ("scanned page of a textbook section titled Region-based segmentation",),
        _SKI,
        variants_ok=False,  # a crop would cut the title the caption quotes
    ),
    Photo(
        "retina",
        (
            "fundus photograph of a human retina showing blood vessels and the optic disc",
            "retinal image from an eye examination",
        ),
        _SKI,
    ),
    Photo(
        "immunohistochemistry",
        ("microscope image of tissue with immunohistochemical staining in brown and blue",),
        _SKI,
    ),
    Photo("clock", ("motion-blurred photo of a wall clock on a grey background",), _SKI),
    Photo("brick", ("grayscale photo of a brick wall",), _SKI),
    Photo("grass", ("close-up of grass, grayscale texture",), _SKI),
    Photo("gravel", ("gravel texture, monochrome close-up",), _SKI),
    Photo(
        "colorwheel",
        ("a colour wheel of all hues, white at the centre fading to saturated colours",),
        _SKI,
    ),
    Photo(
        "logo",
        ("the scikit-image logo, a stylised snake in green and orange",),
        _SKI,
        variants_ok=False,
    ),
    Photo("text", ("handwritten maths equations photographed at an angle",), _SKI),
    Photo("cell", ("phase microscope image of a single cell floating in saline",), _SKI),
    Photo(
        "motorcycle",
        (
            "a red motorcycle parked in a workshop with shelves and boxes",
            "side view of a parked red motorbike indoors",
        ),
        _SKI,
        offensive="ugly piece of shit motorbike, who even rides this junk",
    ),
    Photo(
        "china",
        (
            "a Chinese temple pagoda on a hillside above a lake, trees in front",
            "the Summer Palace in Beijing, a tall pagoda overlooking the lake",
        ),
        "scikit-learn sample images",
        cp1252="Pagode chinoise au Palais d’Été, à Pékin",
    ),
    Photo(
        "flower",
        (
            "close-up of an orange dahlia flower",
            "an orange flower with many layered petals on a dark green background",
        ),
        "scikit-learn sample images",
        cp1252="Dahlia orangé — une très belle fleur",
    ),
    Photo(
        "grace_hopper",
        (
            "portrait of Grace Hopper in US Navy uniform, an American flag behind her",
            "Grace Hopper, computer scientist and US Navy officer, official portrait",
        ),
        "matplotlib sample data",
        cp1252="Grace Hopper — “Amazing Grace”, pionnière de l’informatique",
    ),
) + tuple(
    Photo(f"lfw_face_{i}", (caption,), "scikit-image sample data (LFW subset)", variants_ok=False)
    for i, caption in LFW_FACES.items()
)
BY_NAME = {p.name: p for p in CATALOGUE}


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _load_array(name: str) -> np.ndarray:
    if name.startswith("lfw_face_"):
        import skimage.data

        face = skimage.data.lfw_subset()[int(name.rsplit("_", 1)[1])]
        return (face * 255).round().astype(np.uint8)
    if name == "motorcycle":
        import skimage.data

        return skimage.data.stereo_motorcycle()[0]
    if name in ("china", "flower"):
        # The files themselves: importing sklearn just to read two JPEGs costs over a second.
        spec = importlib.util.find_spec("sklearn")
        if spec is None or spec.origin is None:
            raise FileNotFoundError("scikit-learn is not installed")
        path = Path(spec.origin).parent / "datasets" / "images" / f"{name}.jpg"
        return np.asarray(Image.open(path).convert("RGB"))
    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            return np.asarray(Image.open(fh).convert("RGB"))
    arr = _skimage(name)()
    return (arr * 255).astype(np.uint8) if arr.dtype == bool else arr


@cache
def encoded(name: str) -> Encoded:
    """The photo as stored in the demo: scaled to at most MAX_SIDE, JPEG (PNG if it has alpha)."""
    arr = _load_array(name)
    img = Image.fromarray(arr)
    ow, oh = img.size
    if name.startswith("lfw_face_"):
        img = img.resize((ow * 4, oh * 4), Image.Resampling.BICUBIC)
    elif max(ow, oh) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if img.mode == "RGBA":
        img.save(out, format="PNG", optimize=False)
        ext = ".png"
    else:
        img.save(out, format="JPEG", quality=90)
        ext = ".jpg"
    return Encoded(out.getvalue(), ext, img.width, img.height, ow, oh, img)
