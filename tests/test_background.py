from __future__ import annotations

import threading
import time

import pytest

from cnnviz_widgets.widgets.background import Cancelled, Job, LatestWinsRunner


@pytest.fixture
def runner():
    runner = LatestWinsRunner(name="test-worker")
    yield runner
    runner.close()


def _slow(steps: int, log: list, tag: str, delay: float = 0.01):
    def work(job: Job):
        for step in range(steps):
            job.check()
            job.report((step, steps))
            log.append((tag, step))
            time.sleep(delay)
        return tag

    return work


def test_result_reaches_on_done(runner):
    done = []
    runner.submit(lambda job: 6 * 7, on_done=done.append)
    assert runner.wait(timeout=5)
    assert done == [42]


def test_newest_request_wins_and_stale_results_never_arrive(runner):
    log, done = [], []
    first = runner.submit(_slow(200, log, "first"), on_done=done.append)
    time.sleep(0.05)
    runner.submit(_slow(3, log, "second"), on_done=done.append)
    assert runner.wait(timeout=5)
    assert first.cancelled
    assert done == ["second"]
    assert max(step for tag, step in log if tag == "first") < 100  # stopped early


def test_waiting_requests_are_dropped_for_the_newest(runner):
    done = []
    gate, started = threading.Event(), threading.Event()

    def blocker(job):
        started.set()
        return gate.wait(5) and "blocker"

    runner.submit(blocker, on_done=done.append)
    assert started.wait(5)  # the later requests must queue behind a running job
    skipped = [
        runner.submit(lambda job, i=i: f"skipped {i}", on_done=done.append) for i in range(5)
    ]
    runner.submit(lambda job: "last", on_done=done.append)
    gate.set()
    assert runner.wait(timeout=5)
    assert all(job.cancelled for job in skipped)
    assert done == ["last"]  # the blocker was cancelled too: its result is dropped


def test_cancel_stops_within_half_a_second(runner):
    log = []
    runner.submit(_slow(10_000, log, "long"))
    time.sleep(0.05)
    started = time.perf_counter()
    runner.cancel()
    assert runner.wait(timeout=5)
    assert time.perf_counter() - started < 0.5
    assert not runner.busy


def test_progress_is_reported_and_errors_go_to_on_error(runner):
    progress, errors = [], []
    runner.submit(_slow(3, [], "p", delay=0), on_progress=lambda job, p: progress.append(p))
    assert runner.wait(timeout=5)
    assert progress == [(0, 3), (1, 3), (2, 3)]

    def broken(job):
        raise ValueError("bad channel")

    runner.submit(broken, on_error=errors.append)
    assert runner.wait(timeout=5)
    assert [str(e) for e in errors] == ["bad channel"]
    # the worker survived the error
    done = []
    runner.submit(lambda job: "still alive", on_done=done.append)
    assert runner.wait(timeout=5) and done == ["still alive"]


def test_check_raises_cancelled_with_the_job_number():
    job = Job(7)
    job.cancel()
    with pytest.raises(Cancelled, match="job 7 was replaced by a newer request"):
        job.check()


def test_one_worker_thread_however_many_requests(runner):
    before = threading.active_count()
    for i in range(50):
        runner.submit(lambda job, i=i: i)
    assert runner.wait(timeout=5)
    assert threading.active_count() <= before + 1
    runner.close()
    assert not any(t.name == "test-worker" for t in threading.enumerate())
