"""Benchmark suite "teaching": how soon a lesson sees a recognisable first page of filters.

The Filters tab's first page is 16 images of 128 px, 256 steps, its frames streamed as the
ascent runs. A page is *recognisable* when it passes both criteria of the quality test in
``tests/test_filter_ascent.py``, measured on the page as shown:
:func:`cnnviz_widgets.ascent.quality.selectivity` ≥ 0.9 (each image excites its own channel more
than every other image of the page does) and a median :func:`~cnnviz_widgets.ascent.quality.gain`
≥ 5 (its channel responds five times more than to the grey starting image). Selectivity alone is
met within a few steps, long before a picture forms; the gain is what says a pattern has grown.

Layers, on the offline default model, with the result cache off: the one the Filters tab opens
on (:func:`cnnviz_widgets.widgets.lesson.filters_layer`) and a shallower one. For each, one run
as the tab makes it (frames every 8 steps) gives the time to the first recognisable frame
(target: ≤ 10 s on 2 cores) and the time to the finished page, with the selectivity and gain of
each, and how much of the finished page's response each streamed image has reached (the gain
is huge where a channel ignores the grey start, so it alone says little there). Times run from
the request, tracing included (the widget pays that too).

A half-size preview run first (48 steps at 64 px, shown upscaled) was measured here before and
was both later and less selective than the streamed frames; the tab streams instead.
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

SHALLOW = "backbone/block3b_expand_activation"
CHANNELS = list(range(16))
SIZE = 128
STEPS = 256
RECOGNISABLE = 0.9
GAIN = 5.0
TARGET_SECONDS = 10.0
FRAME_STEPS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def _one_run(model: Any, layer: str, steps: int) -> dict[str, Any]:
    from cnnviz_widgets.ascent import filter_ascent
    from cnnviz_widgets.ascent.quality import gain, selectivity

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
    final_gain = gain(model, layer, CHANNELS, final)
    curve = []
    for done, (seconds, images) in sorted(frames.items()):
        gains = gain(model, layer, CHANNELS, images)
        curve.append(
            {"step": done, "seconds": seconds,
             "selectivity": selectivity(model, layer, CHANNELS, images),
             "gain_median": float(np.median(gains)), "gain_min": float(np.min(gains)),
             # gain/gain_final = response/response_final (same start): how far each image got
             "of_final_median": float(np.median(gains / final_gain))}
        )  # fmt: skip
    first_ok = next(
        (c for c in curve if c["selectivity"] >= RECOGNISABLE and c["gain_median"] >= GAIN), None
    )
    return {
        "total_s": total_s,
        "final_selectivity": selectivity(model, layer, CHANNELS, final),
        "final_gain_median": float(np.median(final_gain)),
        "curve": curve,
        "first_recognisable": first_ok,
    }


def run(quick: bool = False) -> SuiteResult:
    """Time the streamed first page on each layer (quick: the tab's layer, 64 steps)."""
    from cnnviz_widgets.engine.adapter import adapter_for
    from cnnviz_widgets.engine.models import load_default_model
    from cnnviz_widgets.widgets.lesson import filters_layer

    os.environ.pop("CNNVIZ_MAX_STEPS", None)
    start = time.perf_counter()
    steps = 64 if quick else STEPS
    with section("loading the default model"):
        model = load_default_model()
    opening = filters_layer(adapter_for(model))
    layers = [opening] if quick else list(dict.fromkeys([opening, SHALLOW]))
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    for layer in layers:
        short = layer.rsplit("/", 1)[-1] + (" (the tab opens here)" if layer == opening else "")
        with section(f"{short}: one run of {steps} steps, frames every 8"):
            single = _one_run(model, layer, steps)
        details[layer] = single
        first = single["first_recognisable"]
        seconds = None if first is None else first["seconds"]
        when = (
            "never" if first is None
            else f"step {first['step']}: selectivity {first['selectivity']:.2f}, "
            f"gain {first['gain_median']:.1f}, {first['of_final_median']:.0%} of the finished "
            "page's response"
        )  # fmt: skip
        streamed = Figure(
            f"{short}: first streamed page with selectivity ≥ {RECOGNISABLE} and gain ≥ {GAIN:g}",
            unit="s", value=seconds, median=seconds, n=1, note=when, extra=single,
        )  # fmt: skip
        streamed.check("value", TARGET_SECONDS, f"recognisable page ≤ {TARGET_SECONDS:g} s")
        figures.append(streamed)
        figures.append(Figure(
            f"{short}: finished page ({steps} steps)", unit="s", value=single["total_s"],
            median=single["total_s"], n=1,
            note=f"selectivity {single['final_selectivity']:.2f}, "
                 f"gain {single['final_gain_median']:.1f}",
        ))  # fmt: skip
    context = {
        "model": "efficientnet_lite0",
        "layers": layers,
        "opening_layer": opening,
        "size": SIZE,
        "steps": steps,
        "channels": len(CHANNELS),
        "recognisable": RECOGNISABLE,
        "gain": GAIN,
        "details": details,
    }
    return SuiteResult(NAME, DESCRIPTION, figures, context, time.perf_counter() - start)
