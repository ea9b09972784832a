"""Overlapped bulk processing: decode ahead, run the network, encode behind, in bounded memory.

A bulk job spends part of each photo's time decoding and encoding it, work that does not need the
network. Three kinds of threads share it: one *reader* decodes the next photos into a queue of at most
``depth`` items, ``workers`` threads run the network on them, and one *writer* encodes and writes the
results from a queue of at most ``depth`` items. At most ``2 * depth + workers`` photos are in memory
at once, whatever the number of files. Decoders (Pillow, OpenCV), encoders and PyTorch's kernels
release the GIL, so the stages overlap on a multi-core machine.

Each job ends in exactly one call of ``done(job, error)`` (``error`` is None on success), from the
thread that finished it; ``done`` must be thread-safe (it usually updates a progress bar). A failing
job does not stop the others. :meth:`Pipeline.stop` (e.g. on Ctrl-C) lets the photos in flight
finish and skips the rest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

__all__ = ["Pipeline", "PipelineStats"]

Job = TypeVar("Job")
Item = TypeVar("Item")
Result = TypeVar("Result")

_END = object()


@dataclass
class _Entry:
    """A job travelling between stages with what it carries, or the error that ended it."""

    job: object
    value: object = None
    error: BaseException | None = None


@dataclass
class PipelineStats:
    """What a run did: jobs finished without error, jobs failed, jobs skipped after :meth:`Pipeline.stop`."""

    done: int = 0
    failed: int = 0
    skipped: int = 0


class Pipeline(Generic[Job, Item, Result]):
    """Runs ``read -> work -> write`` over jobs with the stages overlapped (see the module docstring).

    Args:
        read: decodes a job's input (reader thread).
        work: enhances it (``workers`` threads).
        write: encodes and writes the result (writer thread).
        done: called once per job with ``None`` or the exception that ended it.
        workers: threads running ``work`` (>= 1).
        depth: capacity of the read-ahead and the write-behind queues (>= 1).
        failures: the exceptions that fail one job (reported through ``done``); any other exception
            stops the run and is raised by :meth:`run`, as it would be in a plain loop.
    """

    def __init__(
        self,
        read: Callable[[Job], Item],
        work: Callable[[Job, Item], Result],
        write: Callable[[Job, Result], None],
        done: Callable[[Job, BaseException | None], None],
        *,
        workers: int = 1,
        depth: int = 2,
        failures: tuple[type[Exception], ...] = (Exception,),
    ) -> None:
        if workers < 1 or depth < 1:
            raise ValueError(f"workers and depth must be >= 1, got {workers} and {depth}")
        self._read, self._work, self._write, self._done = read, work, write, done
        self.workers, self.depth, self.failures = workers, depth, failures
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.stats = PipelineStats()

    def stop(self) -> None:
        """Finish the photos in flight, start no new one."""
        self._stop.set()

    def _finish(self, job: Job, error: BaseException | None) -> None:
        with self._lock:
            if error is None:
                self.stats.done += 1
            else:
                self.stats.failed += 1
        self._done(job, error)

    def run(self, jobs: Iterable[Job]) -> PipelineStats:
        """Process every job (until :meth:`stop`); returns the counts. Blocks until all threads end."""
        read_q: queue.Queue[object] = queue.Queue(self.depth)
        write_q: queue.Queue[object] = queue.Queue(self.depth)
        errors: list[BaseException] = []  # an exception escaping a stage's own handling (a bug)

        def put(target: queue.Queue[object], entry: object) -> None:
            """Put, unless a stage has died (then nobody may be left to take it)."""
            while not errors:
                try:
                    target.put(entry, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def guarded(stage: Callable[[], None]) -> Callable[[], None]:
            def target() -> None:
                try:
                    stage()
                except BaseException as exc:  # keep it to re-raise in the caller's thread
                    errors.append(exc)
                    self._stop.set()

            return target

        def reader() -> None:
            try:
                for job in jobs:
                    if self._stop.is_set():
                        with self._lock:
                            self.stats.skipped += 1
                        continue
                    try:
                        entry = _Entry(job, self._read(job))
                    except self.failures as exc:
                        entry = _Entry(job, error=exc)
                    put(read_q, entry)
            finally:
                for _ in range(self.workers):
                    put(read_q, _END)

        def worker() -> None:
            try:
                while not errors:
                    try:
                        entry = read_q.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if not isinstance(entry, _Entry):  # the end marker
                        break
                    job = cast(Job, entry.job)
                    if entry.error is not None:
                        self._finish(job, entry.error)
                        continue
                    try:
                        put(write_q, _Entry(job, self._work(job, cast(Item, entry.value))))
                    except self.failures as exc:
                        self._finish(job, exc)
            finally:
                put(write_q, _END)

        def writer() -> None:
            ended = 0
            while ended < self.workers and not errors:
                try:
                    entry = write_q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if not isinstance(entry, _Entry):  # a worker's end marker
                    ended += 1
                    continue
                job = cast(Job, entry.job)
                try:
                    self._write(job, cast(Result, entry.value))
                except self.failures as exc:
                    self._finish(job, exc)
                else:
                    self._finish(job, None)

        threads = [threading.Thread(target=guarded(reader), name="read", daemon=True)]
        threads += [
            threading.Thread(target=guarded(worker), name=f"work-{i}", daemon=True)
            for i in range(self.workers)
        ]
        threads.append(threading.Thread(target=guarded(writer), name="write", daemon=True))
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)  # short joins keep the main thread responsive to signals
        except KeyboardInterrupt:
            self.stop()
            for thread in threads:
                thread.join()
            raise
        if errors:
            raise errors[0]
        return self.stats
