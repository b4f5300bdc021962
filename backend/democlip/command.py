"""``python -m backend demo-clip train|eval``: remake the demo CLIP, or measure one."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from backend.democlip import CARD, CHECKPOINT, MODEL_NAME


def cmd_train(args: argparse.Namespace) -> int:
    from backend.democlip.eval import evaluate_encoder
    from backend.democlip.train import Settings, train
    from backend.models import load_clip

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing to download: a fresh model
    s = Settings(seed=args.seed)
    for key in ("epochs", "scenes", "batch", "lr", "threads", "logit_max", "shape_only",
                "group_aware"):  # fmt: skip
        if getattr(args, key) is not None:
            setattr(s, key, getattr(args, key))
    if args.group_aware is None and args.shape_only:  # a shape-only share needs group captions
        s.group_aware = True
    t0 = time.perf_counter()
    card = train(s, Path(args.out))
    enc = load_clip(MODEL_NAME, None, checkpoint=args.out, device="cpu")  # the path users take
    card["held_out"] = evaluate_encoder(enc)
    card["minutes"] = round((time.perf_counter() - t0) / 60, 2)
    out = Path(args.out)
    card_path = CARD if out.resolve() == CHECKPOINT.resolve() else out.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(card["held_out"]))
    print(f"wrote {out} ({card['bytes'] / 1e6:.1f} MB, sha256 {card['sha256'][:16]}…), "
          f"{card_path.name}, {out.with_suffix('.loss.png').name}", file=sys.stderr)  # fmt: skip
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from backend.democlip.eval import evaluate_encoder
    from backend.models import load_clip

    enc = load_clip(MODEL_NAME, None, checkpoint=args.checkpoint, device="cpu")
    print(json.dumps(evaluate_encoder(enc, n=args.scenes)))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("demo-clip", help="train or measure the demo CLIP (generated scenes)")
    verbs = p.add_subparsers(dest="verb", required=True)
    t = verbs.add_parser("train", help="train it from its seed (deterministic; minutes on CPU)")
    t.add_argument("--out", default=str(CHECKPOINT), help="checkpoint path (default: committed)")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--scenes", type=int, default=None, help="training scenes to render")
    t.add_argument("--batch", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--threads", type=int, default=None, help="torch threads (default 1)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--logit-max",
        type=float,
        default=None,
        help="cap on the logit scale (default 12; CLIP's own is 100)",
    )
    t.add_argument(
        "--group-aware",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="captions never drop what tells a scene's group apart (captions.py; default on)",
    )
    t.add_argument(
        "--shape-only",
        type=float,
        default=None,
        help="share of shape-group captions naming only the shape (default 0.5; 0 turns it off)",
    )
    t.set_defaults(func=cmd_train)
    e = verbs.add_parser("eval", help="shape/colour precision@10 etc. on held-out scenes")
    e.add_argument("--checkpoint", default=str(CHECKPOINT))
    e.add_argument("--scenes", type=int, default=1200)
    e.set_defaults(func=cmd_eval)
