"""A bounded queue in front of a thread pool: how the server keeps concurrent uploads from exhausting memory.

Each request must hold a :class:`Ticket` from :meth:`JobQueue.admit` from the moment its upload starts
until its job has finished in the pool. At most ``capacity`` tickets exist at once; the next request
gets :class:`QueueFullError` (answered with 503 and ``Retry-After``) without its body being read.
A ticket is given back when the job ends in its thread, not when the request's coroutine ends: a client
that disconnects cannot make room for more work than the pool can hold.

``Retry-After`` is estimated from the work in the queue: the pixels of every admitted request (known from
its file's header once the upload is in, :meth:`Ticket.set_pixels`; for a request still uploading, the
mean size of the others) times the seconds per pixel the generator takes (:meth:`JobQueue.record_work`:
a running average of the measured images, or a first measurement made when the server starts). The
generator runs one image at a time, so that is about how long the queue takes to drain. With nothing
measured at all, the answer is 1 second.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["TYPICAL_PIXELS", "JobQueue", "QueueFullError", "Ticket"]

_T = TypeVar("_T")

#: Weight of the newest measurement in the running average of seconds per pixel (for ``Retry-After``).
_EMA_WEIGHT = 0.3

#: Pixels assumed for an admitted request whose size is not known yet, when no size is known at all:
#: a 12-megapixel phone photo.
TYPICAL_PIXELS = 12_000_000


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

    def set_pixels(self, pixels: int) -> None:
        """The size of this request's image (``width * height``), for the queue's time estimate."""
        self._queue._set_pixels(self, pixels)

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._queue._release(self)


class JobQueue:
    """Admission control plus a pool of ``workers`` threads.

    Args:
        workers: threads running jobs.
        waiting: admitted jobs that may wait for a thread; ``capacity = workers + waiting``.
        typical_pixels: the size assumed for a request still uploading while no size is known.
    """

    def __init__(self, workers: int, waiting: int, *, typical_pixels: int = TYPICAL_PIXELS) -> None:
        if workers < 1 or waiting < 0 or typical_pixels < 1:
            raise ValueError(
                f"need workers >= 1, waiting >= 0 and typical_pixels >= 1, got {workers}, {waiting} and "
                f"{typical_pixels}"
            )
        self.workers = workers
        self.capacity = workers + waiting
        self.typical_pixels = typical_pixels
        self._lock = threading.Lock()
        self._admitted = 0
        #: the admitted tickets and the pixels of their images (None: not known yet)
        self._work: dict[Ticket, int | None] = {}
        self._seconds_per_pixel: float | None = None
        self._first_guess: float | None = None
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="enlightengan-serve")

    @property
    def admitted(self) -> int:
        """Tickets held now (running plus waiting)."""
        with self._lock:
            return self._admitted

    @property
    def seconds_per_pixel(self) -> float | None:
        """The running average of the measured seconds per pixel, else the first guess, else ``None``."""
        with self._lock:
            return self._seconds_per_pixel if self._seconds_per_pixel is not None else self._first_guess

    def record_work(self, pixels: int, seconds: float, *, first_guess: bool = False) -> None:
        """Add a measurement: an image of ``pixels`` took ``seconds``.

        Args:
            pixels, seconds: the measurement (ignored unless both are positive).
            first_guess: a measurement made before any request (when the server starts); it is used
                until the first real one, which replaces it.
        """
        if pixels <= 0 or not seconds > 0 or not math.isfinite(seconds):
            return
        value = seconds / pixels
        with self._lock:
            if first_guess:
                self._first_guess = value
                return
            previous = self._seconds_per_pixel
            self._seconds_per_pixel = (
                value if previous is None else (1 - _EMA_WEIGHT) * previous + _EMA_WEIGHT * value
            )

    def pending_pixels(self) -> tuple[int, int]:
        """``(pixels, unknown)``: the pixels of the admitted requests whose size is known, and how many
        admitted requests are still of unknown size (uploading)."""
        with self._lock:
            sizes = list(self._work.values())
        return sum(p for p in sizes if p is not None), sum(p is None for p in sizes)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained: its pixels times the seconds per pixel, at least 1.

        A request of unknown size counts as the mean of the known ones (or :attr:`typical_pixels`);
        with no seconds-per-pixel measured yet the answer is 1.
        """
        rate = self.seconds_per_pixel
        if rate is None:
            return 1
        with self._lock:
            sizes = list(self._work.values())
        known = [p for p in sizes if p is not None]
        guess = sum(known) / len(known) if known else self.typical_pixels
        pixels = sum(known) + guess * (len(sizes) - len(known))
        return max(1, math.ceil(pixels * rate))

    def admit(self) -> Ticket:
        """Take a slot, or raise :class:`QueueFullError` when all ``capacity`` are held."""
        ticket = Ticket(self)
        with self._lock:
            if self._admitted >= self.capacity:
                full = True
            else:
                full = False
                self._admitted += 1
                self._work[ticket] = None
        if full:
            raise QueueFullError(self.capacity, self.retry_after())
        return ticket

    def _set_pixels(self, ticket: Ticket, pixels: int) -> None:
        with self._lock:
            if ticket in self._work:
                self._work[ticket] = max(int(pixels), 0)

    def _release(self, ticket: Ticket) -> None:
        with self._lock:
            self._admitted -= 1
            self._work.pop(ticket, None)

    async def run(self, ticket: Ticket, job: Callable[[], _T], cleanup: Callable[[], None]) -> _T:
        """Run ``job`` in the pool; ``cleanup()`` then ``ticket.release()`` follow when it ends.

        Both follow the job itself, in every case: success, error, or the awaiting request being
        cancelled (a job not yet started is then dropped; a running one finishes first).
        """

        def finish() -> None:
            try:
                cleanup()
            finally:
                ticket.release()

        try:
            future = self._executor.submit(job)
        except BaseException:  # the pool is shut down: nothing will run, so finish now
            finish()
            raise
        future.add_done_callback(lambda _: finish())
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Wait for running jobs, drop waiting ones, and stop the threads."""
        self._executor.shutdown(wait=True, cancel_futures=True)
