"""First answers without waiting for a trace (issue 16), and gradient CAMs sharing one pair.

A warm function (``compile(..., warm=True)``) answers eagerly while its graph is traced in the
background; ``backend.hold_traces()`` keeps the tracer waiting so that a call is eager for
certain, and ``backend.wait_for_traces()`` lets it finish, so both paths are compared exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_widgets.cache import ActivationCache, shared_cache
from cnnviz_widgets.engine import backend
from cnnviz_widgets.engine.adapter import ModelAdapter
from cnnviz_widgets.engine.backend import WarmFunction, trace_count
from cnnviz_widgets.explain import CAM_METHODS, SALIENCY_METHODS, deconvnet, grad_cam, saliency


def _image(shape=(14, 18, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_a_warm_function_runs_eagerly_until_its_graph_is_traced():
    tf = backend.tensorflow()
    runs = []

    def double(x):
        runs.append(tf.executing_eagerly())  # Python runs on every eager call, once per trace
        return 2.0 * x

    function = backend.compile(double, [tf.TensorSpec((None,), tf.float32)], warm=True)
    assert isinstance(function, WarmFunction) and trace_count(function) == 0
    with backend.hold_traces():
        assert function(np.array([1.0, 2.0], np.float32)).numpy().tolist() == [2.0, 4.0]
        assert function(np.array([3.0], np.float32)).numpy().tolist() == [6.0]
        assert runs == [True, True] and not function.ready.is_set()
        assert trace_count(function) == 1  # queued after the first answer, counted from then
    assert backend.wait_for_traces(60)
    assert function.ready.is_set() and runs == [True, True, False]  # one trace, in a graph
    assert function(np.array([5.0, 6.0, 7.0], np.float32)).numpy().tolist() == [10.0, 12.0, 14.0]
    assert runs == [True, True, False] and trace_count(function.compiled) == 1


def _activations(adapter, image, **options):
    return adapter.activations(image, "conv2")


_VIEWS = [
    *[(grad_cam, {"method": m, "layer": "conv2"}) for m in CAM_METHODS],
    *[(grad_cam, {"method": m, "eigen_smooth": True}) for m in ("gradcam", "scorecam")],
    *[
        (saliency, {"method": m, "reduce": False, "samples": 3, "steps": 4})
        for m in SALIENCY_METHODS
    ],
    (deconvnet, {"layer": "conv2", "channel": 3}),
    (_activations, {}),
]


def _ids(views):
    return [f"{view.__name__}-{options.get('method', '')}" + ("-eigen" if options.get("eigen_smooth") else "")
            for view, options in views]  # fmt: skip


def _call(view, adapter, image, options):
    if view is deconvnet:
        return deconvnet(adapter, image, options["layer"], options["channel"])
    if view is _activations:
        return _activations(adapter, image)
    return view(adapter, image, 1, progress=False, **options)


@pytest.mark.parametrize(("view", "options"), _VIEWS, ids=_ids(_VIEWS))
def test_the_eager_first_answer_equals_the_compiled_one(tiny_flexible, view, options):
    adapter = ModelAdapter(tiny_flexible)  # its own: nothing traced yet
    image = _image(seed=len(options))
    with backend.hold_traces():
        first = _call(view, adapter, image, options)
        warm = [fn for key in adapter.compiled_keys
                if isinstance(fn := adapter.traced(key, pytest.fail), WarmFunction)]  # fmt: skip
        assert warm, "the view made no warm function"
        # Answered eagerly: no graph was traced for it.
        assert not any(fn.ready.is_set() or trace_count(fn.compiled) for fn in warm)
    assert backend.wait_for_traces(120)
    assert all(fn.ready.is_set() and trace_count(fn.compiled) == 1 for fn in warm)
    shared_cache().clear()  # computed again, by the graphs this time
    second = _call(view, adapter, image, options)
    assert first.shape == second.shape and first.dtype == second.dtype == np.float32
    assert np.abs(first).max() > 0
    # Occlusion's map is differences of probabilities (units of 1): eager and graph kernels
    # round those differently by ~1e-7, whatever the map's own peak is.
    floor = 1e-6 if options.get("method") == "occlusion" else 0.0
    atol = max(1e-5 * float(np.abs(first).max()), floor)
    np.testing.assert_allclose(second, first, rtol=1e-4, atol=atol)
    assert all(trace_count(fn.compiled) == 1 for fn in warm)  # and never again


def test_switching_gradient_methods_at_a_layer_is_numpy_work(tiny_flexible):
    adapter = ModelAdapter(tiny_flexible)
    image = _image(seed=7)
    cache = ActivationCache()  # as an explorer passes its own
    grad_cam(adapter, image, layer="conv2", cache=cache)  # the top class: its pair is kept
    keys, traces, misses = adapter.compiled_keys, adapter.trace_count, cache.misses
    gradient_methods = ("gradcam", "gradcam++", "layercam", "hirescam", "gradcam_elementwise",
                        "xgradcam", "eigencam", "eigengradcam")  # fmt: skip
    top = int(np.argmax(np.asarray(tiny_flexible(image[None].astype(np.float32)))[0]))
    for method in gradient_methods:
        for class_index in (None, top):  # "the top class" finds the same entries
            for eigen_smooth in (False, True):
                grad_cam(adapter, image, class_index, layer="conv2", method=method,
                         eigen_smooth=eigen_smooth, cache=cache)  # fmt: skip
    assert (adapter.compiled_keys, adapter.trace_count) == (keys, traces)
    assert cache.misses == misses  # not one pair recomputed
    assert [k[1] for k in keys if isinstance(k, tuple) and k[1] == "gradients"] == ["gradients"]


def test_the_pair_is_one_compiled_function_per_layer_and_output(tiny_flexible):
    adapter = ModelAdapter(tiny_flexible)
    for seed, layer in enumerate(("conv1", "conv2", "conv1")):
        for method in ("gradcam", "hirescam", "layercam"):
            grad_cam(adapter, _image(seed=seed), 0, layer=layer, method=method)
    pairs = [k for k in adapter.compiled_keys if isinstance(k, tuple) and k[1] == "gradients"]
    # (layer, output, target function: None for the class head's classes)
    assert pairs == [("class_activation", "gradients", "conv1", 0, None),
                     ("class_activation", "gradients", "conv2", 0, None)]  # fmt: skip


def test_answers_follow_weights_changed_in_place(keras):
    # Without cache= nothing is kept between calls: a training step or the randomisation
    # check's re-initialisation between two calls is always seen. With a cache, the pair is
    # reused until the cache is cleared.
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="changing")
    rng = np.random.default_rng(50)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    image = _image((10, 10, 3), seed=51)
    views = [
        lambda **kw: grad_cam(model, image, 0, method="hirescam", **kw),
        lambda **kw: grad_cam(model, image, 0, method="scorecam", **kw),
        lambda **kw: saliency(model, image, 0, reduce=False, **kw),
    ]
    cache = ActivationCache()
    before = [view() for view in views]
    kept = [view(cache=cache) for view in views]
    head = model.get_layer("logits")
    kernel, bias = head.get_weights()
    head.set_weights([-kernel, bias])  # the class's evidence reverses
    after = [view() for view in views]
    fresh = ModelAdapter(model)  # a new adapter: the reference for the new weights
    again = [
        grad_cam(fresh, image, 0, method="hirescam"),
        grad_cam(fresh, image, 0, method="scorecam"),
        saliency(fresh, image, 0, reduce=False),
    ]
    for new, reference in zip(after, again, strict=True):
        np.testing.assert_allclose(new, reference, rtol=1e-4, atol=1e-6)
    assert not np.allclose(before[2], after[2])  # the gradient flipped sign
    for old, first, stale in zip(before, kept, [view(cache=cache) for view in views], strict=True):
        np.testing.assert_array_equal(stale, first)  # a kept cache answers from before
        np.testing.assert_allclose(first, old, rtol=1e-5, atol=1e-7)
    cache.clear()
    np.testing.assert_allclose(views[2](cache=cache), after[2], rtol=1e-6)
