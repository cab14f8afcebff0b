"""Worker processes for CPU-bound work whose results must not depend on how many run.

:func:`parallel_map` is ``map`` over a process pool that yields results in input order, so
work that is deterministic per item (rendering a scene from its seed) gives the same output
with 1 worker or 16. With one worker, or one job, it runs in this process.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def _context(spawn: bool) -> multiprocessing.context.BaseContext:
    # fork starts in milliseconds and suits NumPy work; spawn is the safe one elsewhere and for
    # workers that use CUDA (a forked child of a process that has initialised CUDA cannot)
    method = "fork" if sys.platform.startswith("linux") and not spawn else "spawn"
    return multiprocessing.get_context(method)


def _one_thread_each() -> None:
    """Worker initializer: one BLAS / OpenMP thread per process, so that N workers share the
    cores instead of each starting a thread per core (on 2 cores, 2 workers rendering 256 px
    scenes were slower than one until this: 8.2 against 10.3 images/s; 18.1 with it)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def parallel_map(
    fn: Callable[[Job], Result], jobs: Sequence[Job], workers: int, spawn: bool = False
) -> Iterator[Result]:
    """Yield ``fn(job)`` for each of ``jobs``, in order, computed by ``workers`` processes.

    ``fn`` must be a module-level function (it is pickled by reference) and ``jobs``
    picklable. ``workers <= 1`` or a single job: computed here, lazily, one at a time.
    ``spawn``: start the workers as fresh interpreters even where fork is available.
    """
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(
        min(workers, len(jobs)), mp_context=_context(spawn), initializer=_one_thread_each
    ) as pool:
        yield from pool.map(fn, jobs)
