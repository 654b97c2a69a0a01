"""Feature visualisation by gradient ascent: objectives, batching, determinism, cache, errors."""

from __future__ import annotations

import ast
import inspect
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cnnviz_widgets import ascent as fa
from cnnviz_widgets.ascent import (
    AscentCancelled,
    channel,
    class_logit,
    filter_ascent,
    neuron,
    optimize,
    optimize_image,
    starting_images,
)
from cnnviz_widgets.cache import CacheStats, memory_budget
from cnnviz_widgets.engine import backend
from cnnviz_widgets.engine.adapter import ModelAdapter, adapter_for
from cnnviz_widgets.errors import CnnVizError, LayerError, ModelError

ROOT = Path(__file__).resolve().parents[1]

#: Few steps, small images: each ascent on the tiny models takes milliseconds per step.
FAST = {"size": 16, "steps": 6, "jitter": 1}


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """Every test gets an empty cache folder of its own and an empty memory cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(folder))
    monkeypatch.delenv("CNNVIZ_MAX_STEPS", raising=False)
    fa.clear_memory_cache()
    yield folder
    fa.clear_memory_cache()


@pytest.fixture
def count_runs(monkeypatch):
    """Counts optimisation runs and the objectives each was given."""
    runs: list[int] = []
    real = optimize._optimise

    def counting(adapter, objectives, settings, **kwargs):
        runs.append(len(objectives))
        return real(adapter, objectives, settings, **kwargs)

    monkeypatch.setattr(optimize, "_optimise", counting)
    return runs


@pytest.fixture(scope="module")
def wide(keras):
    """Flexible input; conv 'features' with 64 channels (for the error text), dense head."""
    # Seeded initialisers: the same weights whichever tests ran before.
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(
        8, 3, padding="same", activation="relu", name="conv1", kernel_initializer=init(1)
    )(inputs)
    x = keras.layers.Conv2D(
        64, 3, strides=2, padding="same", name="features", kernel_initializer=init(2)
    )(x)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    logits = keras.layers.Dense(4, name="logits", kernel_initializer=init(3))(x)
    return keras.Model(inputs, logits, name="wide")


@pytest.fixture(scope="module")
def needs_14px(keras):
    """Valid convolutions and a 4× pool: any input under 14 px leaves 'deep' empty."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="valid", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(4, name="pool")(x)
    x = keras.layers.Conv2D(5, 3, padding="valid", name="deep")(x)
    return keras.Model(inputs, x, name="needs_14px")


def _objective_values(model, objectives, images):
    """Each objective on its own image (exact forward, no transforms), as numpy."""
    import tensorflow as tf

    adapter = adapter_for(model)
    out = []
    for objective, image in zip(objectives, images, strict=True):
        objective = objective.resolved(adapter)
        batch = tf.constant(image[None] * 255.0, tf.float32)
        features, logits = adapter.forward(batch, objective.layers, logits=objective.needs_logits)
        value = objective(dict(zip(objective.layers, features, strict=True)), logits)
        out.append(float(value[0]))
    return np.array(out)


def _disk_entries(folder: Path) -> dict[tuple, bytes]:
    """The disk tier of the result cache, read with diskcache itself: {key: .npy bytes}."""
    import diskcache

    store_dir = folder / "filter_ascent"
    if not store_dir.exists():
        return {}
    with diskcache.Cache(str(store_dir)) as store:
        return {ast.literal_eval(key): store[key] for key in store}


def _kept(adapter, kind: str) -> dict:
    """The functions ``adapter.traced`` keeps under keys starting with ``kind``, by key."""
    return {
        key: adapter.traced(key, lambda key=key: pytest.fail(f"{key} is not kept"))
        for key in adapter.compiled_keys
        if key[0] == kind
    }


