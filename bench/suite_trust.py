"""Benchmark suite "trust": trust checks for every method, and the drill-down's speed.

All figures use the offline default model (EfficientNet-Lite0) and the ``chelsea`` photo, class
"Egyptian cat" (285).

Sections
--------
1. Drill-down: a CamExplorer shows the Grad-CAM map (its gradients are computed with it in the
   background); then ``cam.point`` moves to a new spot on every call and the time until the
   ranking and its channel pictures are shown is measured. Target: p95 ≤ 50 ms. The bare
   ranking (:func:`rank_channels`, numpy) is timed as its floor. Then the same at a person's
   pace (a point every 0.6 s, the drilled channels' ascent images computing in between).
2. Deletion and insertion scores (Petsiuk et al. 2018) of every registered method's map,
   next to a seeded random map's (informational; the figures go to docs/trust.md). A
   class-activation method's random map is drawn at its layer's grid, a saliency method's per
   pixel, so each is compared with a random map as coarse as itself.
3. The model-randomisation check (Adebayo et al. 2018) of every method: the rank correlation
   after the top block and after every block, and whether the method is flagged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from report import Figure, Reference, SuiteResult
from timing import measure, section

NAME = "trust"
DESCRIPTION = "drill-down ranking after the CAM is shown; deletion/insertion and sanity checks"

CAT = 285
DRILL_TARGET_MS = 50.0
PACE_SECONDS = 0.6
PACED_POINTS = 20
#: Methods whose map takes longer are randomised on their top SLOW_METHOD_BLOCKS blocks only.
SLOW_MAP_SECONDS = 1.5
SLOW_METHOD_BLOCKS = 4


@dataclass(frozen=True)
class Plan:
    drill: int = 60
    steps: int = 32  # points of each deletion/insertion curve
    blocks: int | None = None  # randomisation: every block
    smoothgrad_samples: int = 25


FULL = Plan()
# The drill-down is cheap (tens of ms a point): the quick plan measures it as fully as FULL.
QUICK = Plan(drill=60, steps=8, blocks=3, smoothgrad_samples=8)


def drilldown(model: Any, photo: np.ndarray, plan: Plan) -> list[Figure]:
    """Time from ``cam.point = …`` to the ranking shown, after the CAM is shown."""
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.explain.drilldown import image_cell, rank_channels
    from cnnviz_widgets.widgets.cam import CamExplorer

    cam = CamExplorer(model, photo, cache=ActivationCache())
    try:
        cam.class_index = CAT
        assert cam.wait(300)
        h, w = photo.shape[:2]
        rng = np.random.default_rng(0)
        points = [(int(rng.integers(h)), int(rng.integers(w))) for _ in range(plan.drill + 3)]

        def move(i: int) -> None:
            cam.point = points[i]

        stats = measure(move, repeats=plan.drill, warmup=3)
        # At a person's pace: a new point every PACE_SECONDS, the ascent images of the last
        # one computing in the background in between (they yield within one short step).
        paced_points = points[::-1]

        def move_paced(i: int) -> None:
            cam.point = paced_points[i]

        paced = measure(move_paced, repeats=PACED_POINTS, warmup=1,
                        setup=lambda i: time.sleep(PACE_SECONDS))  # fmt: skip
        features, grads = cam._gradients(cam.class_index, cam.layer)  # the cached pair

        def bare(i: int) -> None:
            rank_channels(features, grads, image_cell(points[i], (h, w), features.shape[:2]))

        floor = measure(bare, repeats=plan.drill, warmup=3)
        shown = len(cam.drilled)
        layer = cam.layer
    finally:
        cam.close()
    figure = Figure.timed(
        "drill-down: set point → ranking and 8 channel pictures shown", stats,
        references=[Reference.from_stats("rank_channels (numpy)", "floor", floor, stats,
                                         ours_over_ref=True)],
        note=f"{shown} channels of {layer} ranked; gradients computed when the map was shown",
        extra={"layer": layer, "channels": shown},
    )  # fmt: skip
    figure.check("p95", DRILL_TARGET_MS, f"p95 ≤ {DRILL_TARGET_MS:.0f} ms")
    at_pace = Figure.timed(
        f"drill-down at a person's pace: a point every {PACE_SECONDS:g} s, ascent images "
        "computing in between", paced,
        note="the ascent pauses from each new point until none has come for "
             "cam_trust.DRILL_QUIET s",
    )  # fmt: skip
    return [figure, at_pace]


def method_maps(model: Any, photo: np.ndarray) -> dict[str, tuple[str, np.ndarray, float]]:
    """Every registered method's map of the cat: name → (label, map, seconds it took)."""
    from cnnviz_widgets.explain import registry
    from cnnviz_widgets.explain.gallery import attribution

    maps = {}
    for kind in registry.KINDS:
        for method in registry.methods(kind):
            attribution(model, photo, CAT, method.name, None, None)  # trace once, untimed
            start = time.perf_counter()
            heat = attribution(model, photo, CAT, method.name, None, None)
            maps[method.name] = (method.label, heat, time.perf_counter() - start)
    return maps


