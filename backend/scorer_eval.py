"""How well each scorer finds the demo's planted problems: precision and recall against the
demo's ``ground_truth.json``, at a grid of thresholds, and the threshold each default comes from.

The figures are measured on a built demo and committed (:data:`MEASURED`), so the Safety page
can show them beside each score without the demo at hand:

    python -m backend.scorer_eval demo            # print the table
    python -m backend.scorer_eval demo --write    # and store it in backend/scorer_eval.json

A score is judged only against a problem the demo really plants (offensive captions,
watermarks, duplicates, captions that do not describe their image). Nothing NSFW is planted,
so for ``nsfw`` only the false positives among the demo's clean images can be counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend import paths
from backend.store import connect

MEASURED = Path(__file__).with_name("scorer_eval.json")
SCORER = {"profanity": "toxicity", "toxicity_or_profanity": "toxicity", "text_overlay": "ocr",
          "clip_similarity": "clip", "dup_phash_group": "phash"}  # target -> the scorer behind it
DOCS = Path(__file__).resolve().parent.parent / "docs" / "scorers.md"
BEGIN, END = "<!-- scorer-eval:begin -->", "<!-- scorer-eval:end -->"
EXACT_MAX = 20_000  # rows up to which the semantic sweep compares all pairs
PROB_GRID = tuple(round(x, 2) for x in np.arange(0.05, 1.0, 0.05))


@dataclass(frozen=True)
class Target:
    name: str  # the key in the stored figures (a score column, or a rule's name)
    truth: str  # what it should find: a set from :func:`planted`
    rule: str  # how a row is flagged, in words (``{t}``: the threshold)
    columns: tuple[str, ...]
    high_is_bad: bool = True
    grid: tuple[float, ...] = PROB_GRID
    default: float | None = None  # the threshold the app used before this measurement


TARGETS = (
    Target("toxicity", "offensive", "toxicity > {t}", ("toxicity",), default=0.5),
    Target("profanity", "offensive", "profanity > {t}", ("profanity",), grid=(0,), default=0),
    Target("toxicity_or_profanity", "offensive", "toxicity > {t} OR profanity > 0",
           ("toxicity", "profanity")),
    Target("nsfw", "nsfw", "nsfw > {t}", ("nsfw",), default=0.5),
    Target("watermark", "watermarked", "watermark > {t}", ("watermark",), default=0.5),
    Target("text_overlay", "watermarked", "text_overlay >= {t}", ("text_overlay",),
           grid=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2), default=0.01),
    Target("clip_similarity", "mismatched", "clip_similarity < {t}", ("clip_similarity",),
           high_is_bad=False, grid=tuple(round(x, 2) for x in np.arange(-0.2, 0.61, 0.05)),
           default=0.2),
    Target("dup_exact_group", "exact_duplicates", "in an exact group", ("dup_exact_group",)),
    Target("phash", "duplicates", "pHash within {t} bits of another row", ("phash",),
           grid=(0, 2, 4, 6, 8, 10, 12), default=8),
    Target("dup_phash_group", "duplicates", "in a pHash group", ("dup_phash_group",)),
    Target("semantic", "duplicates", "image cosine ≥ {t} to another row", ("_img_nearest",),
           grid=(0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999), default=0.95),
    Target("dup_semantic_group", "duplicates", "in a semantic group", ("dup_semantic_group",)),
)  # fmt: skip


def planted(truth: dict[str, Any]) -> dict[str, set[str]]:
    """Keys of the rows carrying each planted problem (an empty set: planted nowhere)."""
    exact = {k for group in truth.get("exact_duplicates", []) for k in group}
    near = {k for g in truth.get("near_duplicates", []) for k in (g["original"], *g["variants"])}
    mismatched = set(truth.get("mismatched_captions", {})) | set(
        truth.get("uninformative_captions", {})
    )
    return {
        "offensive": set(truth.get("offensive", [])),
        "watermarked": set(truth.get("watermarked", {})),
        "nsfw": set(truth.get("nsfw", [])),
        "exact_duplicates": exact,
        "duplicates": exact | near,
        "mismatched": mismatched,
    }


def _nearest_bits(hashes: np.ndarray, most: int = 12) -> np.ndarray:
    """Each hash's Hamming distance to its nearest other hash (``most`` + 1 when farther):
    a row is flagged at threshold t when it has a neighbour within t bits."""
    from backend.phash_pairs import all_pairs, hamming

    h = np.ascontiguousarray(hashes, dtype=np.int64)
    i, j = all_pairs(h, most)
    best = np.full(len(h), most + 1, dtype=np.int64)
    if len(i):
        d = hamming(h[i].view(np.uint64), h[j].view(np.uint64)).astype(np.int64)
        np.minimum.at(best, i, d)
        np.minimum.at(best, j, d)
    return best


def _nearest_cosine(name: str, root: Path | None, n: int) -> np.ndarray | None:
    """Each row's highest image cosine to another row, from CLIP image vectors (exact, so only
    for demo-sized data); None without CLIP vectors or past :data:`EXACT_MAX` rows."""
    from backend.embed import load_vectors
    from backend.embedding_sets import describe

    if not describe(name, root).get("cross_modal") or n > EXACT_MAX:
        return None
    x = np.asarray(load_vectors(name, "img", root), dtype=np.float32)
    best = np.full(len(x), -1.0, dtype=np.float32)
    for lo in range(0, len(x), 2048):
        s = x[lo:lo + 2048] @ x.T
        s[np.arange(len(s)), np.arange(lo, lo + len(s))] = -1  # not itself
        best[lo:lo + 2048] = s.max(axis=1)
    return best


def _flags(t: Target, cols: dict[str, np.ndarray], thr: float) -> np.ndarray:
    if t.name == "phash":
        return cols["_phash_nearest"] <= thr
    if t.name == "semantic":
        return cols["_img_nearest"] >= thr
    if t.name == "toxicity_or_profanity":
        return (np.nan_to_num(cols["toxicity"], nan=0) > thr) | (cols["profanity"] > 0)
    v = cols[t.columns[0]]
    if t.name.startswith("dup_"):
        return v >= 0  # grouped (NULL read as -1)
    if t.name == "text_overlay":
        return np.nan_to_num(v, nan=-np.inf) >= thr
    return np.nan_to_num(v, nan=-np.inf if t.high_is_bad else np.inf) > thr if t.high_is_bad \
        else np.nan_to_num(v, nan=np.inf) < thr  # fmt: skip


def _pr(flag: np.ndarray, pos: np.ndarray) -> dict[str, Any]:
    tp, n_flag, n_pos = int((flag & pos).sum()), int(flag.sum()), int(pos.sum())
    return {"flagged": n_flag, "true": tp,
            "precision": round(tp / n_flag, 3) if n_flag else None,
            "recall": round(tp / n_pos, 3) if n_pos else None}  # fmt: skip


def _choose(curve: list[dict[str, Any]], high_is_bad: bool) -> dict[str, Any]:
    """The grid point with the best F1; ties go to the threshold that flags more (a lower one
    when high is bad), so recall is kept on data unlike the demo."""
    def f1(c: dict[str, Any]) -> float:
        p, r = c["precision"] or 0.0, c["recall"] or 0.0
        return 2 * p * r / (p + r) if p + r else 0.0

    best = max(f1(c) for c in curve)
    tied = [c for c in curve if f1(c) == best]
    return min(tied, key=lambda c: c["t"]) if high_is_bad else max(tied, key=lambda c: c["t"])


def evaluate_target(t: Target, cols: dict[str, np.ndarray], pos: np.ndarray) -> dict[str, Any]:
    """Precision and recall of one target over the grid, the chosen threshold, and the old
    default's figures."""
    curve = [{"t": thr, **_pr(_flags(t, cols, thr), pos)} for thr in t.grid]
    out: dict[str, Any] = {"rule": t.rule, "truth": t.truth, "positives": int(pos.sum()),
                           "rows": int(len(pos)), "curve": curve}  # fmt: skip
    if not pos.any():  # nothing planted: only false positives can be counted
        at = next((c for c in curve if c["t"] == t.default), curve[0])
        out.update(chosen=at, note=f"nothing {t.truth} is planted in the demo: it flags "
                   f"{at['flagged']} of its {len(pos):,} rows at {at['t']}, all false "
                   "positives")  # fmt: skip
        return out
    out["chosen"] = _choose(curve, t.high_is_bad)
    if t.default is not None:
        out["before"] = next((c for c in curve if c["t"] == t.default), None)
    return out


