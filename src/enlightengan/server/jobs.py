"""A bounded queue in front of a thread pool: how the server keeps concurrent uploads from exhausting memory.

Each request must hold a :class:`Ticket` from :meth:`JobQueue.admit` from the moment its upload starts
until its job has finished in the pool. At most ``capacity`` tickets exist at once; the next request
gets :class:`QueueFullError` (answered with 503 and ``Retry-After``) without its body being read.
A ticket is given back when the job ends in its thread, not when the request's coroutine ends: a client
that disconnects cannot make room for more work than the pool can hold.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["JobQueue", "QueueFullError", "Ticket"]

_T = TypeVar("_T")

#: Weight of the newest job in the running average of job durations (for ``Retry-After``).
_EMA_WEIGHT = 0.3


class QueueFullError(RuntimeError):
    """Every slot is taken; ``retry_after`` is a whole number of seconds worth waiting."""

    def __init__(self, capacity: int, retry_after: int) -> None:
        super().__init__(
            f"the server is busy: {capacity} request(s) are already running or waiting; "
            f"retry in {retry_after} s"
        )
        self.retry_after = retry_after


class Ticket:
    """One admitted request's slot; :meth:`release` gives it back (once, however often it is called)."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._queue._release()


class JobQueue:
    """Admission control plus a pool of ``workers`` threads.

    Args:
        workers: threads running jobs.
        waiting: admitted jobs that may wait for a thread; ``capacity = workers + waiting``.
    """

    def __init__(self, workers: int, waiting: int) -> None:
        if workers < 1 or waiting < 0:
            raise ValueError(f"need workers >= 1 and waiting >= 0, got {workers} and {waiting}")
        self.workers = workers
        self.capacity = workers + waiting
        self._lock = threading.Lock()
        self._admitted = 0
        self._mean_seconds: float | None = None
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="enlightengan-serve")

    @property
    def admitted(self) -> int:
        """Tickets held now (running plus waiting)."""
        with self._lock:
            return self._admitted

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the running average job duration, at least 1."""
        with self._lock:
            mean = self._mean_seconds
        return max(1, math.ceil(mean)) if mean is not None else 1

    def admit(self) -> Ticket:
        """Take a slot, or raise :class:`QueueFullError` when all ``capacity`` are held."""
        with self._lock:
            if self._admitted >= self.capacity:
                full = True
            else:
                full = False
                self._admitted += 1
        if full:
            raise QueueFullError(self.capacity, self.retry_after())
        return Ticket(self)

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def _record(self, seconds: float) -> None:
        with self._lock:
            previous = self._mean_seconds
            self._mean_seconds = (
                seconds if previous is None else (1 - _EMA_WEIGHT) * previous + _EMA_WEIGHT * seconds
            )

    async def run(self, ticket: Ticket, job: Callable[[], _T], cleanup: Callable[[], None]) -> _T:
        """Run ``job`` in the pool; ``cleanup()`` then ``ticket.release()`` follow when it ends.

        Both follow the job itself, in every case: success, error, or the awaiting request being
        cancelled (a job not yet started is then dropped; a running one finishes first).
        """

        def timed() -> _T:
            start = time.perf_counter()
            try:
                return job()
            finally:
                self._record(time.perf_counter() - start)

        def finish() -> None:
            try:
                cleanup()
            finally:
                ticket.release()

        try:
            future = self._executor.submit(timed)
        except BaseException:  # the pool is shut down: nothing will run, so finish now
            finish()
            raise
        future.add_done_callback(lambda _: finish())
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Wait for running jobs, drop waiting ones, and stop the threads."""
        self._executor.shutdown(wait=True, cancel_futures=True)
