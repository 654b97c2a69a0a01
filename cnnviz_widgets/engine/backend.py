"""TensorFlow and Keras, loaded on first use, and the one place that makes a ``tf.function``.

Everything that runs a model goes through :func:`tensorflow` / :func:`keras` (so a missing or
wrong backend gets one clear message instead of a raw ``ModuleNotFoundError``) and through
:func:`compile` (so the retracing policy — fixed signatures, AutoGraph off, no misleading
"frequent retracing" warning — is decided once).

First answers without waiting for a trace (``compile(..., warm=True)``): tracing a gradient
function of a real network takes about a second, running the same Python function eagerly about
half that. A :class:`WarmFunction` answers eagerly until its graph is ready, traces it on one
background thread after the first answer, and swaps it in; the answers are the same either way
(same Python code, same ops).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import ModelError
from ..i18n import gettext_ as _

__all__ = [
    "WarmFunction",
    "compile",
    "hold_traces",
    "keras",
    "tensorflow",
    "trace_count",
    "wait_for_traces",
]


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Keep TensorFlow's C++ start-up lines (absl, oneDNN, CPU guard) out of the notebook.

    They are written by native code straight to file descriptor 2, which Jupyter shows as a red
    box, and recent builds print them whatever ``TF_CPP_MIN_LOG_LEVEL`` says. So while the
    import runs, descriptor 2 points at a temporary file; if the import fails, what was written
    is replayed so no diagnostic is lost. A user who asked for TensorFlow's info or warning
    lines (``TF_CPP_MIN_LOG_LEVEL`` 0 or 1) gets them: then nothing is hidden.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") in ("0", "1"):
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later C++ lines below warnings too
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (some embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def tensorflow() -> Any:
    """The ``tensorflow`` module, imported on first use with a clear error when it is missing."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        with _quiet_native_stderr():
            import tensorflow as tf
    except ModuleNotFoundError as exc:
        raise ModelError(
            _(
                "cnnviz_widgets runs models with TensorFlow, which is not installed. Install it "
                "with `pip install cnnviz_widgets[cpu]` (tensorflow-cpu) or `pip install "
                "cnnviz_widgets[tensorflow]`, or keep the TensorFlow you already have."
            )
        ) from exc
    return tf


