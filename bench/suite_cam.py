"""Benchmark suite "cam": class activation maps on new images, against their floor and tf-keras-vis.

All figures use the offline default model (EfficientNet-Lite0, nested) and the ``chelsea``
photo. Every call gets a *new* image (chelsea with fresh ±2 grey-level noise), so nothing can be
served from a cache; the class is "Egyptian cat" (285).

Sections
--------
1. ``grad_cam`` end to end (image in, (H, W) map in [0, 1] out) against the floor: a bare
   ``tf.function`` GradientTape Grad-CAM on an **un-nested** copy of the model (same layers,
   same weights, one flat functional graph), interleaved, at 224×224 and at the photo's own
   300×451 (which the adapter brings to 224×337 and the map goes back to 300×451).
2. tf-keras-vis 0.8.7 ``Gradcam`` on the same un-nested copy (it cannot reach inside the nested
   model, which is recorded as a failure with its message).
3. The other methods and views, and the one-time trace cost (informational).
4. Memory: 200 successive ``grad_cam`` calls on different images; RSS growth.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from report import Figure, Reference, SuiteResult
from timing import Stats, measure, measure_interleaved, section, time_once

NAME = "cam"
DESCRIPTION = "grad_cam on new images vs a bare tape Grad-CAM and tf-keras-vis; other views; memory"

#: "Egyptian cat", chelsea's top class.
CAT = 285
#: The deepest spatial layer, grad_cam's default.
LAYER = "backbone/top_activation"
#: A middle layer for the deconvnet figure.
DECONV_LAYER = "backbone/block4a_expand_activation"
MB = 1e6

#: Targets (from the issue).
FLOOR_FACTOR = 1.3
TF_KERAS_VIS_SPEEDUP = 3.0
MEMORY_GROWTH_MB = 50.0


@dataclass(frozen=True)
class Plan:
    """How many times each kind of operation is repeated."""

    cam: int = 60  # grad_cam vs floor, per image size
    cam_warmup: int = 5
    reference: int = 15  # tf-keras-vis (~0.5 s a call)
    reference_warmup: int = 2
    views: int = 10  # other methods (ms to s a call)
    slow_views: int = 3  # Score-CAM and SmoothGrad (seconds a call)
    memory_calls: int = 200
    memory_warmup: int = 20


FULL = Plan()
QUICK = Plan(
    cam=8,
    cam_warmup=2,
    reference=3,
    reference_warmup=1,
    views=2,
    slow_views=1,
    memory_calls=30,
    memory_warmup=5,
)


class Bench:
    """The default model, its un-nested copy, the photo and a source of new images."""

    def __init__(self, plan: Plan) -> None:
        from cnnviz_widgets import load_default_model, sample_image
        from cnnviz_widgets.engine.adapter import adapter_for
        from cnnviz_widgets.images import resize_image

        self.plan = plan
        self.model = load_default_model()
        self.adapter = adapter_for(self.model)
        self.flat = flat_copy(self.model)
        self.photo = sample_image("chelsea").astype(np.float32)  # 300×451
        self.square = resize_image(self.photo, (224, 224))
        self._rng = np.random.default_rng(0)

    def new_image(self, base: np.ndarray) -> np.ndarray:
        """``base`` with fresh ±2 grey-level noise: the same picture, pixels never seen before."""
        noise = self._rng.uniform(-2.0, 2.0, size=base.shape).astype(np.float32)
        return np.clip(base + noise, 0.0, 255.0)


def flat_copy(model: Any) -> Any:
    """An un-nested functional copy of the default model: new layers, the same weights.

    The backbone's graph is replayed on the outer model's preprocessing output with a fresh
    copy of every layer (``_run_through_graph`` is the replay Keras itself uses when a
    functional model is called), so the result has one flat list of layers and no sub-model;
    the default model gains no nodes.
    """
    import keras

    backbone = model.get_layer("backbone")
    image = keras.Input((None, None, 3), name="image")
    rescale = keras.layers.Rescaling.from_config(model.get_layer("preprocess").get_config())
    features = backbone._run_through_graph(
        rescale(image), operation_fn=lambda layer: type(layer).from_config(layer.get_config())
    )
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    logits = keras.layers.Dense(1000, name="logits")(pooled)
    flat = keras.Model(image, logits, name="efficientnet_lite0_flat")
    for layer in flat.layers:
        if layer.weights:
            source = model if layer.name == "logits" else backbone
            layer.set_weights(source.get_layer(layer.name).get_weights())
    if any(isinstance(layer, keras.Model) for layer in flat.layers):
        raise AssertionError("the copy still nests a model")
    probe = np.random.default_rng(1).uniform(0, 255, (1, 64, 96, 3)).astype(np.float32)
    difference = float(np.abs(np.asarray(flat(probe)) - np.asarray(model(probe))).max())
    if difference > 1e-4:
        raise AssertionError(f"the un-nested copy differs from the model by {difference}")
    return flat


def bare_grad_cam(flat: Any, layer: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """The floor: the textbook Grad-CAM, one ``tf.function`` around a GradientTape."""
    import keras
    import tensorflow as tf

    grad_model = keras.Model(flat.inputs[0], [flat.get_layer(layer).output, flat.output])

    @tf.function
    def cam(batch: Any, class_index: int) -> Any:
        with tf.GradientTape() as tape:
            features, logits = grad_model(batch, training=False)
            score = logits[:, class_index]
        grads = tape.gradient(score, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))

    def run(batch: np.ndarray, class_index: int) -> np.ndarray:
        return cam(batch, class_index).numpy()

    return run


def _check_same_map(ours: np.ndarray, floor_map: np.ndarray) -> float:
    """Our (H, W) map against the floor's raw map, brought to the same size and scale."""
    from cnnviz_widgets.images import resize_image

    resized = resize_image(floor_map, ours.shape)
    resized = np.maximum(resized, 0.0) / max(float(resized.max()), 1e-12)
    difference = float(np.abs(resized - ours).max())
    if difference > 1e-3:
        raise AssertionError(f"grad_cam differs from the bare tape Grad-CAM by {difference}")
    return difference


