"""Embedding throughput of the models Tailscope uses, on this machine's CPU or a GPU.

    .venv/bin/python bench/embed.py [--device cpu|cuda] [--seconds 8]

Model speed on preprocessed inputs (image decoding excluded: it runs in DataLoader workers).
Baseline in the same run: each model in plain fp32 (channels-first), against the settings the
embed step uses (bf16 autocast where the hardware has it, channels_last). ViT-B-32 runs with
random weights: this measures throughput only (no CLIP weights can be downloaded here).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from backend import models  # noqa: E402


def rate(fn, n_per_call: int, seconds: float, device: str) -> float:
    fn()  # warm-up (cudnn autotune, lazy init)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0, calls = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return calls * n_per_call / (time.perf_counter() - t0)


def fp32_images(enc: models.Encoder, x: torch.Tensor):
    net = enc.model

    def run():
        with torch.inference_mode():
            y = net.extract_features(x) if enc.id == "effnet" else net.encode_image(x)
            return y.float().cpu()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    device = models.pick_device(args.device)
    batch = 512 if device.startswith("cuda") else 64
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), torch {torch.__version__}, "
          f"{os.cpu_count()} cores, batch {batch}, cpu bf16: {models.cpu_bf16()}")
    print(f"{'model':<44} {'input':<8} {'fp32/s':>9} {'tailscope/s':>12} {'ratio':>7}")
    encoders = [models.load_effnet(device)]
    try:
        encoders.append(models.load_clip("ViT-B-32", pretrained=None, device=device))
        encoders[-1].name = "open_clip ViT-B-32 (random weights: speed only)"
    except models.ModelUnavailable as e:
        print(f"skip ViT-B-32: {e}")
    for enc in encoders:
        size = 224
        x = torch.randn(batch, 3, size, size, device=device)
        base = rate(fp32_images(enc, x), batch, args.seconds, device)
        cpu_x = x.cpu()
        ours = rate(lambda enc=enc, cpu_x=cpu_x: enc.encode_image_tensors(cpu_x), batch,
                    args.seconds, device)
        print(f"{enc.name[:44]:<44} {'image':<8} {base:>9.1f} {ours:>12.1f} {ours / base:>6.2f}x")
    texts = [f"a photo of {i} red circles on a grass background, close-up" for i in range(batch)]
    text_encoders = [e for e in encoders if "text" in e.modalities]
    with contextlib.suppress(models.ModelUnavailable, ImportError):
        text_encoders.insert(0, models.load_minilm(device))
    for enc in text_encoders:
        ours = rate(lambda enc=enc: enc.encode_texts(texts, batch_size=batch), batch,
                    args.seconds, device)
        print(f"{enc.name[:44]:<44} {'caption':<8} {'-':>9} {ours:>12.1f} {'-':>7}")


if __name__ == "__main__":
    main()
