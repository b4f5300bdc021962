"""The keyword index's schema and text analysis, shared by the build and the query parser.

The query side must turn words into exactly the terms the index holds, so both take their
analyzer and field names from here; ``FORMAT`` changes when either changes.
"""

from __future__ import annotations

import tantivy

FORMAT = 1  # bump when the schema or layout changes: older indexes then read as missing
ROW_FIELD, TEXT_FIELD = "row_id", "caption"
MAX_WORD = 40  # tantivy's analyzers drop tokens of this many bytes or more (remove_long)


def _analyzer(tokenizer: str, stem: bool) -> tantivy.TextAnalyzer:
    """Python twin of tantivy's built-in ``default``/``en_stem`` analyzers (same filter chain)."""
    b = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_WORD))
        .filter(tantivy.Filter.lowercase())
    )
    if stem and tokenizer == "en_stem":
        b = b.filter(tantivy.Filter.stemmer("english"))
    return b.build()


def _schema(tokenizer: str) -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    # indexed: term-set filters on ``allowed``; fast: row id of a hit and range filters.
    sb.add_integer_field(ROW_FIELD, stored=False, indexed=True, fast=True)
    # positions: phrase queries. Not stored: the caption text lives in the DuckDB store.
    sb.add_text_field(TEXT_FIELD, stored=False, tokenizer_name=tokenizer, index_option="position")
    return sb.build()


def _pick_tokenizer() -> str:
    """``en_stem`` (lowercase + English stemmer) when these bindings have it, else ``default``."""
    try:
        probe = tantivy.Index(_schema("en_stem"))  # in RAM
        w = probe.writer(heap_size=15_000_000, num_threads=1)
        w.add_document(tantivy.Document(**{ROW_FIELD: 0, TEXT_FIELD: "cats"}))
        w.commit()
        probe.reload()
        return "en_stem" if probe.searcher().doc_freq(TEXT_FIELD, "cat") == 1 else "default"
    except Exception:  # noqa: BLE001 - any failure means: use the plain tokenizer
        return "default"
