"""How far to trust each Safety check: its precision and recall on the demo's planted truth
(measured by ``backend.scorer_eval`` and committed), shown beside the score it belongs to."""

from __future__ import annotations

from backend import scorer_eval

# the figures of each check's rule and the threshold it flags at (by the check's column; a
# test holds these equal to backend.safety_checks.CHECKS)
CHECK_FIGURES = {
    "toxicity": ("toxicity_or_profanity", 0.8),
    "nsfw": ("nsfw", 0.5),
    "watermark": ("watermark", 0.5),
    "text_overlay": ("text_overlay", 0.02),
    "clip_similarity": ("clip_similarity", 0.2),
}


def check_line(columns: list[str]) -> str | None:
    """One caption for the flag counts: each shown check's precision and recall at its rule's
    threshold, or None when none was measured."""
    parts = []
    figs = scorer_eval.measured().get("scores", {})
    for col in columns:
        name, t = CHECK_FIGURES.get(col, ("", None))
        s = figs.get(name)
        if not s or s.get("not_run") or s.get("note"):
            continue
        c = next((c for c in s["curve"] if abs(c["t"] - t) < 1e-9), None)
        if c is None:  # not measured at the check's threshold: say nothing rather than guess
            continue
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
