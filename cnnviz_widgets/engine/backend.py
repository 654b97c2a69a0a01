"""TensorFlow and Keras, loaded on first use, and the one place that makes a ``tf.function``.

Everything that runs a model goes through :func:`tensorflow` / :func:`keras` (so a missing or
wrong backend gets one clear message instead of a raw ``ModuleNotFoundError``) and through
:func:`compile` (so the retracing policy — fixed signatures, AutoGraph off, no misleading
"frequent retracing" warning — is decided once).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ModelError

__all__ = ["compile", "keras", "tensorflow", "trace_count"]


def _quiet_tensorflow_logs() -> None:
    # TensorFlow's C++ start-up lines (CPU feature guard, absl) reach the notebook as a red box.
    # Set the level before the first import, and only when the user has not chosen one.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tensorflow() -> Any:
    """The ``tensorflow`` module, imported on first use with a clear error when it is missing."""
    _quiet_tensorflow_logs()
    try:
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
