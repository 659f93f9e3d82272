"""Where trials run: local processes (default) or a Ray cluster (the optional [distributed] extra).

Both ship the same unit, `execute(target, parameters, seed, quick)`, which returns the trial's result as
canonical JSON text, so a result is byte-identical whichever executor ran it. Each worker uses one torch
thread: trials are the parallelism, and more threads per worker would only oversubscribe the cores.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Iterable, Iterator

from theory.errors import UserInputError

Task = tuple[str, dict, int, bool]  # (target, parameters, seed, quick)


def _one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # read by torch when first imported
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


PARENT_POLL_SECONDS = 0.5


def _exit_with_parent(parent_pid: int) -> None:
    """Exit this process soon after `parent_pid` is gone (kill -9 included) instead of living on under init.

    A pool worker never notices on its own: it blocks reading a queue whose write end it holds too. Polling
    getppid rather than prctl(PR_SET_PDEATHSIG): that signal follows the parent *thread* that spawned the
    worker, and the pool spawns from whichever thread submits, so it could kill a worker of a live parent.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _start_worker(parent_pid: int) -> None:
    _one_thread()
    _exit_with_parent(parent_pid)


def execute(target: str, parameters: dict, seed: int, quick: bool) -> tuple[str | None, str | None, float]:
    """(result JSON, None, seconds) or (None, one-line error, seconds): a failing trial is recorded, not fatal."""
    from verify.sweep.config import canonical_json
    from verify.sweep.experiments import run_trial

    _one_thread()
    started = time.perf_counter()
    try:
        result = canonical_json(run_trial(target, parameters, seed, quick))
        return result, None, time.perf_counter() - started
    except Exception as error:  # noqa: BLE001 - recorded with the trial; the sweep goes on
        last = traceback.extract_tb(error.__traceback__)[-1]
        return None, f"{type(error).__name__}: {error} ({os.path.basename(last.filename)}:{last.lineno})", time.perf_counter() - started


def _in_flight(tasks: Iterable[Task], submit, finished, width: int) -> Iterator[tuple[Task, tuple]]:
    """Keep at most `width` tasks submitted; yield (task, outcome) for each as `finished` reports it."""
    tasks, running = iter(tasks), {}
    while True:
        while len(running) < width:
            task = next(tasks, None)
            if task is None:
                break
            running[submit(task)] = task
        if not running:
            return
        for handle, outcome in finished(list(running)):
            yield running.pop(handle), outcome


class LocalExecutor:
    """A pool of `workers` processes (spawned: a fork of a parent that has touched torch can hang).

    Workers exit within PARENT_POLL_SECONDS of the parent's death. The multiprocessing resource tracker,
    the other child, then follows by itself: it exits when the last holder of its pipe (parent and
    workers) is gone, after unlinking the pool's named semaphores the dead parent could not.
    """

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self.pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_start_worker,
                                        initargs=(os.getpid(),))

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, tuple]]:
        """Yield (task, outcome) as trials finish; at most 2 x workers in flight, so an interruption wastes little."""
        def finished(futures):
            return [(future, future.result()) for future in wait(futures, return_when=FIRST_COMPLETED)[0]]
        return _in_flight(tasks, lambda task: self.pool.submit(execute, *task), finished, 2 * self.workers)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Trials as Ray tasks (num_cpus = 1 each).

    address: None or 'local' starts a private instance on this machine (loopback, no dashboard);
    'auto' joins the cluster this machine belongs to; 'HOST:PORT' joins that cluster's head.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        try:
            import ray
        except ImportError:
            raise UserInputError("--executor ray needs the [distributed] extra: pip install -e '.[distributed]'") from None
        self.ray = ray
        started = time.perf_counter()
        options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                       runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        if address in (None, "local"):
            # a private single-machine instance; binds to loopback only
            ray.init(num_cpus=workers or os.cpu_count(), _node_ip_address="127.0.0.1", **options)
        else:
            ray.init(address=address, **options)
        self.init_seconds = time.perf_counter() - started
        self.workers = workers or int(ray.cluster_resources().get("CPU", 1))
        self.remote = ray.remote(num_cpus=1)(execute)

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, tuple]]:
        def finished(refs):
            return [(ref, self.ray.get(ref)) for ref in self.ray.wait(refs, num_returns=1)[0]]
        return _in_flight(tasks, lambda task: self.remote.remote(*task), finished, 2 * self.workers)

    def close(self) -> None:
        self.ray.shutdown()


def make_executor(kind: str, workers: int | None = None, address: str | None = None):
    if workers is not None and not 1 <= workers <= 1024:
        raise UserInputError(f"--workers must be in [1, 1024], got {workers}")
    if kind == "local":
        if address is not None:
            raise UserInputError("--address applies to --executor ray only")
        return LocalExecutor(workers)
    if kind == "ray":
        if address not in (None, "auto", "local") and not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}", address):
            raise UserInputError(f"--address {address!r}: must be auto, local or HOST:PORT")
        return RayExecutor(address, workers)
    raise UserInputError(f"--executor must be 'local' or 'ray', got {kind!r}")
