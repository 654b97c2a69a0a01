"""A one-file HTML report of a model on an image, made without a notebook.

``cnnviz report`` (or ``python -m cnnviz_widgets report``) writes the top predictions, the
Grad-CAM map of the top class, feature-map grids of layers spread through the network, optional
filter-ascent images, and the layer table, into one standalone page.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import render
from .errors import CnnVizError, ModelError
from .export import Section, html_page, write_file

Progress = Callable[[int, int, str], None]


def spread_layers(paths: Sequence[str], count: int = 4) -> list[str]:
    """``count`` layer paths spread evenly from the first to the last."""
    if len(paths) <= count:
        return list(paths)
    picks = np.linspace(0, len(paths) - 1, count).round().astype(int)
    return [paths[i] for i in dict.fromkeys(picks.tolist())]


def write_report(
    path: str | os.PathLike[str],
    *,
    model: Any = None,
    image: Any = "chelsea",
    layers: Sequence[str] | None = None,
    filters: int = 0,
    progress: Progress | None = None,
    cancel: Any = None,
) -> Path:
    """Write an HTML report of ``model`` on ``image`` to ``path``.

    Parameters
    ----------
    path : path-like
        The HTML file to write.
    model : keras.Model or path, optional
        A model, a ``.keras``/``.h5`` file, or None for the offline default model.
    image : array, path, PIL image or sample name
        The photo (a name from ``sample_image_names()`` is taken as that sample).
    layers : sequence of str, optional
        Layers whose feature maps to show; default: four spread through the network.
    filters : int
        How many channels of the last of those layers to show as filter-ascent images (0: none).
    progress : callable, optional
        ``progress(done, total, what)`` after each stage.
    cancel : threading.Event or callable, optional
        Checked between stages and layers (and filter-ascent steps): once set, the report stops
        with :class:`~cnnviz_widgets.errors.Cancelled` and nothing is written.
    """
    from .engine.adapter import adapter_for
    from .explain.cam import grad_cam
    from .explain.predictions import predict_top
    from .images import load_image
    from .progress import check
    from .samples import sample_image, sample_image_names

    def report(done: int, total: int, what: str) -> None:
        check(cancel, "the report")
        if progress is not None:
            progress(done, total, what)

    stages = 4 + (1 if filters else 0)
    report(0, stages, "loading the model")
    if model is None:
        from .engine.models import load_default_model

        model = load_default_model()
    elif isinstance(model, (str, os.PathLike)):
        from .engine.models import load_model_file

        model = load_model_file(model)
    if isinstance(image, str) and image in sample_image_names():
        image = sample_image(image)
    pixels = load_image(image)
    adapter = adapter_for(model)
    adapter.prepare(pixels)
    if layers:
        chosen = list(layers)
    else:  # input-like layers (preprocessing, 1–3 channels) show only the photo again
        features = [p for p in adapter.layer_paths if (adapter.layer_info(p).channels or 0) > 3]
        chosen = spread_layers(features or adapter.layer_paths)
    chosen = [adapter.resolve_layer(name) for name in chosen]
    photo = render.as_rgb_uint8(pixels)
    sections = [Section("Image", render.encode_png(photo), f"{photo.shape[1]}×{photo.shape[0]} px")]

    report(1, stages, "predictions and Grad-CAM")
    try:
        top = predict_top(adapter, pixels)  # five classes, or all of fewer
    except ModelError as exc:  # not a classifier: the other views still make sense
        sections.append(Section("Predictions", caption=f"No class views: {exc}"))
    else:
        heat = grad_cam(adapter, pixels, top[0][0])
        regression = adapter.head_activation() == "linear"
        sections.append(
            Section(
                f"Grad-CAM for “{top[0][1]}”",
                render.encode_png(render.overlay(photo, heat, cmap="jet", alpha=0.5)),
                "Where the evidence for the top class lies (red: most).",
                [(i, label, (f"{p:.4g}" if regression else f"{p:.1%}")) for i, label, p in top],
                ("class", "label", "value" if regression else "probability"),
            )
        )

    report(2, stages, "feature maps")
    for name in chosen:
        check(cancel, "the report")
        maps = adapter.activations(pixels, name)
        channels = render.page_channels(maps.shape[-1], 0, 32)
        grid, _ = render.channel_grid(maps, channels, columns=8, tile_max_side=96)
        caption = f"{maps.shape[0]}×{maps.shape[1]}×{maps.shape[2]}; channels 0–{channels[-1]}"
        sections.append(Section(f"Feature maps: {name}", render.encode_png(grid), caption))

    if filters:
        from .ascent import filter_ascent

        report(3, stages, f"filter ascent ({filters} channels)")
        count = min(filters, adapter.layer_info(chosen[-1]).channels or 0)
        images = filter_ascent(
            adapter, chosen[-1], list(range(count)), size=96, progress=False, cancel=cancel
        )
        grid, _ = render.image_grid(images, list(range(count)), columns=8, tile_min_side=96)
        sections.append(Section(f"Filters: {chosen[-1]}", render.encode_png(grid),
                                "Images synthesised to excite each channel most."))  # fmt: skip

    report(stages - 1, stages, "writing the page")
    rows = [(i.path, i.class_name, i.output_shape, i.params) for i in adapter.layers]
    sections.append(Section("Layers", table=rows, header=("layer", "class", "output", "params")))
    written = write_file(path, html_page(f"cnnviz report · {model.name}", sections))
    report(stages, stages, f"wrote {written}")
    return written


def tqdm_progress(stream: TextIO | None = None) -> Progress:
    """Report stages on a ``tqdm`` bar (stderr by default): ``feature maps: 60%|██████ | 3/5``.

    TensorFlow's start-up lines are kept out of the output by the package, so the bar stays one
    line. The bar closes when the last stage is reported.
    """
    from tqdm import tqdm

    bars: list[Any] = []

    def show(done: int, total: int, what: str) -> None:
        if not bars:
            bars.append(tqdm(total=total, file=stream or sys.stderr, unit="stage", leave=True))
        bar = bars[0]
        bar.set_description_str(what)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``cnnviz report [--model FILE] [--image NAME|FILE] [--out FILE] ...``."""
    import argparse

    parser = argparse.ArgumentParser(prog="cnnviz", description="See inside a CNN.")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("report", help="write a standalone HTML report")
    cmd.add_argument("--model", help=".keras or .h5 file (default: the offline default model)")
    cmd.add_argument("--image", default="chelsea", help="sample name or image file")
    cmd.add_argument("--out", default="cnnviz_report.html", help="HTML file to write")
    cmd.add_argument("--layers", help="comma-separated layer paths (default: four, spread)")
    cmd.add_argument("--filters", type=int, default=0, help="filter-ascent images to add")
    args = parser.parse_args(argv)
    try:
        written = write_report(
            args.out, model=args.model, image=args.image, filters=args.filters,
            layers=args.layers.split(",") if args.layers else None, progress=tqdm_progress(),
        )  # fmt: skip
    except CnnVizError as exc:
        print(f"\ncnnviz: {exc}", file=sys.stderr)
        return 2
    print(written)
    return 0
