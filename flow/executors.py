"""Where independent tasks run: in this process, in local processes, or as Ray tasks.

The grids' trials and the many-designs builds are lists of independent tasks. Each executor
runs ``fn(*args)`` for every item and yields an :class:`Outcome` as each one finishes; a task
that raises is an outcome with its error (one line), never the end of the others.

- ``process`` (the default): ``jobs`` local processes (``spawn``), or this process for ``jobs=1``.
- ``ray``: one Ray task per item with its CPU request; ``RAY_ADDRESS`` names an existing cluster
  (``ray start --head`` on one machine, ``ray start --address=<head>:6379`` on the others),
  without it a local Ray starts with this machine's cores. Ray schedules; nothing here does.
  Results come back to the driver (which writes every cache and report); the tasks read their
  inputs (a teacher run, a run folder) and write their run folders at the paths they are given,
  so on a cluster those paths must be on storage every worker sees at the same place.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Callable, Iterator, Sequence

from training.errors import FlowError, UserError

EXECUTORS = ("process", "ray")


@dataclass
class Outcome:
    """One finished task: its item, and its result or the error it raised (one line)."""

    item: Any
    result: Any = None
    error: str | None = None
    exit_code: int | None = None  # of a failed task: 2 for a user error (one sentence), 1 for a crash


def _guarded(fn: Callable[..., Any], args: tuple) -> tuple[Any, str | None, int | None]:
    """Run ``fn(*args)``; return ``(result, error, exit_code)`` so that every executor reports alike."""
    try:
        return fn(*args), None, None
    except UserError as exc:
        return None, str(exc), 2
    except Exception as exc:  # noqa: BLE001  (a failing task is reported, the others go on)
        where = traceback.extract_tb(exc.__traceback__)[-1:]
        place = f" at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno}" if where else ""
        return None, f"{type(exc).__name__}: {exc}{place}", 1


def _guarded_in(cwd: str, fn: Callable[..., Any], args: tuple) -> tuple[Any, str | None, int | None]:
    """:func:`_guarded` in the driver's working directory (relative paths mean the same on a worker)."""
    try:
        os.chdir(cwd)
    except OSError:
        return None, f"the worker has no folder {cwd}: on a cluster, run from storage every worker sees at that path", 2
    return _guarded(fn, args)


def _die_with_driver(driver: int) -> None:
    """Pool initializer: on Linux, have the kernel end this worker when its driver dies.

    A driver killed outright (``kill``, the OOM killer) cannot stop its workers, and a spawned
    worker is not in the driver's reach otherwise: each would train its trial to the end, for
    nothing, holding a core and its memory. ``PR_SET_PDEATHSIG`` (prctl(2)) sends it SIGTERM
    instead. Elsewhere (macOS) there is no such call, and this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != driver:  # the driver died before the call: nobody is left to send the signal
        os._exit(1)


def check_executor(name: str) -> None:
    """Refuse an unknown executor, and ``ray`` where Ray is not installed, in one sentence."""
    if name not in EXECUTORS:
        raise FlowError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise FlowError("EXECUTOR=ray needs Ray: make install (the lock pins ray)") from None


class TaskRunner:
    """Runs ``fn(*args_of(item))`` for every item on one executor; :meth:`run` yields each
    :class:`Outcome` as it finishes, and :attr:`slots` says how many run at once.

    ``jobs``: local processes (``process``; 1 runs in this process); ``num_cpus``: each Ray
    task's CPU request (``ray``).
    """

    def __init__(self, executor: str = "process", jobs: int = 1, num_cpus: float = 1) -> None:
        check_executor(executor)
        self.executor, self.jobs, self.num_cpus = executor, max(1, jobs), num_cpus
        self.slots = self.jobs

    def run(self, fn: Callable[..., Any], items: Sequence[Any], args_of: Callable[[Any], tuple]) -> Iterator[Outcome]:
        """Run every item; yield outcomes in the order they finish."""
        if not items:
            return
        if self.executor == "ray":
            yield from self._ray(fn, items, args_of)
        elif self.jobs == 1:
            for item in items:
                yield Outcome(item, *_guarded(fn, args_of(item)))
        else:
            with ProcessPoolExecutor(max_workers=self.jobs, mp_context=get_context("spawn"),
                                     initializer=_die_with_driver, initargs=(os.getpid(),)) as pool:
                futures = {pool.submit(_guarded, fn, args_of(item)): item for item in items}
                for future in as_completed(futures):
                    try:
                        result = future.result()
                    except Exception as exc:  # noqa: BLE001  (the worker process itself died)
                        result = (None, f"the worker process died ({type(exc).__name__}: {exc})", 1)
                    yield Outcome(futures[future], *result)

    def _ray(self, fn, items, args_of) -> Iterator[Outcome]:
        import ray

        started = ray_started()
        try:
            self.slots = max(1, int(ray.cluster_resources().get("CPU", 1) // self.num_cpus))
            remote = ray.remote(num_cpus=self.num_cpus, max_retries=0)(_guarded_in)
            cwd = os.getcwd()
            pending = {remote.remote(cwd, fn, args_of(item)): item for item in items}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                item = pending.pop(done[0])
                try:
                    result = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001  (the worker died: Ray's own error)
                    result = (None, f"the Ray task died ({type(exc).__name__}: {str(exc).splitlines()[0]})", 1)
                yield Outcome(item, *result)
        finally:
            if started:
                ray.shutdown()


def ray_started() -> bool:
    """Start Ray (``RAY_ADDRESS``'s cluster, or a local one with this machine's cores) unless it
    runs already; True where this call started it."""
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS") or None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local Ray needs no token; a cluster sets its own
    try:
        ray.init(address=address, num_cpus=None if address else (os.cpu_count() or 1), include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at RAY_ADDRESS={address}" if address else "a local Ray"
        raise FlowError(f"could not start {where} ({exc})") from None
    return True