# ------------------------------------------------------------------------------ objectives
def test_objectives_compose_and_know_their_layers():
    objective = channel("conv2", 3) - 0.5 * channel("conv2", 5) + class_logit(1) * 2
    assert repr(objective) == (
        "Objective(channel('conv2', 3) - 0.5 * channel('conv2', 5) + 2 * class_logit(1))"
    )
    assert objective.layers == ("conv2",)
    assert objective.needs_logits
    assert objective.indices == (3, 5, 1)
    assert (-channel("a", 1)).structure == ((-1.0, "channel", "a"),)
    # Objectives that differ only in their indices share a structure (and so a traced step).
    assert channel("a", 1).structure == channel("a", 9).structure
    assert channel("a", 1) == channel("a", 1) and hash(channel("a", 1)) == hash(channel("a", 1))
    with pytest.raises(CnnVizError, match="finite number"):
        channel("a", 1) * float("nan")
    with pytest.raises(CnnVizError, match=r"^index must be an int; got 1\.5 of type float\.$"):
        channel("a", 1.5)
    with pytest.raises(LayerError, match="named by its path"):
        neuron(3, 1)


def test_objective_values_channel_mean_centre_neuron_and_logit():
    import tensorflow as tf

    maps = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)
    logits = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    features = {"f": tf.constant(maps)}
    got = (channel("f", 2) + 3.0 * neuron("f", 1) - class_logit(2))(features, tf.constant(logits))
    want = maps[..., 2].mean(axis=(1, 2)) + 3.0 * maps[:, 1, 2, 1] - logits[:, 2]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


# ------------------------------------------------------------------------------ the ascent
def test_filter_ascent_returns_one_rgb_image_per_channel_on_8_bit_levels(tiny_flexible):
    images = filter_ascent(tiny_flexible, "conv2", [0, 3, 5], **FAST)
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images * 255, np.rint(images * 255))
    assert len({img.tobytes() for img in images}) == 3  # each channel has its own image


def test_each_image_raises_its_own_channel(wide):
    channels = [0, 1, 2, 3]
    objectives = [channel("features", c) for c in channels]
    images = filter_ascent(wide, "features", channels, size=24, steps=40, jitter=1, cache=False)
    start = starting_images(objectives, size=24)
    after = _objective_values(wide, objectives, images)
    before = _objective_values(wide, objectives, start)
    assert (after > before + 0.5).all(), (before, after)


def test_class_model_visualisation_raises_the_logit(wide):
    objective = class_logit(2)
    image = optimize_image(wide, objective, size=24, steps=40, jitter=1, cache=False)
    start = starting_images(objective, size=24)
    after, before = (_objective_values(wide, [objective], x)[0] for x in (image, start))
    assert after > before + 0.5


def test_neuron_objective_and_pixel_parametrisation(wide):
    objective = neuron("features", 5)
    image = optimize_image(
        wide, objective, size=24, steps=40, jitter=1, param="pixel", decorrelate=False, cache=False
    )
    start = starting_images(objective, size=24, param="pixel", decorrelate=False)
    after, before = (_objective_values(wide, [objective], x)[0] for x in (image, start))
    assert after > before + 0.5


def test_same_seed_same_images_other_seed_other_images(tiny_flexible):
    first = filter_ascent(tiny_flexible, "conv2", [1, 2], cache=False, **FAST)
    again = filter_ascent(tiny_flexible, "conv2", [1, 2], cache=False, **FAST)
    other = filter_ascent(tiny_flexible, "conv2", [1, 2], seed=1, cache=False, **FAST)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 0.05


def test_an_image_does_not_depend_on_its_batch_mates(tiny_flexible):
    # The property per-channel caching relies on: channel 2's image is the same alone, in a
    # batch, at another position, or in another chunk.
    alone = filter_ascent(tiny_flexible, "conv2", [2], cache=False, **FAST)
    batched = filter_ascent(tiny_flexible, "conv2", [0, 5, 2], cache=False, **FAST)
    chunked = filter_ascent(tiny_flexible, "conv2", [4, 0, 5, 2], batch_size=2, cache=False, **FAST)
    np.testing.assert_allclose(batched[2], alone[0], atol=1.01 / 255)
    np.testing.assert_allclose(chunked[3], alone[0], atol=1.01 / 255)