def evaluate(name: str, root: Path | None = None) -> dict[str, Any]:
    """Every target whose columns dataset ``name`` has, against its ground truth."""
    ds = paths.dataset_dir(name, root)
    truth = json.loads((ds / "source" / "ground_truth.json").read_text())
    sets = planted(truth)
    con = connect(name, root)
    try:
        have = {r[0] for r in con.execute("DESCRIBE samples").fetchall()}
        wanted = sorted({c for t in TARGETS for c in t.columns} & have)
        got = con.execute(
            "SELECT key, " + ", ".join(f'"{c}"' if c == "phash" else
                                       f'CAST("{c}" AS DOUBLE) AS "{c}"' for c in wanted)
            + " FROM samples ORDER BY row_id"
        ).fetchnumpy()
    finally:
        con.close()
    keys = np.asarray(got.pop("key"), dtype=object)
    if "phash" in got:  # int64 hashes: a float would lose bits
        ph = np.ma.asarray(got.pop("phash"))
        valid = ~np.ma.getmaskarray(ph)
        near = np.full(len(keys), 99, dtype=np.int64)
        near[valid] = _nearest_bits(np.asarray(ph[valid], dtype=np.int64))
        got["phash"] = np.where(valid, 0.0, np.nan)
        got["_phash_nearest"] = near
    cols = {c: np.asarray(np.ma.filled(np.ma.asarray(v, dtype=float), np.nan)) for c, v in
            got.items()}  # fmt: skip
    for c in cols:
        if c.startswith("dup_"):
            cols[c] = np.nan_to_num(cols[c], nan=-1)
    nearest = _nearest_cosine(name, root, len(keys))
    if nearest is not None:
        cols["_img_nearest"] = nearest
    from backend.manifest import read_manifest
    from backend.not_run import skipped

    not_run = skipped(name, root)
    steps = read_manifest(paths.manifest_path(name, root)).get("steps", {})
    ran = steps.get("score", {}).get("scorers", {})
    scorer_models = {k: v.get("model") for k, v in ran.items()}
    models = {t.name: scorer_models.get(SCORER.get(t.name, t.name)) for t in TARGETS}
    models["dup_semantic_group"] = steps.get("dedup", {}).get("semantic", {}).get("model")
    models["semantic"] = steps.get("embed", {}).get("kinds", {}).get("img", {}).get("model")
    scores = {}
    for t in TARGETS:
        if not all(c in cols for c in t.columns):
            continue
        if any(c in not_run for c in t.columns):  # an all-NULL column is not "0 found"
            scores[t.name] = {"rule": t.rule, "truth": t.truth, "dataset": name,
                              "not_run": not_run[t.columns[0]]["why"]}  # fmt: skip
            continue
        pos = np.array([k in sets[t.truth] for k in keys])
        scores[t.name] = {**evaluate_target(t, cols, pos), "dataset": name,
                          "model": models.get(t.name)}  # fmt: skip
    return {"dataset": name, "rows": int(len(keys)), "seed": truth.get("seed"),
            "rows_requested": truth.get("rows_requested"), "scores": scores}  # fmt: skip


