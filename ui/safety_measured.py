"""How far to trust each Safety check: its precision and recall on the demo's planted truth
(measured by ``backend.scorer_eval`` and committed), shown beside the score it belongs to."""

from __future__ import annotations

from backend import scorer_eval

# the figures that belong to each check's rule (by the check's score column)
CHECK_FIGURES = {
    "toxicity": "toxicity_or_profanity",
    "nsfw": "nsfw",
    "watermark": "watermark",
    "text_overlay": "text_overlay",
    "clip_similarity": "clip_similarity",
}


def check_line(columns: list[str]) -> str | None:
    """One caption for the flag counts: each shown check's precision and recall at its rule's
    threshold, or None when none was measured."""
    parts = []
    figs = scorer_eval.measured().get("scores", {})
    for col in columns:
        name = CHECK_FIGURES.get(col)
        s = figs.get(name or "")
        if not s or s.get("not_run") or s.get("note"):
            continue
        c = s["chosen"]
        p = "–" if c["precision"] is None else f"{c['precision']:.2f}"
        parts.append(f"`{s['rule'].format(t=c['t'])}` precision {p}, recall {c['recall']:.2f} "
                     f"({s['positives']} planted)")  # fmt: skip
    nsfw = figs.get("nsfw")
    if "nsfw" in columns and nsfw and nsfw.get("note"):
        parts.append(nsfw["note"])
    if not parts:
        return None
    return "Measured on the demo's planted truth (docs/scorers.md): " + " · ".join(parts)


def score_line(column: str, threshold: float) -> str | None:
    """Precision and recall of ``column`` at the measured threshold nearest ``threshold``."""
    return scorer_eval.describe(column, threshold)


def demo_clip_line(embed: dict, columns: list[str]) -> str | None:
    """Which of the shown scores come from the demo CLIP, with what it knows (None: none)."""
    from backend.democlip import DEMO_CLIP_NOTE, is_demo_clip

    demo = is_demo_clip(embed.get("kinds", {}).get("img", {}).get("model"))
    used = [c for c in ("clip_similarity", "dup_semantic_group") if c in columns]
    if not demo or not used:
        return None
    verb = "comes" if len(used) == 1 else "come"
    return f"{' and '.join(f'`{c}`' for c in used)} {verb} from the **{DEMO_CLIP_NOTE}**."
