"""The executor seam: units run inline, on a local process pool or on Ray give the same
results, and a unit whose worker dies or raises is retried until it succeeds or runs out."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from backend.executor import Executor, Unit, UnitFailed, from_args


def square_once_killed(x: int, marks: str) -> int:
    """x², but the first try of an odd x kills its own worker process (a lost node)."""
    mark = Path(marks) / f"{x}.tried"
    if x % 2 and not mark.exists():
        mark.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def fail_first(x: int, marks: str) -> int:
    """Raises on the first try of every unit, then works (a flaky read)."""
    mark = Path(marks) / f"{x}.failed"
    if not mark.exists():
        mark.touch()
        raise OSError(f"flaky read of {x}")
    return x + 100


def always_fails(x: int) -> int:
    raise ValueError(f"bad shard {x}")


def _units(fn, n: int, *extra) -> list[Unit]:
    return [Unit(f"s{i}", fn, (i, *extra)) for i in range(n)]


@pytest.mark.parametrize("kind", ["inline", "local"])
def test_results_and_progress(kind: str, tmp_path: Path) -> None:
    seen = []
    ex = Executor(kind, workers=2)
    out = ex.run(_units(fail_first, 5, str(tmp_path)), lambda k, r: seen.append((k, r)))
    assert out == {f"s{i}": i + 100 for i in range(5)}
    assert sorted(seen) == sorted(out.items())  # one progress call per unit, with its result
    assert ex.stats["retried"] == 5


def test_local_pool_survives_killed_workers(tmp_path: Path) -> None:
    ex = Executor("local", workers=2, retries=3)
    out = ex.run(_units(square_once_killed, 6, str(tmp_path)))
    assert out == {f"s{i}": i * i for i in range(6)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.tried", "3.tried", "5.tried"]
    assert ex.stats["retried"] >= 3  # each killed unit, plus units lost with the broken pool


def square(x: int) -> int:
    return x * x


def test_local_workers_do_not_run_the_parents_main_script(tmp_path: Path, monkeypatch) -> None:
    """Streamlit installs each page it runs as ``__main__`` (its ``__file__``, no ``__spec__``);
    multiprocessing would re-run that script in every new worker, and a page that raises there
    killed them all (backend.pool_child)."""
    import sys
    import types

    page = tmp_path / "a_page.py"
    page.write_text("raise RuntimeError('a page script ran in a pool worker')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", main)
    out = Executor("local", workers=2, retries=0).run(_units(square, 4))
    assert out == {"s0": 0, "s1": 1, "s2": 4, "s3": 9}


@pytest.mark.parametrize("kind", ["inline", "local"])
def test_gives_up_after_retries(kind: str) -> None:
    with pytest.raises(UnitFailed, match=r"shard s0 failed 3 times: bad shard 0"):
        Executor(kind, workers=2, retries=2).run(_units(always_fails, 1))


def test_cli_arguments() -> None:
    import argparse

    from backend.executor import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    ex = from_args(p.parse_args([]))
    assert (ex.kind, ex.workers) == ("local", None)  # the CLI's default: a process pool
    assert from_args(p.parse_args(["--executor", "in-process"])) is None
    ex = from_args(p.parse_args(["--executor", "ray", "--workers", "3"]))
    assert (ex.kind, ex.workers, ex.ray_address, ex.cpus, ex.gpus) == ("ray", 3, None, 1, 0.0)
    ex = from_args(p.parse_args(["--executor", "ray", "--gpus-per-unit", "0.5",
                                 "--cpus-per-unit", "8"]))  # fmt: skip
    assert (ex.gpus, ex.cpus, ex.unit_threads(10)) == (0.5, 8, 8)
    assert Executor("local", workers=2).unit_threads(4) == 1  # side by side: one thread each
    assert Executor("local", workers=2).unit_threads(1) == os.cpu_count()  # alone: all cores
    ex = from_args(p.parse_args(["--ray-address", "auto"]))  # an address implies Ray
    assert (ex.kind, ex.ray_address) == ("ray", "auto")
    with pytest.raises(ValueError, match="needs --executor ray"):
        Executor("local", ray_address="auto")
    with pytest.raises(ValueError, match="unknown executor"):
        Executor("dask")
