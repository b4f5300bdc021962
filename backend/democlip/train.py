"""Train the demo CLIP: open_clip's own model, tokenizer and ``ClipLoss`` on generated scenes.

Deterministic in its seed on one machine (seeded torch and numpy, data order from the seed,
one fixed thread count). Writes the checkpoint (a plain state dict, which
``open_clip.create_model_and_transforms(MODEL_NAME, pretrained=PATH)`` loads), the loss curve
(json + png) and a card with size, sha256, figures and the command that remakes it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from backend.democlip import CHECKPOINT, MODEL_NAME, REMAKE_COMMAND
from backend.democlip.data import Scenes, epoch_batches, scenes

MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip's OPENAI_DATASET_MEAN/STD, as preprocess
STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class Settings:
    """Every knob of one training run (recorded in the card)."""

    model: str = MODEL_NAME
    scenes: int = 24_000
    epochs: int = 6
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 100
    seed: int = 0
    threads: int = 2
    unique: bool = True  # batches without repeated (shape, colour, count, background)
    hard: float = 0.5  # share of scenes in one-colour batches
    augment: bool = True
    prompt_mix: float = 0.3  # share of captions re-phrased with generic zero-shot templates
    view_loss: float = 0.0  # weight of an image-image ClipLoss between two augmented views


def _augment(x, gen):
    """Random crop (90-100%), flip and brightness: the near-duplicate ops the demo plants."""
    import torch
    import torch.nn.functional as F

    n, _, s, _ = x.shape
    out = torch.empty_like(x)
    crop = (s * (0.9 + 0.1 * torch.rand(n, generator=gen))).long()
    for i in range(n):
        c = int(crop[i])
        ox, oy = (int(v) for v in torch.randint(0, s - c + 1, (2,), generator=gen))
        patch = x[i : i + 1, :, oy : oy + c, ox : ox + c]
        out[i] = F.interpolate(patch, size=(s, s), mode="bilinear", align_corners=False)[0]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out * (0.85 + 0.3 * torch.rand(n, 1, 1, 1, generator=gen))


def to_tensor(images: np.ndarray):
    """uint8 (N, S, S, 3) -> normalised float (N, 3, S, S), as open_clip's preprocess does."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _rephrase(caption: str, spec, rng: random.Random) -> str:
    """Some captions as generic prompts ("a photo of the large red circle.") so that the
    zero-shot templates land where the captions do."""
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    from backend.demo.concepts import plural

    noun = spec.shape if spec.count == 1 else plural(spec.shape)
    what = rng.choice((noun, f"{spec.colour} {noun}", f"{spec.colour} {noun}", spec.colour))
    return rng.choice(SIMPLE_IMAGENET_TEMPLATES)(what)


def _lr(step: int, total: int, s: Settings) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    t = (step - s.warmup) / max(1, total - s.warmup)
    return s.lr * 0.5 * (1 + math.cos(math.pi * t))


def _captions(data: Scenes, epoch: int, s: Settings) -> list[str]:
    caps = data.captions(epoch)
    rng = random.Random(f"rephrase/{s.seed}/{epoch}")
    return [_rephrase(c, data.spec(i), rng) if rng.random() < s.prompt_mix else c
            for i, c in enumerate(caps)]  # fmt: skip


def create(model: str = MODEL_NAME):
    """A fresh (randomly initialised) model of the registered config, and its tokenizer."""
    import open_clip

    from backend.models import CONFIG_DIR

    open_clip.add_model_config(CONFIG_DIR)
    return open_clip.create_model(model, pretrained=None), open_clip.get_tokenizer(model)


def train(s: Settings, out: Path = CHECKPOINT, size: int | None = None, log=print) -> dict:
    """Train with settings ``s``; write the checkpoint, curve and card; return the card."""
    import torch
    from open_clip.loss import ClipLoss
    from tqdm import tqdm

    torch.manual_seed(s.seed)
    np.random.seed(s.seed)
    torch.set_num_threads(s.threads)
    model, tokenizer = create(s.model)
    size = size or int(model.visual.image_size[0] if isinstance(model.visual.image_size, tuple)
                       else model.visual.image_size)  # fmt: skip
    t0 = time.perf_counter()
    bar = tqdm(desc="render training scenes", total=s.scenes, file=sys.stderr, leave=False)
    data = scenes(s.scenes, s.seed, 0, size, progress=lambda d, n: bar.update(d - bar.n))
    bar.close()
    render_s = time.perf_counter() - t0
    rng = np.random.default_rng(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    plan = [epoch_batches(data, s.batch, rng, s.hard) if s.unique else
            np.array_split(rng.permutation(len(data)), len(data) // s.batch)
            for _ in range(s.epochs)]  # fmt: skip
    total = sum(len(b) for b in plan)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    loss_fn = ClipLoss()
    curve, step, t1 = [], 0, time.perf_counter()
    model.train()
    bar = tqdm(desc="train demo CLIP", total=total, file=sys.stderr, dynamic_ncols=True)
    for epoch, batches in enumerate(plan):
        caps = _captions(data, epoch, s)
        for idx in batches:
            for g in opt.param_groups:
                g["lr"] = _lr(step, total, s)
            x = to_tensor(data.images[idx])
            xa = _augment(x, gen) if s.augment else x
            text = tokenizer([caps[i] for i in idx])
            img_f = model.encode_image(xa, normalize=True)
            txt_f = model.encode_text(text, normalize=True)
            scale = model.logit_scale.exp()
            loss = loss_fn(img_f, txt_f, scale)
            if s.view_loss:
                img_b = model.encode_image(_augment(x, gen), normalize=True)
                loss = loss + s.view_loss * loss_fn(img_f, img_b, scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            curve.append(round(loss.item(), 4))
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{curve[-1]:.3f}")
    bar.close()
    model.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()},
               out)  # fmt: skip
    card = {
        "model": s.model,
        "checkpoint": out.name,
        "bytes": out.stat().st_size,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "command": REMAKE_COMMAND,
        "settings": asdict(s),
        "image_size": size,
        "steps": total,
        "render_seconds": round(render_s, 1),
        "train_seconds": round(time.perf_counter() - t1, 1),
        "torch": torch.__version__,
    }
    _save_curve(out, curve)
    return card


def _save_curve(out: Path, curve: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.with_suffix(".loss.json").write_text(json.dumps({"loss": curve}) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(curve, lw=0.6, color="#888")
    k = max(1, len(curve) // 50)
    smooth = np.convolve(curve, np.ones(k) / k, mode="valid")
    ax.plot(np.arange(len(smooth)) + k // 2, smooth, lw=1.5, color="#c33")
    ax.set_xlabel("step")
    ax.set_ylabel("CLIP loss")
    ax.set_title("demo CLIP training loss")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".loss.png"))
    plt.close(fig)