# --------------------------------------------------------------------------------------------
# 1. grad_cam against the floor
# --------------------------------------------------------------------------------------------


def against_floor(bench: Bench) -> list[Figure]:
    """grad_cam on a new image per call vs the bare tape Grad-CAM on the un-nested copy."""
    from cnnviz_widgets.explain import grad_cam

    plan = bench.plan
    floor = bare_grad_cam(bench.flat, LAYER.rsplit("/", 1)[-1])
    figures = []
    for label, base, judged in [
        ("224×224", bench.square, True),
        ("300×451 photo (model sees 224×337)", bench.photo, False),
    ]:
        current: dict[str, np.ndarray] = {}

        def new_image(i: int, base: np.ndarray = base, current: dict = current) -> None:
            image = bench.new_image(base)
            current["image"] = image
            # The floor gets exactly what the model sees (the adapter's resize, done untimed).
            current["batch"] = bench.adapter.model_input(bench.adapter.prepare(image))

        def ours(i: int, current: dict = current) -> None:
            current["ours"] = grad_cam(bench.model, current["image"], CAT)

        def bare(i: int, current: dict = current) -> None:
            current["floor"] = floor(current["batch"], CAT)

        stats = measure_interleaved(
            {"ours": ours, "floor": bare},
            repeats=plan.cam,
            warmup=plan.cam_warmup,
            setup=new_image,
        )
        difference = _check_same_map(current["ours"], current["floor"][0])
        model_h, model_w = current["batch"].shape[1:3]
        figure = Figure.timed(
            f"grad_cam, new image {label} → map at image size",
            stats["ours"],
            references=[
                Reference.from_stats(
                    f"bare tf.function tape Grad-CAM, un-nested copy, {model_h}×{model_w} batch",
                    "floor",
                    stats["floor"],
                    stats["ours"],
                    ours_over_ref=True,
                )
            ],
            note=f"ours includes image validation, resize in and out, normalisation; max |Δ| "
            f"vs floor map {difference:.1e}",
            extra={"max_abs_difference_vs_floor": difference},
        )
        threshold = FLOOR_FACTOR * stats["floor"].median
        if judged:
            figure.check("median", threshold, f"≤ {FLOOR_FACTOR}× floor")
        else:
            figure.target = f"(for scale: {FLOOR_FACTOR}× floor = {threshold:.1f} ms)"
        figures.append(figure)
    return figures


