"""Quick figures for a demo CLIP on held-out generated scenes (split 1, never trained on).

- shape/colour P@10: for each "a photo of a {colour} {shape}", the share of the 10 best images
  with that shape / colour;
- recall@50: the share of the scenes with that colour and shape among the 50 best;
- zero-shot accuracy: each image's best of the 12 shapes / 10 colours (open_clip's simple
  ImageNet templates averaged, as the concepts step does).
"""

from __future__ import annotations

import numpy as np

from backend.demo.concepts import COLOURS, SHAPES
from backend.democlip.data import scenes


def _zero_shot(encode_texts, img: np.ndarray, names: list[str]) -> np.ndarray:
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    t = np.stack([encode_texts([tpl(n) for tpl in SIMPLE_IMAGENET_TEMPLATES]).mean(0)
                  for n in names])  # fmt: skip
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return (img @ t.T).argmax(1)


def evaluate(encode_images, encode_texts, size: int, n: int = 1200, seed: int = 0) -> dict:
    """Figures for any pair of encoders (uint8 images -> unit vectors, texts -> unit vectors)."""
    data = scenes(n, seed, 1, size)
    img = np.concatenate([encode_images(data.images[i : i + 256]) for i in range(0, n, 256)])
    colours = list(COLOURS)
    queries = [(c, s) for c in range(len(colours)) for s in range(len(SHAPES))]
    txt = encode_texts([f"a photo of a {colours[c]} {SHAPES[s]}" for c, s in queries])
    sims = img @ txt.T
    p_shape, p_colour, recall = [], [], []
    for q, (c, s) in enumerate(queries):
        order = np.argsort(-sims[:, q])
        top = order[:10]
        p_shape.append(float((data.shape[top] == s).mean()))
        p_colour.append(float((data.colour[top] == c).mean()))
        relevant = (data.shape == s) & (data.colour == c)
        if relevant.any():
            recall.append(float(relevant[order[:50]].sum() / relevant.sum()))
    zs_shape = _zero_shot(encode_texts, img, list(SHAPES))
    zs_colour = _zero_shot(encode_texts, img, colours)
    return {
        "shape_p10": round(float(np.mean(p_shape)), 3),
        "colour_p10": round(float(np.mean(p_colour)), 3),
        "recall50": round(float(np.mean(recall)), 3),
        "zero_shot_shape": round(float((zs_shape == data.shape).mean()), 3),
        "zero_shot_colour": round(float((zs_colour == data.colour).mean()), 3),
        "scenes": n,
    }


def evaluate_model(model, tokenizer, size: int, n: int = 1200) -> dict:
    """:func:`evaluate` for an open_clip model in memory (training's own check)."""
    import torch

    from backend.democlip.data import to_tensor

    def images(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.encode_image(to_tensor(x), normalize=True).float().numpy()

    def texts(t: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return model.encode_text(tokenizer(t), normalize=True).float().numpy()

    model.eval()
    return evaluate(images, texts, size, n)


def evaluate_encoder(enc, n: int = 1200) -> dict:
    """:func:`evaluate` through a loaded :class:`backend.models.Encoder` (its own preprocess
    on the scenes as JPEG, as the embed step does), i.e. the path a user's checkpoint takes."""
    import io

    from PIL import Image

    size = int(enc.preprocess(Image.new("RGB", (8, 8))).shape[-1])

    def images(x: np.ndarray) -> np.ndarray:
        import torch

        def jpeg(a: np.ndarray) -> bytes:
            out = io.BytesIO()
            Image.fromarray(a).save(out, format="JPEG", quality=90)
            return out.getvalue()

        return enc.encode_image_tensors(torch.stack([enc.image_tensor(jpeg(a)) for a in x]))

    return evaluate(images, enc.encode_texts, size, n)