def faithfulness_figures(model: Any, photo: np.ndarray, plan: Plan, maps: dict) -> tuple:
    from cnnviz_widgets import activations
    from cnnviz_widgets.explain import registry
    from cnnviz_widgets.explain.targets import default_cam_layer
    from cnnviz_widgets.explain.trust import faithfulness

    # A class-activation map is as coarse as its layer: its random map is too (random_grid).
    layer_grid = activations(model, photo, default_cam_layer(model)).shape[:2]
    cam_methods = {method.name for method in registry.methods("cam")}
    figures, table = [], {}
    for name, (label, heat, _) in maps.items():
        row = {"label": label}
        grid = layer_grid if name in cam_methods else None
        for metric in ("deletion", "insertion"):
            start = time.perf_counter()
            score = faithfulness(model, photo, heat, CAT, metric=metric, steps=plan.steps,
                                 random_grid=grid, progress=False)  # fmt: skip
            seconds = time.perf_counter() - start
            row[metric] = float(score)
            row[f"{metric}_random"] = score.random
            figures.append(Figure(
                f"{metric} AUC · {label}", "AUC", value=float(score), n=plan.steps + 1,
                note=f"random map {score.random:.3f}; "
                     f"{'better' if score.better_than_random else 'not better'} than random",
                extra={"random": score.random, "random_grid": None if grid is None else list(grid),
                       "seconds": seconds, "curve": score.curve.tolist()},
            ))  # fmt: skip
        table[name] = row
    return figures, table


def randomization_figures(model: Any, photo: np.ndarray, plan: Plan, maps: dict) -> tuple:
    from cnnviz_widgets.explain import registry
    from cnnviz_widgets.explain.trust import randomization_check

    kinds = {m.name: m for kind in registry.KINDS for m in registry.methods(kind)}
    figures, table = [], {}
    for name, (label, _, map_seconds) in maps.items():
        # Slow methods (seconds a map) are checked on the top blocks only, to keep the run short.
        blocks = plan.blocks if map_seconds < SLOW_MAP_SECONDS else SLOW_METHOD_BLOCKS
        options = {"samples": plan.smoothgrad_samples} if name == "smoothgrad" else {}
        start = time.perf_counter()
        check = randomization_check(model, photo, kinds[name].name, CAT, blocks=blocks,
                                    options=options, progress=False)  # fmt: skip
        seconds = time.perf_counter() - start
        table[name] = {
            "label": label, "blocks": check.blocks,
            "correlations": check.correlations, "flagged": check.flagged,
        }  # fmt: skip
        figures.append(Figure(
            f"randomisation ρ after {len(check)} blocks · {label}", "rho",
            value=check.correlations[-1], n=len(check),
            note=f"top block ρ {check.correlations[0]:.3f}; "
                 f"{'FLAGGED: map survives randomisation' if check.flagged else 'changes'}",
            extra={"blocks": check.blocks, "correlations": check.correlations,
                   "flagged": check.flagged, "seconds": seconds},
        ))  # fmt: skip
    return figures, table


def run(quick: bool = False) -> SuiteResult:
    """Run every section and return the figures (see the module docstring)."""
    from cnnviz_widgets import load_default_model, sample_image

    plan = QUICK if quick else FULL
    start = time.perf_counter()
    with section("loading the default model"):
        model = load_default_model()
        photo = sample_image("chelsea")
    figures: list[Figure] = []
    with section("1/3 drill-down ranking after the CAM is shown"):
        figures += drilldown(model, photo, plan)
    with section("every method's map"):
        maps = method_maps(model, photo)
    with section(f"2/3 deletion/insertion, {plan.steps} steps, every method"):
        found, scores = faithfulness_figures(model, photo, plan, maps)
        figures += found
    with section("3/3 randomisation check, every method"):
        found, sanity = randomization_figures(model, photo, plan, maps)
        figures += found
    context = {
        "model": model.name,
        "image": "chelsea",
        "class_index": CAT,
        "plan": plan.__dict__,
        "faithfulness": scores,
        "randomization": sanity,
        "baseline": "blur (the image shrunk 16× and enlarged back)",
        "map_seconds": {name: seconds for name, (_, _, seconds) in maps.items()},
    }
    return SuiteResult(NAME, DESCRIPTION, figures, context, time.perf_counter() - start)
