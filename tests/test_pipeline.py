"""The overlapped bulk pipeline: every job once, failures isolated, bounded memory, real overlap, stop."""

from __future__ import annotations

import threading

import pytest

from enlightengan.commands._pipeline import Pipeline


def _collect(workers: int = 1, depth: int = 2, **stages: object) -> tuple[Pipeline, dict, list]:
    written: dict[int, int] = {}
    outcomes: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def done(job: int, error: BaseException | None) -> None:
        with lock:
            outcomes.append((job, None if error is None else str(error)))

    pipeline: Pipeline = Pipeline(
        stages.get("read", lambda job: job * 10),  # type: ignore[arg-type]
        stages.get("work", lambda job, item: item + 1),  # type: ignore[arg-type]
        stages.get("write", lambda job, result: written.__setitem__(job, result)),  # type: ignore[arg-type]
        done,
        workers=workers,
        depth=depth,
    )
    return pipeline, written, outcomes


@pytest.mark.parametrize("workers", [1, 3])
def test_every_job_is_read_worked_written_and_reported_once(workers: int) -> None:
    pipeline, written, outcomes = _collect(workers=workers)
    stats = pipeline.run(range(20))
    assert written == {job: job * 10 + 1 for job in range(20)}
    assert sorted(outcomes) == [(job, None) for job in range(20)]
    assert (stats.done, stats.failed, stats.skipped) == (20, 0, 0)


def test_a_failure_in_any_stage_is_reported_for_its_job_and_the_rest_go_on() -> None:
    def read(job: int) -> int:
        if job == 1:
            raise ValueError("cannot decode")
        return job

    def work(job: int, item: int) -> int:
        if job == 2:
            raise RuntimeError("out of memory")
        return item

    def write(job: int, result: int) -> None:
        if job == 3:
            raise OSError("disk full")
        written[job] = result

    pipeline, written, outcomes = _collect(read=read, work=work, write=write)
    stats = pipeline.run(range(6))
    assert written == {0: 0, 4: 4, 5: 5}
    assert dict(outcomes) == {
        0: None,
        1: "cannot decode",
        2: "out of memory",
        3: "disk full",
        4: None,
        5: None,
    }
    assert (stats.done, stats.failed) == (3, 3)


def test_memory_is_bounded_by_the_queues() -> None:
    alive = {"now": 0, "most": 0}
    lock = threading.Lock()
    release = threading.Event()

    def read(job: int) -> int:
        with lock:
            alive["now"] += 1
            alive["most"] = max(alive["most"], alive["now"])
        return job

    def write(job: int, result: int) -> None:
        release.wait(5)  # a slow writer: everything upstream must wait for it
        with lock:
            alive["now"] -= 1

    pipeline, _, outcomes = _collect(workers=2, depth=2, read=read, write=write)
    timer = threading.Timer(0.5, release.set)
    timer.start()
    pipeline.run(range(50))
    timer.cancel()
    assert len(outcomes) == 50
    # depth items read ahead + one per worker + depth waiting to be written + the one being written
    # + the one the reader holds while the read-ahead queue is full
    assert alive["most"] <= 2 * 2 + 2 + 2


def test_the_next_photo_is_read_while_the_network_works() -> None:
    second_read = threading.Event()

    def read(job: int) -> int:
        if job == 1:
            second_read.set()
        return job

    def work(job: int, item: int) -> int:
        if job == 0:
            # the network holds job 0 until job 1 has been decoded: only read-ahead lets this finish
            assert second_read.wait(5), "job 1 was not read while job 0 was being enhanced"
        return item

    pipeline, _, outcomes = _collect(read=read, work=work)
    pipeline.run(range(3))
    assert dict(outcomes) == {0: None, 1: None, 2: None}


def test_stop_finishes_the_photos_in_flight_and_skips_the_rest() -> None:
    pipeline, written, _ = _collect(depth=1)

    def work(job: int, item: int) -> int:
        if job == 2:
            pipeline.stop()
        return item

    pipeline._work = work  # type: ignore[method-assign]
    stats = pipeline.run(range(100))
    assert stats.skipped > 0 and stats.done + stats.skipped == 100
    assert sorted(written) == list(range(stats.done))  # nothing lost in between


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="workers and depth"):
        Pipeline(lambda j: j, lambda j, i: i, lambda j, r: None, lambda j, e: None, workers=0)


def test_an_exception_outside_the_failures_stops_the_run_and_is_raised() -> None:
    def work(job: int, item: int) -> int:
        if job == 3:
            raise TypeError("a bug, not a bad photo")
        return item

    written: dict[int, int] = {}
    pipeline: Pipeline = Pipeline(
        lambda job: job,
        work,
        lambda job, result: written.__setitem__(job, result),
        lambda job, error: None,
        failures=(ValueError, OSError),
    )
    with pytest.raises(TypeError, match="a bug"):
        pipeline.run(range(100))
    assert 3 not in written and len(written) < 100
