"""The worker pool: a function over a stream of items, in worker processes, results in input order.

Workers are forked (where the platform can) so that what the parent imported before is shared; they die
with the parent, even when it is killed with SIGKILL, and Ctrl-C in the parent (or SIGTERM, under
`sketchprep.outputs.sigterm_raises`) stops them at once rather than after the items in progress.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[..., R], items: Iterable[T], *args, workers: int = 1) -> Iterator[R]:
    """`fn(item, *args)` for every item, in order, in `workers` processes (in this one for 1).

    The look-ahead is bounded (two items per worker in flight), so memory follows the workers, not the
    stream. Close the generator (or let an error end it) to stop the pool: it does not wait for the
    items in progress. `fn`, the items and the results must be picklable.
    """
    if workers <= 1:
        for item in items:
            yield fn(item, *args)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(os.getpid(),))
    try:
        pending = []
        for item in items:
            pending.append(pool.submit(fn, item, *args))
            if len(pending) >= 2 * workers:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()
    except BaseException:  # an error, Ctrl-C, SIGTERM (see outputs.sigterm_raises) or the caller stopping early
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def workers_share_memory(workers: int) -> bool:
    """Whether `ordered_map` with this many workers runs `fn` where this process's memory, as it is when
    the map starts, can be read (in this process, or in workers forked from it)."""
    import multiprocessing

    return workers <= 1 or "fork" in multiprocessing.get_all_start_methods()


def _worker_init(parent: int) -> None:
    """In each worker: die with the parent, leave Ctrl-C to the parent (it stops the pool)."""
    import signal

    from ..outputs import die_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (outputs.sigterm_raises): just end
    die_with_parent(signal.SIGKILL, parent)  # the kernel kills the worker when the parent dies, even by kill -9


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a worker pool now: no waiting for the chunks in progress.

    concurrent.futures has no "terminate", so this reaches into the executor: a worker killed while it
    sends a result leaves the executor's thread waiting for the rest of the message on a pipe whose write
    end the parent also holds, and a full task pipe leaves the queue's feeder thread waiting for a reader;
    at exit the interpreter joins both threads and would hang for ever. Closing the parent's write end
    gives the reader end-of-file, and the feeder is not joined.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    call_queue = getattr(pool, "_call_queue", None)
    if call_queue is not None:
        call_queue.cancel_join_thread()
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)  # shutdown() forgets it
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        try:
            p.kill()
        except (OSError, ValueError):
            pass
    for p in processes:
        try:
            p.join(timeout=2)
        except (OSError, ValueError, AssertionError):
            pass
    if writer is not None:
        try:
            writer.close()
        except OSError:
            pass
