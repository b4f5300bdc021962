"""The demo pipeline, once: generate, ingest, embed, index, map, score, dedup, concepts.

The CLI's ``demo`` verb, the home page's "Build the demo" button and the tests call
:func:`build_demo`; each draws progress its own way through a :class:`Reporter` (terminal
bars, Streamlit bars), so the steps and their arguments cannot drift apart between them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from backend import paths
from backend.executor import Executor

# The steps in order, with the line a user sees while each runs.
STEPS = {
    "generate": "Generating images and captions (with some broken items on purpose)",
    "ingest": "Ingesting the shards into the store",
    "embed": "Embedding images and captions (CLIP if its weights load, else packaged)",
    "index": "Building the search indexes",
    "map": "Placing every row on the map and naming its clusters",
    "score": "Scoring safety and quality, and finding duplicates",
    "concepts": "Counting concepts mined from the captions",
}
# update(part, done, total, rows=None): one call per progress tick of a step's part.
Update = Callable[..., None]


class Reporter(Protocol):
    """How a caller shows the pipeline: a block per step yielding its progress callback, a
    call with each step's record when it ends, and notes (which model, and why)."""

    def stage(self, step: str, text: str) -> AbstractContextManager[Update]: ...

    def done(self, step: str, record: Any) -> None: ...

    def note(self, text: str) -> None: ...


class Quiet:
    """A :class:`Reporter` that shows nothing (tests, scripts)."""

    @contextmanager
    def stage(self, step: str, text: str) -> Iterator[Update]:
        yield lambda *a, **k: None

    def done(self, step: str, record: Any) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass
class DemoPlan:
    """What to build: the demo's size and seed, where, with which workers and models, and
    ``through`` which step (``"ingest"``: the CLI's ``--no-embed``)."""

    name: str = "demo"
    rows: int = 5000
    seed: int = 0
    root: Path | None = None
    workers: int | None = None  # ingest processes (None: all cores)
    embed_workers: int | None = None  # embedding processes (None: embed's default)
    through: str = "concepts"
    model: str = "auto"  # embed mode: auto, clip or packaged
    clip: dict[str, str | None] = field(default_factory=dict)  # clip_model/_pretrained/_checkpoint
    device: str | None = None
    batch_size: int | None = None
    executor: Callable[[], Executor | None] = lambda: None  # a fresh one per step


def needs_generate(source: Path, rows: int, seed: int) -> bool:
    """Whether the demo source must be (re)written: its ground truth, written last by the
    generator, records another size or seed, or is missing."""
    truth = source / "ground_truth.json"
    current = json.loads(truth.read_text()) if truth.is_file() else {}
    return current.get("rows_requested") != rows or current.get("seed") != seed


def build_demo(plan: DemoPlan, reporter: Reporter | None = None) -> dict[str, Any]:
    """Build the demo dataset ``plan.name`` step by step; returns each step's record by step
    name (``ingest``: the :class:`backend.ingest.BuildResult`)."""
    from backend.demo import generate
    from backend.ingest import build

    rep = reporter or Quiet()
    out: dict[str, Any] = {}
    source = paths.dataset_dir(plan.name, plan.root) / "source"
    if needs_generate(source, plan.rows, plan.seed):
        with rep.stage("generate", STEPS["generate"]) as update:
            out["generate"] = generate(source, rows=plan.rows, seed=plan.seed,
                                       progress=lambda d, t: update("items", d, t))  # fmt: skip
        rep.done("generate", out["generate"])
    executor = plan.executor()
    if executor:
        executor.connect()  # one Ray cluster for every step of the demo build
    with rep.stage("ingest", STEPS["ingest"]) as update:
        out["ingest"] = build(plan.name, source, "webdataset", root=plan.root,
                              workers=plan.workers, executor=plan.executor(),
                              progress=lambda d, t, r: update("shards", d, t, r))  # fmt: skip
    rep.done("ingest", out["ingest"])
    if plan.through == "ingest":
        return out
    _build_steps(plan, rep, out)
    return out


def _build_steps(plan: DemoPlan, rep: Reporter, out: dict[str, Any]) -> None:
    """Embed (real CLIP if it loads, else the demo CLIP), index, map, score and dedup, then
    the concepts mined from the captions."""
    from backend.concepts.run import analyse, mine_store
    from backend.dedup import dedup
    from backend.democlip import for_demo
    from backend.embed import embed
    from backend.map import build_map
    from backend.safety.run import score
    from backend.search import build_indexes

    name, root = plan.name, plan.root
    clip = [plan.clip.get(k) for k in ("clip_model", "clip_pretrained", "clip_checkpoint")]
    model, pretrained, checkpoint, note = for_demo(plan.model, *clip)
    if note:
        rep.note(note)
    out["clip"] = {"clip_model": model, "clip_pretrained": pretrained,
                   "clip_checkpoint": checkpoint}  # fmt: skip
    with rep.stage("embed", STEPS["embed"]) as update:
        out["embed"] = embed(name, root=root, mode=plan.model, clip_model=model,
                             clip_pretrained=pretrained, clip_checkpoint=checkpoint,
                             device=plan.device, batch_size=plan.batch_size,
                             workers=plan.embed_workers, progress=update,
                             executor=plan.executor())  # fmt: skip
    rep.done("embed", out["embed"])
    with rep.stage("index", STEPS["index"]) as update:
        out["index"] = build_indexes(name, root=root, progress=update, executor=plan.executor())
    rep.done("index", out["index"])
    with rep.stage("map", STEPS["map"]) as update:
        out["map"] = build_map(name, root, progress=update, executor=plan.executor())
    rep.done("map", out["map"])
    with rep.stage("score", STEPS["score"]) as update:
        out["score"] = score(name, root=root, progress=update, executor=plan.executor())
        out["dedup"] = dedup(name, root, progress=update)
    rep.done("score", (out["score"], out["dedup"]))
    with rep.stage("concepts", STEPS["concepts"]) as update:
        out["concepts"] = analyse(name, mine_store(name, root), root, progress=update,
                                  executor=plan.executor())  # fmt: skip
    rep.done("concepts", out["concepts"])
