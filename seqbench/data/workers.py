"""Worker processes that end with the process that started them.

:func:`process_pool` is a ``concurrent.futures.ProcessPoolExecutor`` for ``prepare`` with three guarantees
the plain executor does not give:

- **SIGTERM / SIGINT to the main process**: the workers are terminated (not waited for) and the block's
  cleanup runs (SIGTERM is turned into ``SystemExit(143)`` while the pool is open, see
  :func:`seqbench.data.base.exit_on_sigterm`). The plain executor, killed by SIGTERM, leaves its workers
  blocked forever on a queue nobody writes to.
- **The main process killed outright** (``kill -9``, the OOM killer): each worker asks the kernel for a
  SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``) and, on every platform, a watchdog thread ends
  it when its parent is gone.
- **Ctrl-C in a terminal** reaches the whole process group: workers ignore SIGINT and leave the stopping to
  the main process, so one Ctrl-C gives one clean stop, not a traceback per worker.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import signal
import sys
import threading
import time
from typing import Iterator

from seqbench.data.base import exit_on_sigterm

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, inherited through fork
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog still works
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="seqbench-parent-watch").start()


def _terminate(pool: cf.ProcessPoolExecutor) -> None:
    stop = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if stop is not None:
        stop()
        return
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:  # first: the signal may have arrived while this thread holds the executor's lock
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 5.0
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():  # pragma: no cover - SIGTERM is not caught in the workers; belt and braces
            p.kill()
            p.join(1.0)
    lock = getattr(pool, "_shutdown_lock", None)
    if lock is None or lock.acquire(blocking=False):
        if lock is not None:
            lock.release()
        pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[cf.ProcessPoolExecutor | None]:
    """A process pool of ``workers`` processes (None for ``workers <= 1``: run in this process).

    Left normally, the pool is shut down and waited for; left by an exception (a bad input, Ctrl-C, SIGTERM),
    its workers are terminated at once.

    >>> with process_pool(2) as pool:  # doctest: +SKIP
    ...     print(pool.submit(sum, [1, 2]).result())
    3
    """
    if workers <= 1:
        yield None
        return
    with exit_on_sigterm():
        pool = cf.ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(os.getpid(),))
        try:
            yield pool
        except BaseException:
            _terminate(pool)
            raise
        pool.shutdown(wait=True)