def test_new_channel_sets_and_chunks_never_retrace(tiny_flexible):
    adapter = adapter_for(tiny_flexible)
    for channels, batch in [([0, 1], 8), ([2, 3, 1], 8), ([5], 8), ([0, 1, 2, 3, 4], 2)]:
        filter_ascent(tiny_flexible, "conv2", channels, batch_size=batch, cache=False, **FAST)
    # Other settings that do not change the graph: learning rate, penalty weights (but a weight
    # of 0 does: the penalty is then left out), transforms, seed.
    filter_ascent(
        tiny_flexible,
        "conv2",
        [4],
        lr=0.2,
        tv=3.0,
        scale=1.3,
        rotate=30,
        seed=9,
        steps=4,
        size=16,
        jitter=2,
        cache=False,
    )
    steps = list(_kept(adapter, "filter_ascent.step").values())
    renders = list(_kept(adapter, "filter_ascent.render").values())
    assert len(steps) == 1 and len(renders) == 1
    assert backend.trace_count(steps[0]) == 1 and backend.trace_count(renders[0]) == 1


def test_on_step_reports_every_step_and_streams_frames(tiny_flexible):
    calls = []
    filter_ascent(
        tiny_flexible,
        "conv2",
        [0, 1, 2],
        size=16,
        steps=10,
        every=4,
        batch_size=2,
        on_step=lambda step, total, images: calls.append((step, total, images)),
        cache=False,
    )
    assert [(s, t) for s, t, _ in calls] == [(s, 10) for s in range(1, 11)]
    with_frames = [s for s, _, images in calls if images is not None]
    assert with_frames == [1, 4, 8, 10]
    assert calls[-1][2].shape == (3, 16, 16, 3) and calls[-1][2].dtype == np.float32


