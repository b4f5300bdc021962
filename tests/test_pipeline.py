"""The one demo pipeline (backend.pipeline): the steps it runs, what it reports, and that the
source is written once for a size and seed."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from backend.pipeline import STEPS, DemoPlan, build_demo, needs_generate


class Recorder:
    """A Reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.stages: list[str] = []
        self.done_steps: list[str] = []
        self.ticks: list[tuple] = []

    @contextmanager
    def stage(self, step: str, text: str):
        assert text == STEPS[step]
        self.stages.append(step)
        yield lambda *a: self.ticks.append((step, *a))

    def done(self, step: str, record) -> None:
        self.done_steps.append(step)

    def note(self, text: str) -> None:
        raise AssertionError(f"no note expected before embed: {text}")


def test_demo_through_ingest_generates_once_and_reports_each_step(tmp_path: Path) -> None:
    rep = Recorder()
    plan = DemoPlan(name="tiny", rows=130, seed=3, root=tmp_path, workers=1, through="ingest")
    out = build_demo(plan, rep)
    source = tmp_path / "tiny" / "source"
    truth = json.loads((source / "ground_truth.json").read_text())
    assert rep.stages == rep.done_steps == ["generate", "ingest"]
    assert out["ingest"].rows == truth["expected_samples"] > 0
    assert out["ingest"].rejects == truth["expected_rejects"] > 0
    assert {t[1] for t in rep.ticks if t[0] == "generate"} == {"items"}
    assert any(t[1] == "shards" and len(t) == 5 for t in rep.ticks)  # rows read ride along
    assert not needs_generate(source, 130, 3) and needs_generate(source, 130, 4)

    again = Recorder()
    stamp = (source / "ground_truth.json").stat().st_mtime_ns
    build_demo(plan, again)  # same size and seed: the source is kept, ingest reruns
    assert again.stages == ["ingest"]
    assert (source / "ground_truth.json").stat().st_mtime_ns == stamp
    assert (tmp_path / "tiny" / "store.duckdb").is_file()
