"""The demo CLIP: a small open_clip model trained by this project on the demo's own scenes.

It exists so that every CLIP feature (text→image search, CLIP score, zero-shot concepts,
semantic duplicates, the image map) runs on learned weights offline and in CI. It is loaded
exactly like a user's checkpoint (``backend.models.load_clip(MODEL_NAME, checkpoint=...)``), so
the vectors, index, query encoding and prompts are the real code. It knows the generator's
shapes, colours, counts and backgrounds and nothing else: real CLIP weights win when they load.

This module stays import-light (no torch) so that UI code can read the constants; the model's
name and note are the registry's (:mod:`backend.models`), which loads it like any checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from backend.models import DEMO_CLIP_MODEL as MODEL_NAME  # the registry names the model
from backend.models import DEMO_CLIP_NOTE

if TYPE_CHECKING:
    from backend.models import Encoder

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CHECKPOINT = WEIGHTS_DIR / "demo-clip.pt"
CARD = WEIGHTS_DIR / "demo-clip.json"  # size, sha256, training figures, the command that remakes it
REMAKE_COMMAND = "python -m backend demo-clip train"
# Semantic duplicates on its image vectors, for the committed weights (sha256 968b0c07…): on a
# 1,000-row demo of seed 1 (not the tests' seed) two distinct scenes reach cosine 0.9966, and
# 0.997-0.999 find the same 19-20 groups, all planted (0.996: precision 0.87); on the 4,980-row
# demo they reach 0.99905: the dedup step finds 27 groups, 2 false, at 0.998 and 25, all
# planted, at 0.999 (seed-0 fixture: the same 18 true groups at 0.995-0.999). The groups are the
# planted exact copies: resized, cropped or brightened variants reach 0.53-0.998, no nearer
# than distinct scenes of one shape and colour; pHash finds 25 of the demo's 27 (README).
SEMANTIC_THRESHOLD = 0.999


def available() -> bool:
    """Whether the committed checkpoint is present (it ships with the repository)."""
    return CHECKPOINT.is_file()


def is_demo_clip(model_name: str | None) -> bool:
    """Whether an embedding record's model name is the demo CLIP."""
    return bool(model_name) and f"open_clip:{MODEL_NAME}/" in str(model_name)


def load_demo_clip(device: str | None = None) -> Encoder:
    """The demo CLIP through the user checkpoint path; raises ``ModelUnavailable`` if missing."""
    from backend.models import ModelUnavailable, load_clip

    if not available():
        raise ModelUnavailable(
            f"the demo CLIP checkpoint {CHECKPOINT} is missing: remake it with `{REMAKE_COMMAND}`"
        )
    return load_clip(MODEL_NAME, None, checkpoint=CHECKPOINT, device=device)


def for_demo(
    mode: str = "auto",
    clip_model: str | None = None,
    clip_pretrained: str | None = None,
    clip_checkpoint: str | None = None,
) -> tuple[str | None, str | None, str | None, str | None]:
    """The CLIP arguments a demo build embeds with, and a note saying which model and why.

    Weights the user named, or real CLIP weights that load, win; otherwise (offline, nothing
    cached) the demo CLIP, through the same ``--clip-model``/``--clip-checkpoint`` path. Only
    the demo takes this fallback: other datasets never get a model that knows only scenes."""
    if mode == "packaged" or clip_model or clip_pretrained or clip_checkpoint or not available():
        return clip_model, clip_pretrained, clip_checkpoint, None
    from backend.models import ModelUnavailable, load_clip

    try:
        load_clip()
    except ModelUnavailable as e:
        note = (f"real CLIP weights did not load, so the demo is embedded with the "
                f"{DEMO_CLIP_NOTE}. For real weights pass --clip-model/--clip-pretrained (cached "
                f"once online) or --clip-checkpoint PATH. Why: {e}")  # fmt: skip
        return MODEL_NAME, None, str(CHECKPOINT), note
    return None, None, None, None
