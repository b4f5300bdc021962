"""Where a build step's per-shard work runs: this process, a local process pool, or Ray.

A step cuts its work into :class:`Unit` s, one per shard (a source tar or parquet file, or the
rows that came from it). A unit is a module-level function and its arguments; it writes its
output atomically (temp file, then rename) and returns a small summary, so running it twice is
harmless. That contract is what makes the three executors interchangeable:

- ``inline``: one after another in this process (tests, debugging, one-shard datasets);
- ``local`` (the default): a process pool on this machine;
- ``ray``: tasks on a Ray cluster (``--ray-address auto`` or ``ray://host:10001``; none starts
  a local cluster). Workers need this package importable and the dataset folder on a shared
  file system (docs/scaling.md).

A unit whose worker dies (killed, out of memory, node lost) or that raises is retried up to
``retries`` times; the step's caller skips units whose output is already committed, so a
rerun after a crash does only what is left. Progress is reported per finished unit.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from backend import paths

KINDS = ("inline", "local", "ray")

Done = Callable[[str, Any], None]  # (unit key, unit result), called as each unit finishes


def counting(progress: Callable[[str, int, int], None] | None, phase: str, done: int,
             total: int) -> Done:  # fmt: skip
    """A ``done`` callback for units that return how many rows they did: reports
    ``progress(phase, rows done so far, total)``, starting from ``done``."""
    state = {"done": done}

    def finished(_key: str, rows: int) -> None:
        state["done"] += rows
        if progress:
            progress(phase, state["done"], total)

    return finished


class UnitFailed(RuntimeError):
    """A unit failed on every try; the message names it and the last error."""


@dataclass(frozen=True)
class Unit:
    """One shard's work: ``fn(*args)``, named ``key`` for progress and errors."""

    key: str
    fn: Callable[..., Any]
    args: tuple = ()


