"""Shared fixtures: tiny Keras models (milliseconds to run) covering the model shapes we support."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture(scope="session")
def keras():
    import keras

    keras.utils.set_random_seed(0)
    return keras


def _conv_stack(keras, prefix: str, x):
    x = keras.layers.Conv2D(4, 3, padding="same", name=f"{prefix}conv1")(x)
    x = keras.layers.ReLU(name=f"{prefix}relu1")(x)
    x = keras.layers.MaxPooling2D(2, name=f"{prefix}pool1")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name=f"{prefix}conv2")(x)
    return x


@pytest.fixture(scope="session")
def tiny_functional(keras):
    """Input 16×16×3 → conv1(4) → relu1 → pool1 → conv2(6) → gap → dense(5, softmax)."""
    keras.utils.set_random_seed(1)  # its weights: the same whichever test asks first
    inputs = keras.Input((16, 16, 3), name="image")
    x = _conv_stack(keras, "", inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(5, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="tiny_functional")


@pytest.fixture(scope="session")
def tiny_nested(keras):
    """A functional conv base named "base" nested inside a Sequential classifier."""
    keras.utils.set_random_seed(3)  # its weights: the same whichever test asks first
    base_in = keras.Input((16, 16, 3))
    base = keras.Model(base_in, _conv_stack(keras, "b_", base_in), name="base")
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, name="logits"),
        ],
        name="tiny_nested",
    )


@pytest.fixture(scope="session")
def tiny_flexible(keras):
    """Accepts any image size (like the default model): Input (None, None, 3)."""
    keras.utils.set_random_seed(2)  # its weights: the same whichever test asks first
    inputs = keras.Input((None, None, 3))
    x = _conv_stack(keras, "", inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="logits")(x), name="tiny_flexible")


@pytest.fixture(scope="session")
def paged_conv_model(keras):
    """Any input size: conv1 (8 channels) → conv2 (40 channels: three pages of 16 filters)."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(40, 3, padding="same", name="conv2")(x)
    return keras.Model(inputs, x, name="paged_conv")


@pytest.fixture
def never_built_sequential(keras):
    """A Sequential model with no Input: Keras has not built it (no weights yet)."""
    keras.utils.set_random_seed(5)  # its weights are drawn on first use
    return keras.Sequential(
        [
            keras.layers.Conv2D(4, 3, name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(6, 3, name="conv2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, name="logits"),
        ],
        name="never_built",
    )


@pytest.fixture
def rgb16():
    """A deterministic 16×16 RGB uint8 image."""
    return np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
