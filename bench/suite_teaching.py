"""Benchmark suite "teaching": how soon a lesson sees a recognisable first page of filters.

The Filters tab's first page is 16 images of 128 px. A page is *recognisable* when it passes
both criteria of the quality test in ``tests/test_filter_ascent.py``, measured on the page as
shown: :func:`cnnviz_widgets.ascent.schedule.selectivity` ≥ 0.9 (each image excites its own
channel more than every other image of the page does) and a median
:func:`~cnnviz_widgets.ascent.schedule.gain` ≥ 5 (its channel responds five times more than to
the grey starting image). Selectivity alone is met within a few steps, long before a picture
forms; the gain is what says a pattern has grown.

For each layer, on the offline default model, with the result cache off:

1. **one run** (the schedule before issue 12): 256 steps at 128 px, frames streamed every 8
   steps. The selectivity of the frames at chosen steps gives the time at which the streamed
   page first became recognisable, and the time to the finished page.
2. **preview, then full** (:func:`~cnnviz_widgets.ascent.schedule.preview_then_full`): 48 steps
   at 64 px shown upscaled, then the full run. Times to the preview and to the finished page,
   with the selectivity of each.

Times run from the request, tracing included for the first request of each image size (the
widget pays that too unless it warmed up). Target: a recognisable page within 10 s on 2 cores.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from report import Figure, SuiteResult
from timing import section

NAME = "teaching"
DESCRIPTION = "Filters first page: time to a recognisable page (selectivity ≥ 0.9), to full quality"

LAYERS = ("backbone/block5c_expand_activation", "backbone/block3b_expand_activation")
CHANNELS = list(range(16))
SIZE = 128
STEPS = 256
RECOGNISABLE = 0.9
GAIN = 5.0
TARGET_SECONDS = 10.0
FRAME_STEPS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def _one_run(model: Any, layer: str, steps: int) -> dict[str, Any]:
    from cnnviz_widgets.ascent import filter_ascent
    from cnnviz_widgets.ascent.schedule import gain, selectivity

    frames: dict[int, tuple[float, np.ndarray]] = {}
    start = time.perf_counter()

    def on_step(done: int, total: int, images: Any) -> None:
        if images is not None and done in FRAME_STEPS:
            frames[done] = (time.perf_counter() - start, np.array(images))

    final = filter_ascent(
        model, layer, CHANNELS, size=SIZE, steps=steps, every=8, on_step=on_step,
        cache=False, progress=False,
    )  # fmt: skip
    total_s = time.perf_counter() - start
    curve = []
    for done, (seconds, images) in sorted(frames.items()):
        curve.append(
            {"step": done, "seconds": seconds,
             "selectivity": selectivity(model, layer, CHANNELS, images),
             "gain_median": float(np.median(gain(model, layer, CHANNELS, images))),
             "gain_min": float(np.min(gain(model, layer, CHANNELS, images)))}
        )  # fmt: skip
    first_ok = next(
        (c for c in curve if c["selectivity"] >= RECOGNISABLE and c["gain_median"] >= GAIN), None
    )
    return {
        "total_s": total_s,
        "final_selectivity": selectivity(model, layer, CHANNELS, final),
        "final_gain_median": float(np.median(gain(model, layer, CHANNELS, final))),
        "curve": curve,
        "first_recognisable": first_ok,
    }


def _preview_then_full(model: Any, layer: str, steps: int) -> dict[str, Any]:
    from cnnviz_widgets.ascent.schedule import gain, preview_then_full, selectivity

    marks: dict[str, tuple[float, np.ndarray]] = {}
    start = time.perf_counter()
    preview_then_full(
        model, layer, CHANNELS, size=SIZE, steps=steps, cache=False, progress=False,
        on_stage=lambda name, images: marks.setdefault(
            name, (time.perf_counter() - start, np.array(images))
        ),
    )  # fmt: skip
    out = {}
    for name, (seconds, images) in marks.items():
        out[name] = {
            "seconds": seconds,
            "selectivity": selectivity(model, layer, CHANNELS, images),
            "gain_median": float(np.median(gain(model, layer, CHANNELS, images))),
        }
    return out


def run(quick: bool = False) -> SuiteResult:
    """Measure both schedules on each layer (quick: one layer, 64 steps)."""
    from cnnviz_widgets.engine.models import load_default_model

    os.environ.pop("CNNVIZ_MAX_STEPS", None)
    start = time.perf_counter()
    layers = LAYERS[:1] if quick else LAYERS
    steps = 64 if quick else STEPS
    with section("loading the default model"):
        model = load_default_model()
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    for layer in layers:
        short = layer.rsplit("/", 1)[-1]
        with section(f"{short}: preview, then full"):
            staged = _preview_then_full(model, layer, steps)
        with section(f"{short}: one run of {steps} steps, frames every 8"):
            single = _one_run(model, layer, steps)
        details[layer] = {"one_run": single, "preview_then_full": staged}

        preview = staged.get("preview") or staged["full"]
        figure = Figure(
            f"{short}: preview page ({preview['selectivity']:.2f} selective, gain "
            f"{preview['gain_median']:.1f})", unit="s",
            value=preview["seconds"], median=preview["seconds"], n=1,
            note=f"48 steps at 64 px, upscaled; full page ({staged['full']['selectivity']:.2f}"
            f" selective) at {staged['full']['seconds']:.1f} s",
            extra=staged,
        )  # fmt: skip
        figure.check("value", TARGET_SECONDS, f"recognisable page ≤ {TARGET_SECONDS:g} s")
        if preview["selectivity"] < RECOGNISABLE or preview["gain_median"] < GAIN:
            figure.passed = False
        figures.append(figure)

        first = single["first_recognisable"]
        seconds = None if first is None else first["seconds"]
        when = (
            "never" if first is None
            else f"step {first['step']} ({first['selectivity']:.2f}, "
            f"gain {first['gain_median']:.1f})"
        )  # fmt: skip
        streamed = Figure(
            f"{short}: one run, first streamed frame with selectivity ≥ {RECOGNISABLE} and "
            f"gain ≥ {GAIN:g}",
            unit="s", value=seconds, median=seconds, n=1,
            note=f"{when}; finished page ({single['final_selectivity']:.2f}, gain "
            f"{single['final_gain_median']:.1f}) at {single['total_s']:.1f} s",
            extra=single,
        )  # fmt: skip
        streamed.check("value", TARGET_SECONDS, f"recognisable page ≤ {TARGET_SECONDS:g} s")
        figures.append(streamed)
    context = {
        "model": "efficientnet_lite0",
        "layers": list(layers),
        "size": SIZE,
        "steps": steps,
        "channels": len(CHANNELS),
        "recognisable": RECOGNISABLE,
        "details": details,
    }
    return SuiteResult(NAME, DESCRIPTION, figures, context, time.perf_counter() - start)
