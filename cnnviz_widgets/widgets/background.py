"""Run slow work off the notebook's main thread: one job at a time, the newest request wins.

Widgets hand long computations (filter ascent, Score-CAM) to a :class:`LatestWinsRunner`. The
kernel keeps answering the browser while the job runs (TensorFlow releases the GIL during its
kernels), the job reports progress and intermediate results through callbacks, and a new request
cancels the one in flight, so moving a slider quickly never queues up stale work.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import errors


class Cancelled(errors.Cancelled):
    """Raised inside a job (by :meth:`Job.check`) when a newer request replaced it."""


@dataclass
class Job:
    """One request handed to a :class:`LatestWinsRunner`.

    The job function receives it and should call :meth:`check` often (every optimisation step)
    and :meth:`report` to publish progress or intermediate results.
    """

    number: int
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _on_progress: Callable[[Job, Any], None] | None = field(default=None, repr=False)

    @property
    def cancelled(self) -> bool:
        """True once a newer request (or :meth:`LatestWinsRunner.cancel`) replaced this job."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the job to stop at its next :meth:`check`."""
        self._cancel.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was replaced: call it between steps."""
        if self._cancel.is_set():
            raise Cancelled(f"job {self.number} was replaced by a newer request")

    def report(self, progress: Any) -> None:
        """Publish progress (e.g. ``(step, total, frames)``) unless the job was replaced.

        A failing progress callback is reported and ignored: it must not stop the work.
        """
        if self._on_progress is not None and not self._cancel.is_set():
            try:
                self._on_progress(self, progress)
            except Exception:
                traceback.print_exc()


class LatestWinsRunner:
    """A single background worker where each new request cancels the previous one.

    Parameters
    ----------
    name : str
        Name of the worker thread (shows in debuggers and thread dumps).

    Notes
    -----
    Callbacks run on the worker thread. ``on_done`` and ``on_error`` are not called for a job
    that was cancelled, so a stale result can never overwrite a newer one.

    Examples
    --------
    >>> runner = LatestWinsRunner()
    >>> results = []
    >>> job = runner.submit(lambda job: 6 * 7, on_done=results.append)
    >>> runner.wait(timeout=5), results
    (True, [42])
    """

    def __init__(self, name: str = "cnnviz-worker") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: tuple[Job, Callable, Callable | None, Callable | None] | None = None
        self._current: Job | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._count = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(
        self,
        work: Callable[[Job], Any],
        *,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[Job, Any], None] | None = None,
    ) -> Job:
        """Queue ``work(job)``; cancel whatever is running or waiting. Returns the new job."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this runner was closed; make a new one")
            self._count += 1
            job = Job(self._count, _on_progress=on_progress)
            if self._pending is not None:
                self._pending[0].cancel()
            if self._current is not None:
                self._current.cancel()
            self._pending = (job, work, on_done, on_error)
            self._idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._wake.notify()
        return job

    def cancel(self) -> None:
        """Cancel the running and the waiting job, if any."""
        with self._lock:
            if self._pending is not None:
                self._pending[0].cancel()
                self._pending = None
            if self._current is not None:
                self._current.cancel()
            elif self._pending is None:
                self._idle.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job runs or waits (tests and scripts); False on time-out."""
        return self._idle.wait(timeout)

    @property
    def busy(self) -> bool:
        """True while a job runs or waits to run."""
        return not self._idle.is_set()

    def close(self) -> None:
        """Cancel everything and let the worker thread end."""
        self.cancel()
        with self._lock:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._closed and self._pending is None:
                    self._idle.set()
                    return
                job, work, on_done, on_error = self._pending
                self._pending = None
                self._current = job
            try:
                self._run(job, work, on_done, on_error)
            finally:  # whatever happened, the worker goes on and `wait()` can return
                with self._lock:
                    self._current = None
                    if self._pending is None:
                        self._idle.set()

    @staticmethod
    def _run(job: Job, work: Callable, on_done: Callable | None, on_error: Callable | None) -> None:
        if job.cancelled:
            return
        try:
            result = work(job)
        except Cancelled:
            return
        except BaseException as exc:  # reported to the widget; the worker must survive
            if not job.cancelled:
                if on_error is not None:
                    on_error(exc)
                else:
                    traceback.print_exc()
            return
        if not job.cancelled and on_done is not None:
            try:
                on_done(result)
            except Exception as exc:  # a failing callback must not kill the worker
                if on_error is not None:
                    on_error(exc)
                else:
                    traceback.print_exc()