# --------------------------------------------------------------------------------------------
# 2. tf-keras-vis
# --------------------------------------------------------------------------------------------


def against_tf_keras_vis(bench: Bench) -> list[Figure]:
    """tf-keras-vis Gradcam on the un-nested copy; and what it does on the nested model."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    from cnnviz_widgets.explain import grad_cam

    plan = bench.plan
    score = CategoricalScore(CAT)
    layer = LAYER.rsplit("/", 1)[-1]
    theirs = Gradcam(bench.flat, clone=False)
    current: dict[str, np.ndarray] = {}

    def new_image(i: int) -> None:
        current["image"] = bench.new_image(bench.square)

    def ours(i: int) -> None:
        current["ours"] = grad_cam(bench.model, current["image"], CAT)

    def reference(i: int) -> None:
        current["theirs"] = theirs(score, current["image"][np.newaxis], penultimate_layer=layer)

    stats = measure_interleaved(
        {"ours": ours, "tf-keras-vis": reference},
        repeats=plan.reference,
        warmup=plan.reference_warmup,
        setup=new_image,
    )
    # Same picture? (tf-keras-vis resizes with tf.image.resize, we with resize_image.)
    correlation = float(
        np.corrcoef(current["ours"].ravel(), np.asarray(current["theirs"][0]).ravel())[0, 1]
    )
    ref = Reference.from_stats(
        "tf-keras-vis 0.8.7 Gradcam, un-nested copy",
        "reference",
        stats["tf-keras-vis"],
        stats["ours"],
        ours_over_ref=False,
    )
    figure = Figure.timed(
        "grad_cam vs tf-keras-vis Gradcam, new image 224×224",
        stats["ours"],
        references=[ref],
        note=f"ratio = how many times faster ours is; map correlation with theirs "
        f"{correlation:.3f}",
        extra={"speedup": ref.ratio, "correlation_with_tf_keras_vis": correlation},
    )
    figure.check(
        "median",
        stats["tf-keras-vis"].median / TF_KERAS_VIS_SPEEDUP,
        f"≥ {TF_KERAS_VIS_SPEEDUP:.0f}× faster than tf-keras-vis",
    )

    # The nested model: name the layer as users would, or let tf-keras-vis search for it.
    attempts = {}
    for how, kwargs in [
        ("penultimate_layer='top_activation'", {"penultimate_layer": layer}),
        ("penultimate_layer=None (automatic search)", {}),
    ]:
        try:
            Gradcam(bench.model, clone=False)(score, bench.square[np.newaxis], **kwargs)
            attempts[how] = "worked"
        except Exception as exc:  # recording whatever it raises is the point
            attempts[how] = f"{type(exc).__name__}: {exc}"
    failed = all(result != "worked" for result in attempts.values())
    nested = Figure(
        "tf-keras-vis Gradcam on the nested default model fails",
        "bool",
        value=float(failed),
        n=len(attempts),
        note="; ".join(f"{how} → {result}" for how, result in attempts.items()),
        extra={"attempts": attempts},
    )
    ours_nested = grad_cam(bench.model, bench.square, CAT)
    nested.note += f"; ours on the same nested model: map {ours_nested.shape}, max 1.0"
    return [figure, nested]


# --------------------------------------------------------------------------------------------
# 3. the other views
# --------------------------------------------------------------------------------------------


def other_views(bench: Bench) -> list[Figure]:
    """Each method on new 224×224 images (informational), and its first-call trace cost."""
    from cnnviz_widgets.engine.adapter import ModelAdapter
    from cnnviz_widgets.explain import deconvnet, grad_cam, predict_top, saliency
    from cnnviz_widgets.explain.batched import SCORECAM_BATCH, SCORECAM_CHANNELS
    from cnnviz_widgets.explain.saliency import SMOOTHGRAD_BATCH

    plan = bench.plan
    views: list[tuple[str, Callable[[Any, np.ndarray], Any], int]] = [
        ("grad_cam gradcam++", lambda m, x: grad_cam(m, x, CAT, method="gradcam++"), 0),
        ("grad_cam layercam", lambda m, x: grad_cam(m, x, CAT, method="layercam"), 0),
        (
            f"grad_cam scorecam ({SCORECAM_CHANNELS} channels, batches of {SCORECAM_BATCH})",
            lambda m, x: grad_cam(m, x, CAT, method="scorecam"),
            1,
        ),
        ("saliency vanilla", lambda m, x: saliency(m, x, CAT), 0),
        (
            f"saliency smoothgrad (25 samples, batches of {SMOOTHGRAD_BATCH})",
            lambda m, x: saliency(m, x, CAT, method="smoothgrad"),
            1,
        ),
        (
            "saliency guided_backprop (RGB)",
            lambda m, x: saliency(m, x, CAT, method="guided_backprop", reduce=False),
            0,
        ),
        (
            "saliency guided_gradcam",
            lambda m, x: saliency(m, x, CAT, method="guided_gradcam"),
            0,
        ),
        (
            f"deconvnet {DECONV_LAYER.rsplit('/', 1)[-1]} channel 5",
            lambda m, x: deconvnet(m, x, DECONV_LAYER, 5),
            0,
        ),
        ("predict_top k=5", lambda m, x: predict_top(m, x, k=5), 0),
    ]
    figures = []
    fresh = ModelAdapter(bench.model)  # nothing traced yet: the first call traces
    for name, view, slow in views:
        first = time_once(lambda view=view: view(fresh, bench.new_image(bench.square)))
        stats = measure(
            lambda i, view=view: view(bench.model, bench.new_image(bench.square)),
            repeats=plan.slow_views if slow else plan.views,
            warmup=1,
        )
        figures.append(
            Figure.timed(
                f"{name}, new image 224×224",
                stats,
                note=f"first call on a fresh adapter (trace + run): {first:.0f} ms",
                extra={"first_call_ms": first},
            )
        )
    return figures


# --------------------------------------------------------------------------------------------
# 3b. every gradient method against a bare compiled computation of its own formula
# --------------------------------------------------------------------------------------------
def _formulas() -> dict[str, Callable[[Any, Any], Any]]:
    """Each gradient CAM's map from (A, g), (N, h, w, K), in TensorFlow: the floors' arithmetic."""
    import tensorflow as tf

    def total(x: Any) -> Any:
        return tf.reduce_sum(x, axis=(1, 2), keepdims=True)

    def pca(x: Any) -> Any:
        n, h, w, k = (tf.shape(x)[i] for i in range(4))
        rows = tf.reshape(x, (n, h * w, k))
        centred = rows - tf.reduce_mean(rows, axis=1, keepdims=True)
        _, _, v = tf.linalg.svd(centred)
        projection = tf.linalg.matvec(centred, v[:, :, 0])
        sign = tf.sign(tf.reduce_sum(projection * tf.reduce_sum(rows, -1), -1, keepdims=True))
        return tf.reshape(projection * sign, (n, h, w))

    def plus_plus(a: Any, g: Any) -> Any:
        g2 = g * g
        alpha = tf.math.divide_no_nan(g2, 2.0 * g2 + total(a) * g2 * g)
        return tf.reduce_sum(a * total(alpha * tf.nn.relu(g)), -1)

    def xgrad(a: Any, g: Any) -> Any:
        return tf.reduce_sum(a * tf.math.divide_no_nan(total(a * g), total(a)), -1)

    return {
        "gradcam": lambda a, g: tf.reduce_sum(a * tf.reduce_mean(g, (1, 2), keepdims=True), -1),
        "gradcam++": plus_plus,
        "layercam": lambda a, g: tf.reduce_sum(tf.nn.relu(g) * a, -1),
        "hirescam": lambda a, g: tf.reduce_sum(g * a, -1),
        "gradcam_elementwise": lambda a, g: tf.reduce_sum(tf.nn.relu(g * a), -1),
        "xgradcam": xgrad,
        "eigencam": lambda a, g: pca(a),
        "eigengradcam": lambda a, g: pca(g * a),
    }


def bare_method(flat: Any, layer: str, formula: Callable[[Any, Any], Any]) -> Callable:
    """The floor of one method: one tf.function, tape pair + the formula + relu."""
    import keras
    import tensorflow as tf

    grad_model = keras.Model(flat.inputs[0], [flat.get_layer(layer).output, flat.output])

    @tf.function
    def cam(batch: Any, class_index: int) -> Any:
        with tf.GradientTape() as tape:
            features, logits = grad_model(batch, training=False)
            score = logits[:, class_index]
        return tf.nn.relu(formula(features, tape.gradient(score, features)))

    return lambda batch, class_index: cam(batch, class_index).numpy()


def gradient_methods(bench: Bench) -> list[Figure]:
    """Each gradient method on new images vs its own bare compiled formula, interleaved."""
    from cnnviz_widgets.explain import grad_cam

    plan = bench.plan
    figures = []
    for method, formula in _formulas().items():
        floor = bare_method(bench.flat, LAYER.rsplit("/", 1)[-1], formula)
        current: dict[str, np.ndarray] = {}

        def new_image(i: int, current: dict = current) -> None:
            current["image"] = bench.new_image(bench.square)
            current["batch"] = current["image"][np.newaxis]

        def ours(i: int, method: str = method, current: dict = current) -> None:
            grad_cam(bench.model, current["image"], CAT, method=method)

        def bare(i: int, floor: Callable = floor, current: dict = current) -> None:
            floor(current["batch"], CAT)

        stats = measure_interleaved(
            {"ours": ours, "floor": bare},
            repeats=max(plan.views * 2, 4),
            warmup=2,
            setup=new_image,
        )
        reference = Reference.from_stats(
            f"bare tf.function tape + {method} formula, un-nested copy",
            "floor",
            stats["floor"],
            stats["ours"],
            ours_over_ref=True,
        )
        figure = Figure.timed(
            f"grad_cam {method}, new image 224×224", stats["ours"], references=[reference]
        )
        figure.check("median", FLOOR_FACTOR * stats["floor"].median, f"≤ {FLOOR_FACTOR}× floor")
        figures.append(figure)
    return figures


def per_channel(bench: Bench) -> list[Figure]:
    """Score-CAM and AblationCAM: time per channel at the default layer (128 channels kept)."""
    from cnnviz_widgets.explain import grad_cam
    from cnnviz_widgets.explain.batched import SCORECAM_BATCH, SCORECAM_CHANNELS

    figures = []
    for method in ("scorecam", "ablationcam"):
        image = bench.new_image(bench.square)
        grad_cam(bench.model, image, CAT, method=method, progress=False)  # eager first, traced
        from cnnviz_widgets.engine.backend import wait_for_traces

        wait_for_traces(300)
        samples = []
        for _ in range(max(bench.plan.slow_views, 1)):
            image = bench.new_image(bench.square)
            grad_cam(bench.model, image, CAT)  # the pair is there, as after the Grad-CAM view
            start = time.perf_counter()
            grad_cam(bench.model, image, CAT, method=method, progress=False)
            samples.append((time.perf_counter() - start) * 1e3)
        stats = Stats(tuple(samples))
        passes = SCORECAM_CHANNELS + 1  # and the baseline (Score-CAM) / intact (Ablation) pass
        figures.append(
            Figure.timed(
                f"grad_cam {method}, {SCORECAM_CHANNELS} channels in batches of "
                f"{SCORECAM_BATCH}, new image 224×224",
                stats,
                note=f"{stats.median / passes:.2f} ms per channel (median / {passes} passes)",
                extra={"ms_per_channel": stats.median / passes},
            )
        )
    return figures


# --------------------------------------------------------------------------------------------
# 4. memory
# --------------------------------------------------------------------------------------------


def memory(bench: Bench) -> list[Figure]:
    """200 successive grad_cam calls on different images: the process must not grow."""
    import psutil

    from cnnviz_widgets.explain import grad_cam

    plan = bench.plan
    process = psutil.Process()
    classes = (CAT, 281, 282, None)  # explicit classes and the top class
    for i in range(plan.memory_warmup):
        grad_cam(bench.model, bench.new_image(bench.photo), classes[i % len(classes)])
    gc.collect()
    rss_before = process.memory_info().rss
    trace = []
    samples = []
    for i in range(plan.memory_calls):
        image = bench.new_image(bench.photo)
        start = time.perf_counter()
        grad_cam(bench.model, image, classes[i % len(classes)])
        samples.append((time.perf_counter() - start) * 1e3)
        if i % 50 == 49:
            trace.append(process.memory_info().rss / MB)
    gc.collect()
    rss_after = process.memory_info().rss
    growth = (rss_after - rss_before) / MB
    figure = Figure(
        f"RSS growth over {plan.memory_calls} grad_cam calls on different 300×451 images",
        "MB",
        value=growth,
        n=plan.memory_calls,
        note=f"after {plan.memory_warmup} warm-up calls; classes cycle 285/281/282/top; "
        f"median call {Stats(tuple(samples)).median:.1f} ms",
        extra={
            "rss_before_mb": rss_before / MB,
            "rss_after_mb": rss_after / MB,
            "rss_every_50_calls_mb": trace,
        },
    )
    figure.check("value", MEMORY_GROWTH_MB, f"< {MEMORY_GROWTH_MB:.0f} MB", strict=True)
    return [figure]


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def run(quick: bool = False) -> SuiteResult:
    """Run every section and return the figures (see the module docstring)."""
    plan = QUICK if quick else FULL
    start = time.perf_counter()
    with section("loading the default model and building its un-nested copy"):
        bench = Bench(plan)
    figures: list[Figure] = []
    with section("1/4 grad_cam vs a bare tf.function tape Grad-CAM"):
        figures += against_floor(bench)
    with section("2/4 grad_cam vs tf-keras-vis Gradcam"):
        figures += against_tf_keras_vis(bench)
    with section("3/4 the other methods and views"):
        figures += other_views(bench)
    with section("3b/4 every gradient method vs its own bare compiled formula"):
        figures += gradient_methods(bench)
    with section("3c/4 Score-CAM and AblationCAM per channel"):
        figures += per_channel(bench)
    with section(f"4/4 memory, {plan.memory_calls} calls"):
        figures += memory(bench)
    context = {
        "model": bench.model.name,
        "model_params": int(bench.model.count_params()),
        "layer": LAYER,
        "class_index": CAT,
        "image": "chelsea",
        "image_shapes": {"square": list(bench.square.shape), "photo": list(bench.photo.shape)},
        "plan": plan.__dict__,
    }
    return SuiteResult(NAME, DESCRIPTION, figures, context, time.perf_counter() - start)
