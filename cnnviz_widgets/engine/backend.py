"""TensorFlow and Keras, loaded on first use, and the one place that makes a ``tf.function``.

Everything that runs a model goes through :func:`tensorflow` / :func:`keras` (so a missing or
wrong backend gets one clear message instead of a raw ``ModuleNotFoundError``) and through
:func:`compile` (so the retracing policy — fixed signatures, AutoGraph off, no misleading
"frequent retracing" warning — is decided once).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import ModelError

__all__ = ["compile", "keras", "tensorflow", "trace_count"]


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Keep TensorFlow's C++ start-up lines (absl, oneDNN, CPU guard) out of the notebook.

    They are written by native code straight to file descriptor 2, which Jupyter shows as a red
    box, and recent builds print them whatever ``TF_CPP_MIN_LOG_LEVEL`` says. So while the
    import runs, descriptor 2 points at a temporary file; if the import fails, what was written
    is replayed so no diagnostic is lost. A user who set ``TF_CPP_MIN_LOG_LEVEL`` chose their
    logs: then nothing is hidden.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # later C++ messages below warnings stay quiet
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
            "cnnviz_widgets runs models with TensorFlow, which is not installed. Install it with "
            "`pip install cnnviz_widgets[cpu]` (tensorflow-cpu) or `pip install "
            "cnnviz_widgets[tensorflow]`, or keep the TensorFlow you already have."
        ) from exc
    return tf


def keras() -> Any:
    """The ``keras`` module (Keras 3 on the TensorFlow backend), with a clear error otherwise."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        raise ModelError(
            f"KERAS_BACKEND is {backend!r}; cnnviz_widgets needs Keras' TensorFlow backend. Set "
            "os.environ['KERAS_BACKEND'] = 'tensorflow' before Keras is first imported (restart "
            "the kernel if it already was)."
        )
    tensorflow()
    if "keras" in sys.modules:
        keras_module = sys.modules["keras"]
    else:
        with _quiet_native_stderr():
            import keras as keras_module

    if keras_module.backend.backend() != "tensorflow":
        raise ModelError(
            f"Keras runs on the {keras_module.backend.backend()!r} backend; cnnviz_widgets needs "
            "'tensorflow'. Set KERAS_BACKEND=tensorflow before importing Keras and restart."
        )
    return keras_module


def compile(fn: Callable[..., Any], signature: Sequence[Any]) -> Any:
    """``fn`` as a ``tf.function`` traced once for every call matching ``signature``.

    Parameters
    ----------
    fn : callable
        Tensor code. Python loops in it run at trace time (over layers); loops that must run per
        call are explicit ``tf.while_loop`` / ``tf.map_fn``.
    signature : sequence of tf.TensorSpec
        One spec per argument, with ``None`` for free dimensions (batch, image height and
        width): new images, classes, sizes and seeds never retrace.

    Returns
    -------
    tf.types.experimental.PolymorphicFunction
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
    return function


def trace_count(function: Any) -> int:
    """How many times a function made by :func:`compile` has been traced (0 for others)."""
    counter = getattr(function, "experimental_get_tracing_count", None)
    return int(counter()) if counter is not None else 0
