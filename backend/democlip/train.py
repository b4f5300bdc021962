"""Train the demo CLIP: open_clip's own model, tokenizer and ``ClipLoss`` on generated scenes.

Deterministic in its seed on one machine (seeded torch and numpy, data order from the seed,
a fixed thread count). Writes the checkpoint (a state dict, which
``open_clip.create_model_and_transforms(MODEL_NAME, pretrained=PATH)`` loads), the loss curve
(json + png) and returns a card with size, sha256, settings and the command that remakes it.

With ``trunk="effnet"`` (the default) the image trunk is the packaged ImageNet EfficientNet
(``trunk.py``), frozen: each scene's trunk features are computed once and the projection and
the text tower are trained on them. ``trunk="none"`` trains every layer from scratch (the
slower way, kept for comparison: see README for what each measured).
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
from backend.democlip.data import Scenes, epoch_batches, features, scenes, to_tensor


@dataclass
class Settings:
    """Every knob of one training run (recorded in the card)."""

    model: str = MODEL_NAME
    trunk: str = "effnet"  # "effnet": frozen packaged ImageNet trunk; "none": all from scratch
    scenes: int = 12_000
    epochs: int = 15
    batch: int = 120  # 10 groups of the 12 shapes
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 100
    seed: int = 0
    threads: int = 1  # one thread: the same on any machine, and fast on a busy one
    grouped: bool = True  # batches of whole shape groups, no repeated truth (data.py)
    augment: bool = True  # (from scratch only) crop, flip, brightness
    prompt_mix: float = 0.3  # share of captions re-phrased with generic zero-shot templates
    logit_max: float = 12.0  # cap on the learned logit scale (CLIP's own cap is 100)
    group_aware: bool = True  # captions never drop what tells a scene's group apart (captions.py)
    shape_only: float = 0.5  # (group_aware) share of shape-group captions naming the shape only


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


def _rephrase(spec, rng: random.Random) -> str:
    """A generic prompt ("a photo of the large red circle.") so that zero-shot templates land
    where the captions do."""
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
    if s.group_aware:
        from backend.democlip.captions import group_captions

        return group_captions(data, epoch, s.seed, s.prompt_mix, s.shape_only)
    caps = data.captions(epoch)
    rng = random.Random(f"rephrase/{s.seed}/{epoch}")
    return [_rephrase(data.spec(i), rng) if rng.random() < s.prompt_mix else c
            for i, c in enumerate(caps)]  # fmt: skip


def create(model: str = MODEL_NAME):
    """A fresh (randomly initialised) model of the registered config, and its tokenizer."""
    import open_clip

    from backend.models import CONFIG_DIR

    open_clip.add_model_config(CONFIG_DIR)
    return open_clip.create_model(model, pretrained=None), open_clip.get_tokenizer(model)


def _image_size(model) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, tuple | list) else size)


def _data(model, s: Settings, size: int) -> Scenes:
    """The training scenes: trunk features (frozen trunk) or pixels (from scratch)."""
    from tqdm import tqdm

    bar = tqdm(desc="render training scenes", total=s.scenes, file=sys.stderr, leave=False)
    tick = lambda d, n: bar.update(d - bar.n)  # noqa: E731
    try:
        if s.trunk == "effnet":
            from backend.democlip.trunk import load_into

            load_into(model.visual.trunk)
            with __import__("torch").no_grad():  # as the fp16 checkpoint will hold them
                for t in model.visual.trunk.state_dict().values():
                    if t.is_floating_point():
                        t.copy_(t.half().float())
            model.visual.trunk.eval()
            return features(s.scenes, s.seed, 0, size, model.visual.trunk, tick)
        return scenes(s.scenes, s.seed, 0, size, progress=tick)
    finally:
        bar.close()


def train(s: Settings, out: Path = CHECKPOINT) -> dict:
    """Train with settings ``s``; write the checkpoint and loss curve; return the card."""
    import torch
    from open_clip.loss import ClipLoss
    from tqdm import tqdm

    torch.manual_seed(s.seed)
    np.random.seed(s.seed)
    torch.set_num_threads(s.threads)
    model, tokenizer = create(s.model)
    size = _image_size(model)
    t0 = time.perf_counter()
    data = _data(model, s, size)
    data_s = time.perf_counter() - t0
    rng = np.random.default_rng(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    plan = [epoch_batches(data, s.batch, rng) if s.grouped else
            np.array_split(rng.permutation(len(data)), len(data) // s.batch)
            for _ in range(s.epochs)]  # fmt: skip
    total = sum(len(b) for b in plan)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    loss_fn = ClipLoss()
    feats = torch.from_numpy(data.images) if s.trunk == "effnet" else None
    curve, step, t1 = [], 0, time.perf_counter()
    model.train()
    if feats is not None:
        model.visual.trunk.eval()  # frozen, batch norm included
    bar = tqdm(desc="train demo CLIP", total=total, file=sys.stderr, dynamic_ncols=True)
    for epoch, batches in enumerate(plan):
        caps = _captions(data, epoch, s)
        for idx in batches:
            for g in opt.param_groups:
                g["lr"] = _lr(step, total, s)
            loss = _step(model, tokenizer, opt, loss_fn, data, idx, caps, feats, gen, s)
            curve.append(round(loss, 4))
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{curve[-1]:.3f}")
    bar.close()
    model.eval()
    out = _save_checkpoint(model, Path(out))
    _save_curve(out, curve)
    return {
        "model": s.model,
        "checkpoint": out.name,
        "bytes": out.stat().st_size,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "command": REMAKE_COMMAND,
        "settings": asdict(s),
        "image_size": size,
        "steps": total,
        "data_seconds": round(data_s, 1),
        "train_seconds": round(time.perf_counter() - t1, 1),
        "final_loss": round(float(np.mean(curve[-50:])), 4),
        "torch": torch.__version__,
    }


def _step(
    model, tokenizer, opt, loss_fn, data, idx, caps: list[str], feats, gen, s: Settings
) -> float:
    """One optimiser step on the batch ``idx`` (image features from the frozen trunk's cached
    ``feats`` when given, else encoded from the images, augmented when ``s.augment``); its loss."""
    import torch

    if feats is not None:
        img_f = torch.nn.functional.normalize(model.visual.head(feats[idx]), dim=-1)
    else:
        x = to_tensor(data.images[idx])
        img_f = model.encode_image(_augment(x, gen) if s.augment else x, normalize=True)
    txt_f = model.encode_text(tokenizer([caps[i] for i in idx]), normalize=True)
    loss = loss_fn(img_f, txt_f, model.logit_scale.exp())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(s.logit_max))
    return loss.item()


def _save_checkpoint(model, out: Path) -> Path:
    """Write the weights, floating-point tensors as float16 (half the bytes)."""
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()},
               out)  # fmt: skip
    return out


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