@dataclass
class Executor:
    """How to run units: ``kind`` (inline, local, ray), worker count, Ray address, retries."""

    kind: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    retries: int = 2
    cpus: int = 1  # CPUs a Ray task asks for (a GPU unit wants several, to decode images)
    gpus: float = 0.0  # GPUs a Ray task asks for (0.5: two units share one GPU)
    preload: tuple[str, ...] = ("backend.executor",)
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown executor {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.ray_address and self.kind != "ray":
            raise ValueError("--ray-address needs --executor ray")
        if self.cpus < 1 or self.gpus < 0:
            raise ValueError("a unit needs at least one CPU and no negative GPUs")

    def describe(self) -> dict[str, Any]:
        """What goes into a step's manifest record."""
        out: dict[str, Any] = {"kind": self.kind, "workers": self.workers}
        if self.kind == "ray":
            out.update(ray_address=self.ray_address or "local", cpus=self.cpus, gpus=self.gpus)
        return out

    def unit_threads(self, units: int) -> int:
        """Threads a unit should use: 1 when units run side by side (a Ray task has one CPU),
        all cores when they run one at a time in this process."""
        if self.kind == "ray":
            return self.cpus
        side_by_side = self.kind == "local" and self._workers(units) > 1
        return 1 if side_by_side else os.cpu_count() or 1

    def connect(self) -> None:
        """Start or join the Ray cluster now, so that several steps share it (no-op else)."""
        if self.kind == "ray":
            _ensure_ray(self.ray_address, self.workers)

    def run(self, units: Sequence[Unit], done: Done | None = None) -> dict[str, Any]:
        """Run every unit (retrying failures); return ``{key: result}``."""
        self.stats = {"retried": 0, "units": len(units)}
        if not units:
            return {}
        if self.kind == "inline" or (self.kind == "local" and self._workers(len(units)) == 1):
            return self._inline(units, done)
        if self.kind == "local":
            return self._local(units, done)
        return self._ray(units, done)

    def _workers(self, units: int) -> int:
        """Pool processes for ``units`` units: the asked-for count, never more than units."""
        return max(1, min(self.workers or os.cpu_count() or 1, units))

    def _inline(self, units: Sequence[Unit], done: Done | None) -> dict[str, Any]:
        results = {}
        for u in units:
            for attempt in range(self.retries + 1):
                try:
                    results[u.key] = u.fn(*u.args)
                    break
                except Exception as e:
                    if attempt == self.retries:
                        raise UnitFailed(f"shard {u.key} failed {attempt + 1} times: {e}") from e
                    self.stats["retried"] += 1
            if done:
                done(u.key, results[u.key])
        return results

    def _local(self, units: Sequence[Unit], done: Done | None) -> dict[str, Any]:
        """A forkserver pool; a pool broken by a dead worker is replaced and its units resent."""
        ctx = multiprocessing.get_context("forkserver")  # safe inside threaded servers
        # Never the default preload of ``__main__``: inside Streamlit that is a page script,
        # which the fork server would run bare and die of; and backend.pool_child first, so
        # that no worker runs it either.
        ctx.set_forkserver_preload(["backend.pool_child", *self.preload])
        results: dict[str, Any] = {}
        tries = {u.key: 0 for u in units}
        pending = list(units)
        while pending:
            pool = ProcessPoolExecutor(
                max_workers=self._workers(len(pending)), mp_context=ctx, initializer=one_thread
            )
            futures: dict[Future, Unit] = {pool.submit(u.fn, *u.args): u for u in pending}
            pending = []
            broken = False
            try:
                while futures:
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        u = futures.pop(fut)
                        try:
                            results[u.key] = fut.result()
                        except Exception as e:
                            broken = broken or isinstance(e, BrokenProcessPool)
                            tries[u.key] += 1
                            if tries[u.key] > self.retries:
                                raise UnitFailed(
                                    f"shard {u.key} failed {tries[u.key]} times: {e}"
                                ) from e
                            self.stats["retried"] += 1
                            pending.append(u)
                            continue
                        if done:
                            done(u.key, results[u.key])
                    if broken:  # every other future of this pool fails too: resend them
                        pending.extend(futures.values())
                        futures = {}
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        return results

    def _ray(self, units: Sequence[Unit], done: Done | None) -> dict[str, Any]:
        import ray

        started_here = _ensure_ray(self.ray_address, self.workers)
        try:
            have = ray.cluster_resources()
            for what, need in (("CPU", self.cpus), ("GPU", self.gpus)):
                if need and not any(  # a task no node can hold would wait forever
                    node.get("Resources", {}).get(what, 0) >= need for node in ray.nodes()
                ):
                    raise UnitFailed(
                        f"no node of the Ray cluster has {need} {what} for one unit (the "
                        f"cluster has {have.get(what, 0)} in all): lower --{what.lower()}s-per-"
                        "unit or add such nodes"
                    )
            remote = ray.remote(
                num_cpus=self.cpus,
                num_gpus=self.gpus,
                max_retries=self.retries,
                retry_exceptions=True,
            )(run_unit)
            refs = {remote.remote(u.fn, u.args): u for u in units}
            results: dict[str, Any] = {}
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    u = refs.pop(ref)
                    try:
                        results[u.key] = ray.get(ref)
                    except Exception as e:
                        raise UnitFailed(
                            f"shard {u.key} failed {self.retries + 1} times on Ray: {e}"
                        ) from e
                    if done:
                        done(u.key, results[u.key])
            return results
        finally:
            if started_here:
                ray.shutdown()


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def one_thread() -> None:
    """A pool worker runs one unit at a time on one core, as a Ray task with ``num_cpus=1``
    does (Ray sets the same variables): without this every library in every worker starts a
    thread per core and the workers fight over the cores."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def run_unit(fn: Callable[..., Any], args: tuple) -> Any:
    """A unit as a Ray task (its workers show up as ``ray::run_unit`` while busy)."""
    return fn(*args)


def _local_token() -> None:
    """A local cluster's servers (GCS, raylet, workers) listen on every interface: Ray binds
    them to the node's address, not to loopback, whatever ``_node_ip_address`` says. So a local
    cluster gets Ray's token authentication with a random token for this process and its
    children, unless ``RAY_AUTH_MODE`` is set (docs/scaling.md: securing a real cluster)."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    import secrets

    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    os.environ["RAY_AUTH_MODE"] = "token"
    try:  # Ray reads the mode when it is imported: make an already imported Ray see it
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
    except ImportError:  # an older Ray without token authentication
        os.environ["RAY_AUTH_MODE"] = "disabled"
        return
    _enable_token_auth()


def _ensure_ray(address: str | None, workers: int | None) -> bool:
    """Connect to ``address`` (or start a local cluster of ``workers`` CPUs); True when this
    call started it, so the step shuts it down again."""
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"PYTHONPATH": str(paths.REPO_ROOT), "RAY_AUTH_MODE": "disabled"}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        env = {"env_vars": {"PYTHONPATH": str(paths.REPO_ROOT)}}
        _local_token()
        ray.init(
            num_cpus=workers or os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env=env,
        )
    return True


def add_arguments(parser) -> None:
    """``--executor``, ``--ray-address`` and ``--workers`` for a build step's CLI verb."""
    parser.add_argument(
        "--executor",
        choices=("local", "ray", "in-process"),
        default="local",
        help="where the per-shard work runs: a local process pool (default), Ray, or this "
        "process chunk by chunk (what the app's buttons do)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to use (auto, or ray://head:10001); default: start a local one",
    )
    parser.add_argument(
        "--cpus-per-unit",
        type=int,
        default=1,
        help="CPUs a Ray task takes (GPU embedding: enough to decode images)",
    )
    parser.add_argument(
        "--gpus-per-unit",
        type=float,
        default=0.0,
        help="GPUs a Ray task takes (embedding on GPU nodes: 1, or 0.5 to share)",
    )
    if not any(a.dest == "workers" for a in parser._actions):
        parser.add_argument("--workers", type=int, default=None, help="processes (default: cores)")


def from_args(args) -> Executor | None:
    """The executor the CLI arguments ask for (None: in this process)."""
    kind = getattr(args, "executor", None)
    if getattr(args, "ray_address", None):
        kind = "ray"
    if kind in (None, "in-process"):
        return None
    return Executor(
        kind,
        workers=getattr(args, "workers", None),
        ray_address=args.ray_address,
        cpus=getattr(args, "cpus_per_unit", 1),
        gpus=getattr(args, "gpus_per_unit", 0.0),
    )