def measured() -> dict[str, Any]:
    """The committed figures ({} when absent or unreadable: the page then shows none)."""
    try:
        return json.loads(MEASURED.read_text())
    except (OSError, ValueError):
        return {}


def describe(name: str, threshold: float | None = None) -> str | None:
    """One line for the page: precision and recall of ``name`` on the demo's planted truth, at
    the measured threshold nearest ``threshold`` (the chosen one when None)."""
    figs = measured()
    s = figs.get("scores", {}).get(name)
    if not s:
        return None
    at = s["chosen"]
    if threshold is not None and len(s["curve"]) > 1:
        at = min(s["curve"], key=lambda c: abs(c["t"] - threshold))
    where = f"the {s.get('rows', figs.get('rows', 0)):,}-row demo's planted truth"
    if s.get("not_run"):
        return None
    if s.get("note"):
        return f"On {where}: {s['note']}."
    rule = s["rule"].format(t=at["t"])
    p = "–" if at["precision"] is None else f"{at['precision']:.2f}"
    return (f"On {where} ({s['positives']} {s['truth'].replace('_', ' ')}): {rule} flags "
            f"{at['flagged']:,}, precision {p}, recall {at['recall']:.2f}")  # fmt: skip


def table(figs: dict[str, Any]) -> str:
    """The figures as a Markdown table (docs/scorers.md carries one)."""
    lines = ["| score | finds | demo rows | planted | rule | flagged | precision | recall |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, s in figs["scores"].items():
        if s.get("not_run"):
            lines.append(f"| `{name}` | {s['truth']} | – | – | not run: {s['not_run']} "
                         "| – | – | – |")  # fmt: skip
            continue
        for label, c in (("before", s.get("before")), ("chosen", s["chosen"])):
            if c is None or (label == "before" and c["t"] == s["chosen"]["t"]):
                continue
            p = "–" if c["precision"] is None else f"{c['precision']:.2f}"
            r = "–" if c["recall"] is None else f"{c['recall']:.2f}"
            rule = s["rule"].format(t=c["t"]) + (" (old default)" if label == "before" else "")
            lines.append(f"| `{name}` | {s['truth']} | {s['rows']:,} | {s['positives']} | "
                         f"{rule} | {c['flagged']} | {p} | {r} |")  # fmt: skip
    return "\n".join(lines)


def _write_docs(text: str) -> None:
    """The table between docs/scorers.md's scorer-eval markers (when the file has them)."""
    if not DOCS.is_file():
        return
    doc = DOCS.read_text()
    head, sep, rest = doc.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if sep and sep2:
        DOCS.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="a built demo dataset (scored and deduplicated)")
    ap.add_argument("--write", action="store_true", help=f"store the figures in {MEASURED.name}")
    args = ap.parse_args(argv)
    try:
        figs = evaluate(args.name)
    except FileNotFoundError as e:
        print(f"{args.name} has no ground truth (only the demo plants one): {e}", file=sys.stderr)
        return 2
    print(table(figs))
    if args.write:  # a score this run could not measure keeps its earlier figures (and says
        old = measured().get("scores", {})  # on which demo: OCR runs on a smaller one)
        keep = {k: v for k, v in old.items() if k not in figs["scores"] or (
            figs["scores"][k].get("not_run") and not v.get("not_run"))}  # fmt: skip
        figs["scores"] = {**figs["scores"], **keep}
        MEASURED.write_text(json.dumps(figs, indent=1) + "\n")
        _write_docs(table(figs))
        print(f"wrote {MEASURED} and its table in {DOCS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