def test_default_steps_capped_by_environment(tiny_flexible, monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_STEPS", "3")
    seen = []
    filter_ascent(
        tiny_flexible, "conv2", 0, size=16, on_step=lambda s, t, i: seen.append(t), cache=False
    )
    assert seen == [3, 3, 3]
    assert fa.default_steps() == 3
    monkeypatch.setenv("CNNVIZ_MAX_STEPS", "1000")
    assert fa.default_steps() == fa.DEFAULT_STEPS == 256  # a cap, never a raise
    monkeypatch.setenv("CNNVIZ_MAX_STEPS", "lots")
    with pytest.raises(CnnVizError, match="CNNVIZ_MAX_STEPS='lots' is not a whole number"):
        filter_ascent(tiny_flexible, "conv2", 0, size=16)


def test_fixed_size_model_sees_the_image_resampled_to_its_input(tiny_functional):
    images = filter_ascent(tiny_functional, "conv2", [0, 1], size=32, steps=4, cache=False)
    assert images.shape == (2, 32, 32, 3)


def test_grayscale_model_gets_gray_images(keras):
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(3, 3, padding="same", name="c")(inputs)
    model = keras.Model(inputs, x, name="gray")
    images = filter_ascent(model, "c", [0, 2], size=12, steps=5, jitter=1, cache=False)
    assert images.shape == (2, 12, 12, 3)
    np.testing.assert_array_equal(images[..., 0], images[..., 2])


def test_preprocess_runs_inside_the_optimisation(wide):
    def tf_preprocess(batch):
        return batch / 127.5 - 1.0  # tensor arithmetic: fine inside the traced step

    images = filter_ascent(
        wide, "features", [0], preprocess=tf_preprocess, cache=False, size=16, steps=3
    )
    assert images.shape == (1, 16, 16, 3)

    def numpy_only(batch):
        return np.asarray(batch) / 255.0

    with pytest.raises(ModelError, match="failed on a TensorFlow tensor.*keras.ops"):
        filter_ascent(wide, "features", [0], preprocess=numpy_only, size=16, steps=3)


# ------------------------------------------------------------------------------ bad input
def test_channel_out_of_range_names_the_range(wide):
    with pytest.raises(
        CnnVizError,
        match=r"^channel 70 is out of range: layer 'features' has 64 channels \(0–63\)\.$",
    ):
        filter_ascent(wide, "features", [1, 70], **FAST)
    with pytest.raises(CnnVizError, match="channel -1 is out of range"):
        filter_ascent(wide, "features", -1, **FAST)
    with pytest.raises(
        CnnVizError, match=r"^class 9 is out of range: model 'wide' has 4 classes \(0–3\)\.$"
    ):
        optimize_image(wide, class_logit(9), **FAST)


def test_layer_without_channels_is_a_layer_error(wide):
    with pytest.raises(
        LayerError,
        match=r"Layer 'gap' \(GlobalAveragePooling2D\) has output shape \(64,\): it "
        r"has no channels.*e\.g\. 'relu6'\. For a class score, use class_logit\(i\)\.",
    ):
        filter_ascent(wide, "gap", [0], **FAST)
    with pytest.raises(LayerError, match="No layer 'featurs'.*Did you mean: 'features'"):
        filter_ascent(wide, "featurs", [0], **FAST)


def test_size_too_small_for_the_downsampling_says_the_minimum(needs_14px):
    with pytest.raises(
        CnnVizError,
        match=r"size=10 is too small for layer 'deep' of model 'needs_14px'.*Use size ≥ 14\.",
    ):
        filter_ascent(needs_14px, "deep", [0], size=10, steps=2, jitter=1)
    # At the minimum it works.
    assert filter_ascent(needs_14px, "deep", [0], size=14, steps=2, jitter=1).shape[1] == 14


def test_bad_settings_name_the_fix(wide):
    for steps in (0, -3):
        with pytest.raises(CnnVizError, match=rf"^steps must be ≥ 1; got {steps}\. Use steps="):
            filter_ascent(wide, "features", [0], size=16, steps=steps)
    with pytest.raises(
        CnnVizError, match=r"^Unknown param 'wavelet'\. Choose one of 'fft', 'pixel'\.$"
    ):
        filter_ascent(wide, "features", [0], size=16, param="wavelet")
    with pytest.raises(CnnVizError, match="No channels given"):
        filter_ascent(wide, "features", [], size=16)
    with pytest.raises(CnnVizError, match=r"^size must be ≥ 8 pixels; got 4\. Try size=128\.$"):
        filter_ascent(wide, "features", [0], size=4)
    with pytest.raises(CnnVizError, match=r"scale must be \(smallest, largest\).*Swap them"):
        filter_ascent(wide, "features", [0], size=16, scale=(1.2, 0.9))
    with pytest.raises(
        CnnVizError, match=r"^jitter must be between 0 and size/2 = 8 pixels; got 9"
    ):
        filter_ascent(wide, "features", [0], size=16, jitter=9)
    with pytest.raises(CnnVizError, match=r"^lr must be a finite number ≥ 0; got nan\.$"):
        optimize_image(wide, channel("features", 0), size=16, lr=float("nan"))
    with pytest.raises(CnnVizError, match=r"^batch_size must be ≥ 1; got 0\.$"):
        filter_ascent(wide, "features", [0], size=16, batch_size=0)
    with pytest.raises(CnnVizError, match=r"^seed must be ≥ 0; got -1\.$"):
        filter_ascent(wide, "features", [0], size=16, seed=-1)
    with pytest.raises(CnnVizError, match=r"^channel must be an int; got '3' of type str\.$"):
        filter_ascent(wide, "features", ["3"], size=16)
    # A wrong keyword is a TypeError, as for any Python function, with the closest names.
    with pytest.raises(
        TypeError,
        match=r"^optimize_image\(\) got an unexpected keyword argument 'stpes'\. Did you mean "
        r"'steps'",
    ):
        optimize_image(wide, channel("features", 0), stpes=3)


def test_both_entry_points_list_the_same_options_with_the_documented_defaults():
    want = {
        "size": 128, "steps": None, "seed": 0, "lr": 0.1, "param": "fft", "decorrelate": True,
        "jitter": None, "scale": (0.8, 1.25), "rotate": 15.0, "tv": 1.0, "l2": 0.0,
        "batch_size": 16, "every": 8, "on_step": None, "cancel": None, "preprocess": None,
        "cache": True, "progress": True,
    }  # fmt: skip
    for function, positional in [
        (filter_ascent, ["model", "layer", "channels"]),
        (optimize_image, ["model", "objectives"]),
    ]:
        parameters = inspect.signature(function).parameters
        assert list(parameters) == positional + list(want)
        assert {name: parameters[name].default for name in want} == want
        assert all(parameters[name].kind is inspect.Parameter.KEYWORD_ONLY for name in want)


# ------------------------------------------------------------------------------ cancel
def test_cancel_raises_promptly_and_caches_nothing(tiny_flexible, cache_in_tmp):
    cancel = threading.Event()
    started = threading.Event()
    set_at: list[float] = []

    def on_step(step, total, images):
        started.set()

    def cancel_soon():
        started.wait(30)
        time.sleep(0.2)
        set_at.append(time.perf_counter())
        cancel.set()

    threading.Thread(target=cancel_soon, daemon=True).start()
    with pytest.raises(AscentCancelled, match="cancelled at step"):
        filter_ascent(
            tiny_flexible,
            "conv2",
            [0, 1, 2],
            size=16,
            steps=100_000,
            on_step=on_step,
            cancel=cancel,
        )
    latency = time.perf_counter() - set_at[0]
    assert latency < 0.5, latency
    assert fa.results_cache().stats.entries == 0
    assert _disk_entries(cache_in_tmp) == {}


def test_cancel_accepts_a_callable_and_is_checked_before_starting(tiny_flexible):
    steps = []
    with pytest.raises(AscentCancelled):
        filter_ascent(
            tiny_flexible,
            "conv2",
            [0],
            size=16,
            steps=50,
            on_step=lambda s, t, i: steps.append(s),
            cancel=lambda: len(steps) >= 3,
        )
    assert steps == [1, 2, 3]
    with pytest.raises(AscentCancelled, match="before it started"):
        filter_ascent(tiny_flexible, "conv2", [0], size=16, steps=5, cancel=lambda: True)


# ------------------------------------------------------------------------------ cache
def test_disk_cache_round_trip_per_channel_entries(tiny_flexible, cache_in_tmp, count_runs):
    first = filter_ascent(tiny_flexible, "conv2", [0, 3], **FAST)
    assert count_runs == [2]
    budget = memory_budget().max_bytes  # the kernel's one total, shared with feature maps
    assert fa.results_cache().stats == CacheStats(2, 2 * 16 * 16 * 3, budget, hits=0, misses=2)
    entries = _disk_entries(cache_in_tmp)
    # One entry per channel, keyed by the weights, the objective and every setting.
    by_channel = {key[5]: key for key in entries}
    assert sorted(by_channel) == [(0,), (3,)]
    for (index,), key in by_channel.items():
        assert key[:2] == ("filter_ascent", 1) and len(key[2]) == 64  # sha256 of the weights
        assert key[4] == ((1.0, "channel", "conv2"),)
        assert dict(key[6]) == {
            "size": 16, "steps": 6, "seed": 0, "lr": 0.1, "param": "fft", "decorrelate": True,
            "jitter": 1, "scale": (0.8, 1.25), "rotate": 15.0, "tv": 1.0, "l2": 0.0,
        }  # fmt: skip
        stored = np.load(io.BytesIO(entries[key]), allow_pickle=False)
        assert stored.dtype == np.uint8 and stored.shape == (16, 16, 3)
        np.testing.assert_array_equal(stored, first[[0, 3].index(index)] * 255)
    # Nothing but the store is written to the cache folder.
    assert {p.relative_to(cache_in_tmp).parts[0] for p in cache_in_tmp.iterdir()} == {
        "filter_ascent"
    }

    fa.clear_memory_cache()  # the second call must come from disk
    assert fa.results_cache().stats.entries == 0
    again = filter_ascent(tiny_flexible, "conv2", [0, 3], **FAST)
    assert count_runs == [2]
    np.testing.assert_array_equal(first, again)
    assert fa.results_cache().stats == CacheStats(2, 2 * 16 * 16 * 3, budget, hits=2, misses=2)

    # A page mixing cached and new channels only computes the new one.
    mixed = filter_ascent(tiny_flexible, "conv2", [3, 5, 0], **FAST)
    assert count_runs == [2, 1]
    np.testing.assert_array_equal(mixed[[0, 2]], first[[1, 0]])
    assert (fa.results_cache().stats.hits, fa.results_cache().stats.misses) == (4, 3)


def test_memory_cache_serves_repeats_and_streams_the_final_frame(tiny_flexible, count_runs):
    filter_ascent(tiny_flexible, "conv2", [1], **FAST)
    calls = []
    filter_ascent(tiny_flexible, "conv2", [1], on_step=lambda *a: calls.append(a), **FAST)
    assert count_runs == [1]
    assert len(calls) == 1 and calls[0][:2] == (6, 6) and calls[0][2].shape == (1, 16, 16, 3)


@pytest.mark.parametrize(
    "change",
    [
        {"steps": 7},
        {"seed": 1},
        {"size": 24},
        {"lr": 0.2},
        {"param": "pixel"},
        {"decorrelate": False},
        {"jitter": 2},
        {"scale": (0.9, 1.1)},
        {"rotate": 5.0},
        {"tv": 0.5},
        {"l2": 0.1},
    ],
)
def test_every_setting_is_part_of_the_cache_key(tiny_flexible, count_runs, change):
    filter_ascent(tiny_flexible, "conv2", [0], **FAST)
    filter_ascent(tiny_flexible, "conv2", [0], **{**FAST, **change})
    assert count_runs == [1, 1]


def test_batching_and_frame_rate_are_not_part_of_the_cache_key(tiny_flexible, count_runs):
    # They never change an image (see test_an_image_does_not_depend_on_its_batch_mates).
    first = filter_ascent(tiny_flexible, "conv2", [0, 1], **FAST)
    again = filter_ascent(tiny_flexible, "conv2", [0, 1], batch_size=1, every=2, **FAST)
    assert count_runs == [2]
    np.testing.assert_array_equal(first, again)


def test_other_weights_other_cache_entries(keras, tiny_flexible, count_runs):
    filter_ascent(tiny_flexible, "conv2", [0], **FAST)
    twin = keras.models.clone_model(tiny_flexible)  # same architecture, fresh weights
    filter_ascent(twin, "conv2", [0], **FAST)
    assert count_runs == [1, 1]
    # The fingerprint is computed once per adapter and kept with it.
    assert ("filter_ascent.fingerprint",) in adapter_for(twin).compiled_keys
    twin.set_weights(tiny_flexible.get_weights())
    # A new adapter fingerprints the weights afresh: identical weights find the first entry.
    filter_ascent(ModelAdapter(twin), "conv2", [0], **FAST)
    assert count_runs == [1, 1]


def test_damaged_cache_entry_is_recomputed(tiny_flexible, cache_in_tmp, count_runs):
    import diskcache

    first = filter_ascent(tiny_flexible, "conv2", [2], **FAST)
    with diskcache.Cache(str(cache_in_tmp / "filter_ascent")) as store:
        (key,) = list(store)
        store[key] = b"not an npy file"
    fa.clear_memory_cache()
    again = filter_ascent(tiny_flexible, "conv2", [2], **FAST)
    assert count_runs == [1, 1]
    np.testing.assert_array_equal(first, again)
    (stored,) = _disk_entries(cache_in_tmp).values()
    np.testing.assert_array_equal(np.load(io.BytesIO(stored), allow_pickle=False), first[0] * 255)


def test_cache_dir_defaults_to_the_user_cache_folder(monkeypatch):
    import platformdirs

    monkeypatch.delenv("CNNVIZ_CACHE_DIR")
    assert fa.cache_dir() == Path(platformdirs.user_cache_dir("cnnviz_widgets"))


def test_warm_up_traces_the_step_before_the_first_request(tiny_flexible):
    adapter = adapter_for(tiny_flexible)

    def traced():
        kept = {**_kept(adapter, "filter_ascent.step"), **_kept(adapter, "filter_ascent.render")}
        return {
            key[0]: fn
            for key, fn in kept.items()
            if key[0] == "filter_ascent.render" or (key[1][0][2] == "conv1" and key[2] == 20)
        }

    fa.warm_up(tiny_flexible, "conv1", size=20)
    warmed = traced()
    assert set(warmed) == {"filter_ascent.step", "filter_ascent.render"}
    filter_ascent(
        tiny_flexible, "conv1", [0, 1], size=20, steps=2, on_step=lambda *a: None, cache=False
    )
    # The request used the warmed functions and traced nothing new.
    assert traced() == warmed
    assert all(backend.trace_count(fn) == 1 for fn in warmed.values())


def test_importing_the_module_does_not_import_tensorflow():
    code = (
        "import sys, cnnviz_widgets.ascent, cnnviz_widgets.render.kernels;"
        "from cnnviz_widgets.ascent import objectives, optimize, param, results, settings, step;"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------------------ real model
@pytest.mark.default_model
def test_quality_on_the_default_model(record_property):
    """Each image excites its channel ≥ 5× more than the start, and more than other images do.

    Layers: expand layers of stage 5 (stride 16) and stage 6 (stride 32) of 7. EfficientNet-Lite0
    uses ReLU6 everywhere, so a channel's mean is capped at 6: a channel that already reaches
    1.2 on the grey start cannot show 5× (in shallower expand layers, e.g. block4c, some
    channels respond that strongly to plain grey), and in the last layers (block7a, top) many
    images saturate their channel at exactly 6, where "more than any other image" becomes a
    tie. Starting image: the parametrisation's step-0 image for the same seed.
    """
    from cnnviz_widgets.engine.models import load_default_model

    model = load_default_model()
    adapter = adapter_for(model)
    channels = list(range(12))
    report = {}
    for layer in ("backbone/block5c_expand_activation", "backbone/block6a_expand_activation"):
        images = filter_ascent(model, layer, channels, size=96, steps=128, cache=False)
        start = starting_images([channel(layer, c) for c in channels], size=96)

        def means(batch, layer=layer):
            pixels = np.rint(batch * 255).astype(np.uint8)
            return np.stack([adapter.activations(p, layer).mean(axis=(0, 1)) for p in pixels])

        final, initial = means(images)[:, channels], means(start)[:, channels]
        own = np.diag(final)
        factors = own / np.maximum(np.diag(initial), 1e-3)
        # strictly more than every other channel's image
        others = np.where(np.eye(len(channels), dtype=bool), -np.inf, final)
        selective = float(np.mean(own > others.max(axis=0)))
        report[layer] = (float(factors.min()), float(np.median(factors)), float(selective))
        record_property(layer, report[layer])
        print(layer, "factor min/median", factors.min(), np.median(factors), "selective", selective)
        assert (factors >= 5.0).all(), (layer, factors, own, np.diag(initial))
        assert selective >= 0.9, (layer, final)
    assert os.environ.get("CNNVIZ_CACHE_DIR")  # the autouse fixture kept the cache in tmp


def test_a_never_built_sequential_model_is_read_for_the_asked_size(never_built_sequential):
    images = filter_ascent(never_built_sequential, "conv2", [0, 1], size=32, steps=2, cache=False)
    assert images.shape == (2, 32, 32, 3)
    # Read through its own layers at that size; the user's model object stays unbuilt.
    assert adapter_for(never_built_sequential).input_shape == (32, 32, 3)
    assert not never_built_sequential.built
