"""Benchmark suite "first_answers": how long the first answer at a new layer or method takes.

Issue 16. All on the offline default model (EfficientNet-Lite0) and the ``chelsea`` photo, in
one process, after the model is loaded and one view has been drawn (activations of the stem,
graph traced), as a user sees it:

1. The first call at a layer never asked before: activations, a gradient CAM (Grad-CAM), a
   saliency method (vanilla, no layer: a fresh adapter each time), deconvnet. Each sample uses
   a fresh ``ModelAdapter`` (made untimed) so that every sample really is a first call; between
   samples the background traces are let finish (a user takes longer than that between
   clicks). Target: ≤ 500 ms (median). The eager run and the trace it replaces are timed
   separately too.
2. Another gradient CAM method at a layer already used, with a cache as the explorers pass
   (numpy work on the kept pair). Target ≤ 100 ms (median over the methods).
3. Steady state, once the graph is swapped in: ``grad_cam`` and ``activations`` on new images
   against a bare compiled computation of the same thing (suite_cam's floor on the un-nested
   copy), interleaved. Target ≤ 1.3× the floor.
4. Process start → first picture: a fresh interpreter imports the package, loads the model,
   draws an ActivationExplorer, then a CamExplorer's first map (marks in seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from report import Figure, Reference, SuiteResult
from timing import Stats, measure_interleaved, section

NAME = "first_answers"
DESCRIPTION = "first call at a new layer/method without waiting for a trace; steady state; start-up"

CAT = 285
FIRST_LAYERS = (
    "backbone/block2b_add",
    "backbone/block4a_expand_activation",
    "backbone/block5c_add",
    "backbone/block6a_expand_activation",
    "backbone/top_activation",
)
DECONV_LAYERS = ("backbone/block3a_expand_activation", "backbone/block4a_expand_activation")
FIRST_TARGET_MS = 500.0
SWITCH_TARGET_MS = 100.0
FLOOR_FACTOR = 1.3
OTHER_GRADIENT_METHODS = ("gradcam++", "layercam", "hirescam", "gradcam_elementwise",
                          "xgradcam", "eigencam", "eigengradcam")  # fmt: skip


@dataclass(frozen=True)
class Plan:
    first_layers: tuple[str, ...] = FIRST_LAYERS
    saliency_samples: int = 5
    steady: int = 40
    steady_warmup: int = 5


FULL = Plan()
QUICK = Plan(first_layers=FIRST_LAYERS[1::2], saliency_samples=2, steady=6, steady_warmup=2)


def _settled() -> None:
    from cnnviz_widgets.engine.backend import wait_for_traces

    if not wait_for_traces(300):
        raise AssertionError("background traces did not finish within 300 s")


def _first_calls(bench: Any, label: str, calls: list[tuple[str, Any]]) -> Figure:
    """Time each ``call()`` once (each a first call), letting traces finish in between."""
    samples, notes = [], []
    for name, call in calls:
        _settled()
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e3)
        notes.append(f"{name.rsplit('/', 1)[-1]} {samples[-1]:.0f}")
    _settled()
    stats = Stats(tuple(samples))
    figure = Figure.timed(
        f"first call, {label}",
        stats,
        note="; ".join(notes) + " ms (fresh adapter each; eager answer, graph traced after)",
        extra={"per_sample_ms": dict(zip([n for n, _ in calls], samples, strict=True))},
    )
    figure.check("median", FIRST_TARGET_MS, f"≤ {FIRST_TARGET_MS:.0f} ms")
    return figure


def first_answers(bench: Any) -> list[Figure]:
    from cnnviz_widgets.engine.adapter import ModelAdapter
    from cnnviz_widgets.explain import deconvnet, grad_cam, saliency

    plan = bench.plan
    model = bench.model

    def fresh() -> Any:
        adapter = ModelAdapter(model)
        adapter.prepare(bench.square)  # reading the model and the image: not the trace
        return adapter

    def calls(view: Any, layers: tuple[str, ...]) -> list[tuple[str, Any]]:
        made = []
        for layer in layers:
            adapter = fresh()
            made.append((layer, lambda a=adapter, layer=layer: view(a, layer)))
        return made

    figures = [
        _first_calls(bench, "activations at a new layer", calls(
            lambda a, layer: a.activations(bench.new_image(bench.square), layer),
            plan.first_layers)),
        _first_calls(bench, "grad_cam (Grad-CAM) at a new layer", calls(
            lambda a, layer: grad_cam(a, bench.new_image(bench.square), CAT, layer=layer),
            plan.first_layers)),
        _first_calls(bench, "saliency (vanilla), first ever", calls(
            lambda a, layer: saliency(a, bench.new_image(bench.square), CAT),
            ("vanilla",) * plan.saliency_samples)),
        _first_calls(bench, "deconvnet at a new layer (channel 5)", calls(
            lambda a, layer: deconvnet(a, bench.new_image(bench.square), layer, 5),
            DECONV_LAYERS)),
    ]  # fmt: skip

    # What the eager answer replaces: tracing the same function in the foreground.
    from cnnviz_widgets.explain.gradients import pair_function
    from cnnviz_widgets.explain.targets import class_head

    adapter = fresh()
    head = class_head(adapter, None)
    batch = adapter.model_input(adapter.prepare(bench.new_image(bench.square)))
    eager_ms, trace_ms = [], []
    for layer in plan.first_layers:
        function = pair_function(adapter, layer, head)
        start = time.perf_counter()
        function.compiled.get_concrete_function()  # traced here, in the foreground
        trace_ms.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        function._fn(bench.tf.constant(batch), bench.tf.constant(CAT))
        eager_ms.append((time.perf_counter() - start) * 1e3)
    for label, values in (("eager run", eager_ms), ("foreground trace", trace_ms)):
        figures.append(
            Figure.timed(
                f"(gradient pair at a layer) {label}",
                Stats(tuple(values)),
                note=", ".join(f"{v:.0f}" for v in values)
                + " ms over "
                + ", ".join(layer.rsplit("/", 1)[-1] for layer in plan.first_layers),
            )
        )
    return figures


def method_switch(bench: Any) -> list[Figure]:
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.explain import grad_cam

    cache = ActivationCache()  # as CamExplorer passes its own
    image = bench.new_image(bench.square)
    grad_cam(bench.model, image, CAT, cache=cache)  # the view shown: Grad-CAM, default layer
    samples = {}
    for method in OTHER_GRADIENT_METHODS:
        start = time.perf_counter()
        grad_cam(bench.model, image, CAT, method=method, cache=cache)
        samples[method] = (time.perf_counter() - start) * 1e3
    stats = Stats(tuple(samples.values()))
    figure = Figure.timed(
        "another gradient CAM method at a layer already used (224×224)",
        stats,
        note=", ".join(f"{m} {v:.1f}" for m, v in samples.items()) + " ms",
        extra={"per_method_ms": samples},
    )
    figure.check("median", SWITCH_TARGET_MS, f"≤ {SWITCH_TARGET_MS:.0f} ms")
    return [figure]


def steady_state(bench: Any) -> list[Figure]:
    from suite_cam import bare_grad_cam

    from cnnviz_widgets.engine.adapter import activations
    from cnnviz_widgets.explain import grad_cam

    plan = bench.plan
    tf = bench.tf
    layer = "backbone/block4a_expand_activation"
    keras = __import__("keras")
    sub = keras.Model(bench.flat.inputs[0], bench.flat.get_layer(layer.rsplit("/", 1)[-1]).output)
    bare_activations = tf.function(lambda x: sub(x, training=False))
    floor_cam = bare_grad_cam(bench.flat, "top_activation")
    grad_cam(bench.model, bench.square, CAT)
    activations(bench.model, bench.square, layer)
    _settled()
    current: dict[str, Any] = {}

    def new_image(i: int) -> None:
        current["image"] = bench.new_image(bench.square)
        current["batch"] = current["image"][np.newaxis]

    figures = []
    for label, ours, floor in [
        ("grad_cam", lambda i: grad_cam(bench.model, current["image"], CAT),
         lambda i: floor_cam(current["batch"], CAT)),
        (f"activations {layer.rsplit('/', 1)[-1]}",
         lambda i: activations(bench.model, current["image"], layer),
         lambda i: bare_activations(current["batch"]).numpy()),
    ]:  # fmt: skip
        stats = measure_interleaved(
            {"ours": ours, "floor": floor},
            repeats=plan.steady,
            warmup=plan.steady_warmup,
            setup=new_image,
        )
        ref = Reference.from_stats("bare tf.function on the un-nested copy", "floor",
                                   stats["floor"], stats["ours"], ours_over_ref=True)  # fmt: skip
        figure = Figure.timed(
            f"steady state {label}, new image 224×224 (graph swapped in)",
            stats["ours"],
            references=[ref],
            note="ours includes validation, resize, cache bookkeeping",
        )
        figure.check("median", FLOOR_FACTOR * stats["floor"].median, f"≤ {FLOOR_FACTOR}× floor")
        figures.append(figure)
    return figures


_TIMELINE = r"""
import json, sys, time
marks = {"interpreter_ready": time.time()}
import cnnviz_widgets as cv
marks["imported"] = time.time()
model = cv.load_default_model()
marks["model_loaded"] = time.time()
image = cv.sample_image("chelsea")
explorer = cv.ActivationExplorer(model, image)
png = explorer.png
marks["first_picture"] = time.time()
cam = cv.CamExplorer(model, image)
assert cam.wait(120)
png = cam.png
marks["first_cam_picture"] = time.time()
from cnnviz_widgets.engine.backend import wait_for_traces
wait_for_traces(300)
marks["background_traces_done"] = time.time()
print(json.dumps(marks))
"""


def timeline(bench: Any) -> list[Figure]:
    root = Path(__file__).resolve().parent.parent
    launched = time.time()
    done = subprocess.run([sys.executable, "-c", _TIMELINE], capture_output=True, text=True,
                          cwd=root, timeout=900, check=True)  # fmt: skip
    marks = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = {name: value - launched for name, value in marks.items()}
    return [
        Figure(
            "process start → first picture (ActivationExplorer)",
            "ms",
            value=seconds["first_picture"] * 1e3,
            n=1,
            note=", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()),
            extra={"marks_seconds_after_launch": seconds},
        ),
        Figure(
            "process start → first class-activation picture (CamExplorer)",
            "ms",
            value=seconds["first_cam_picture"] * 1e3,
            n=1,
        ),
    ]


class _Bench:
    def __init__(self, plan: Plan) -> None:
        import tensorflow as tf
        from suite_cam import Bench

        self.tf = tf
        shared = Bench(plan)  # type: ignore[arg-type]  # only its model, copy and images
        self.plan = plan
        self.model, self.flat = shared.model, shared.flat
        self.square, self.new_image = shared.square, shared.new_image
        from cnnviz_widgets.engine.adapter import activations

        activations(self.model, self.square, "backbone/stem_activation")  # one view drawn
        _settled()


def run(quick: bool = False) -> SuiteResult:
    plan = QUICK if quick else FULL
    start = time.perf_counter()
    with section("loading the default model; one view drawn"):
        bench = _Bench(plan)
    figures: list[Figure] = []
    with section("1/4 first calls at new layers"):
        figures += first_answers(bench)
    with section("2/4 another gradient method at the same layer"):
        figures += method_switch(bench)
    with section("3/4 steady state vs the compiled floor"):
        figures += steady_state(bench)
    with section("4/4 process start → first picture"):
        figures += timeline(bench)
    context = {"model": bench.model.name, "layers": list(plan.first_layers), "class_index": CAT,
               "plan": plan.__dict__}  # fmt: skip
    return SuiteResult(NAME, DESCRIPTION, figures, context, time.perf_counter() - start)