def keras() -> Any:
    """The ``keras`` module (Keras 3 on the TensorFlow backend), with a clear error otherwise."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        raise ModelError(
            _(
                "KERAS_BACKEND is {backend!r}; cnnviz_widgets needs Keras' TensorFlow backend. Set "
                "os.environ['KERAS_BACKEND'] = 'tensorflow' before Keras is first imported "
                "(restart the kernel if it already was)."
            ).format(backend=backend)
        )
    tensorflow()
    if "keras" in sys.modules:
        keras_module = sys.modules["keras"]
    else:
        with _quiet_native_stderr():
            import keras as keras_module

    if keras_module.backend.backend() != "tensorflow":
        raise ModelError(
            _(
                "Keras runs on the {value!r} backend; cnnviz_widgets needs 'tensorflow'. Set "
                "KERAS_BACKEND=tensorflow before importing Keras and restart."
            ).format(value=keras_module.backend.backend())
        )
    return keras_module


def compile(fn: Callable[..., Any], signature: Sequence[Any], *, warm: bool = False) -> Any:
    """``fn`` as a ``tf.function`` traced once for every call matching ``signature``.

    Parameters
    ----------
    fn : callable
        Tensor code. Python loops in it run at trace time (over layers); loops that must run per
        call are explicit ``tf.while_loop`` / ``tf.map_fn``.
    signature : sequence of tf.TensorSpec
        One spec per argument, with ``None`` for free dimensions (batch, image height and
        width): new images, classes, sizes and seeds never retrace.
    warm : bool
        Answer the first calls eagerly while the graph is traced in the background (see
        :class:`WarmFunction`). For interactive views, whose first answer matters more than the
        ~2× slower eager run; ``fn`` must then run eagerly as well as in a graph (plain TF ops).

    Returns
    -------
    tf.types.experimental.PolymorphicFunction or WarmFunction
        Count its traces with :func:`trace_count`.

    Notes
    -----
    AutoGraph is off, so errors we raise while tracing (a layer that does not feed the head)
    reach the caller as they are, not wrapped in a ``StagingError``.
    """
    tf = tensorflow()
    function = tf.function(fn, input_signature=list(signature), autograph=False)
    # TensorFlow groups tf.functions by their Python code when it warns about "frequent
    # retracing", so the functions made for different layers (each traced once) would look like
    # one function retracing as a user walks the layers. Each of ours traces once.
    function._omit_frequent_tracing_warning = True
    return WarmFunction(fn, function, signature) if warm else function


class WarmFunction:
    """A compiled function that answers eagerly until its graph has been traced.

    The first call runs ``fn`` eagerly (the same Python code the graph is traced from), then
    queues the trace on the one background tracing thread; once traced, calls go to the graph.
    Called while another function traces (inside a graph), it is the compiled function itself.

    Attributes
    ----------
    compiled : tf.types.experimental.PolymorphicFunction
        The graph function it swaps in.
    ready : threading.Event
        Set once the graph is traced (or its trace failed: calls then go to the compiled
        function, whose own trace raises the error where the caller sees it).
    """

    def __init__(self, fn: Callable[..., Any], compiled: Any, signature: Sequence[Any]) -> None:
        self._fn = fn
        self.compiled = compiled
        self._signature = list(signature)
        self.ready = threading.Event()
        self._queued = False
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        tf = tensorflow()
        if self.ready.is_set() or not tf.executing_eagerly():
            return self.compiled(*args)
        tensors = []
        for arg, spec in zip(args, self._signature, strict=True):
            tensor = tf.convert_to_tensor(arg, dtype=spec.dtype)
            if not spec.shape.is_compatible_with(tensor.shape):
                return self.compiled(*args)  # let the graph function report the mismatch
            tensors.append(tensor)
        result = self._fn(*tensors)
        # Queued after a successful eager answer: the trace then cannot fail for a reason the
        # eager run did not report, and it does not compete with the first answer for the CPU.
        self._queue_trace()
        return result

    def _queue_trace(self) -> None:
        with self._lock:
            if self._queued:
                return
            self._queued = True
        _tracer().put(self)

    def _trace(self) -> None:
        try:
            self.compiled.get_concrete_function()
        except Exception:  # reported where it matters: the next call re-traces
            pass  # in the caller's thread (ready is set) and raises the error there
        finally:
            self.ready.set()

    def experimental_get_tracing_count(self) -> int:
        """Traces made or under way: a queued background trace counts from the first call."""
        return max(trace_count(self.compiled), 1 if self._queued else 0)


_trace_queue: queue.Queue | None = None
_tracer_lock = threading.Lock()
_pending: set[WarmFunction] = set()
# Cleared while hold_traces() is active: queued traces wait (tests that need the eager path).
_tracing_allowed = threading.Event()
_tracing_allowed.set()
_closing = threading.Event()


def _stop_tracing() -> None:
    """At exit: start no new trace and let the one under way finish, so that the interpreter
    does not tear TensorFlow down under a thread that is still building a graph."""
    _closing.set()
    _tracing_allowed.set()
    wait_for_traces(60)


def _tracer() -> Any:
    """The queue of the one tracing thread: traces run one at a time (they compete for 2 cores)."""
    global _trace_queue
    with _tracer_lock:
        if _trace_queue is None:
            _trace_queue = queue.Queue()
            threading.Thread(target=_trace_forever, name="cnnviz-tracer", daemon=True).start()
            atexit.register(_stop_tracing)
        return _Tracker(_trace_queue)


class _Tracker:
    def __init__(self, jobs: queue.Queue) -> None:
        self._jobs = jobs

    def put(self, function: WarmFunction) -> None:
        with _tracer_lock:
            _pending.add(function)
        self._jobs.put(function)


def _trace_forever() -> None:
    while True:
        function = _trace_queue.get()
        _tracing_allowed.wait()
        try:
            if _closing.is_set():
                function.ready.set()  # the process is ending: nobody will call it again
            else:
                function._trace()
        finally:
            with _tracer_lock:
                _pending.discard(function)
            # While this thread waits for the next job, its frame must not keep the last
            # function (and through it the adapter and the user's model) alive.
            del function


@contextlib.contextmanager
def hold_traces() -> Iterator[None]:
    """Keep queued background traces waiting until the block ends (for tests: calls inside it
    are answered eagerly for certain)."""
    _tracing_allowed.clear()
    try:
        yield
    finally:
        _tracing_allowed.set()


def wait_for_traces(timeout: float | None = None) -> bool:
    """Block until every queued background trace is done; False if ``timeout`` s passed first.

    For tests and benchmarks that need the graphs in place (interactive use never waits).
    """
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _tracer_lock:
            waiting = list(_pending)
        if not waiting:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        waiting[0].ready.wait(left)


def trace_count(function: Any) -> int:
    """How many times a function made by :func:`compile` has been traced (0 for others)."""
    counter = getattr(function, "experimental_get_tracing_count", None)
    return int(counter()) if counter is not None else 0
