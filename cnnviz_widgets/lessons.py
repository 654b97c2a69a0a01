"""The lessons of the teaching articles, as functions the lesson notebooks call.

Each function makes one of the articles' figures from our own models and data (nothing is
downloaded): a small cats-vs-dogs-style convnet trained on two digit classes, a random 4-layer
convnet, Grad-CAM taken apart step by step, deconvnet's max-unpooling switches, pixel values
written on a digit, Sobel filters. Titles go through the message catalog, so the figures read
in the language chosen with :func:`cnnviz_widgets.set_language` (Chinese glyphs need
:func:`cnnviz_widgets.use_cjk_font`, which the figure functions call when the language is
Chinese).

``docs/lessons.md`` lists which notebook cell draws which figure of which article.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import render
from .i18n import get_language, use_cjk_font
from .i18n import gettext_ as _

__all__ = [
    "blank_channel_share",
    "digit_pair_set",
    "fused_maps_figure",
    "gradcam_steps",
    "layer_grids_figure",
    "max_pool_with_switches",
    "pixel_values_figure",
    "random_convnet",
    "small_convnet",
    "sobel_figure",
    "steps_figure",
    "unpool",
]

CONV_LAYERS = ("Conv2D",)


def _pyplot() -> Any:
    import matplotlib.pyplot as plt

    if get_language() == "zh":
        use_cjk_font()
    return plt


# ------------------------------------------------------------------------------ data, models
def digit_pair_set(
    classes: tuple[int, int] = (0, 1), size: int = 150, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two digit classes of scikit-learn's ``load_digits``, as colour photos of ``size`` px.

    Each 8×8 digit is enlarged (bilinear, then its contrast raised so strokes have crisp
    edges) and painted: stroke and background get colours drawn
    per image, so the first layer has colours as well as edges to detect. Returns uint8
    (N, size, size, 3) pictures and labels 0/1 (1 for ``classes[1]``).
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.isin(digits.target, classes)
    rng = np.random.default_rng(seed)
    pictures = []
    for plane in digits.images[keep]:
        small = Image.fromarray(np.uint8(plane / 16.0 * 255))
        ink = np.asarray(small.resize((size, size), Image.BILINEAR), np.float32)[..., None] / 255
        ink = np.clip((ink - 0.5) * 3.0 + 0.5, 0.0, 1.0)  # crisp strokes: edges to detect
        stroke = rng.uniform(0.5, 1.0, 3)
        ground = rng.uniform(0.0, 0.35, 3)
        pictures.append(np.uint8(np.rint((ink * stroke + (1 - ink) * ground) * 255)))
    labels = (digits.target[keep] == classes[1]).astype(np.float32)
    return np.stack(pictures), labels


def small_convnet(
    size: int = 150, widths: tuple[int, ...] = (16, 32, 64, 64), dense: int = 64
) -> Any:
    """Chollet's small cats-vs-dogs convnet: four conv 3×3 + max-pool 2×2 blocks, one sigmoid.

    ``widths`` are the filters of the four convolutions (the book uses 32, 64, 128, 128; the
    default is half that, so it trains in seconds on a laptop). Pixels 0–255 in.
    """
    from .engine import backend

    keras = backend.keras()
    layers = [keras.Input((size, size, 3), name="image"), keras.layers.Rescaling(1 / 255.0)]
    for index, width in enumerate(widths, 1):
        layers.append(
            keras.layers.Conv2D(width, 3, activation="relu", name=f"conv2d_{index}")
        )
        layers.append(keras.layers.MaxPooling2D(2, name=f"max_pooling2d_{index}"))
    layers += [
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(dense, activation="relu", name="dense"),
        keras.layers.Dense(1, activation="sigmoid", name="output"),
    ]
    return keras.Sequential(layers, name="small_convnet")


def random_convnet(size: int = 224, seed: int = 0) -> Any:
    """An untrained 4-layer convnet (9 filters each: 5×5, 5×5, 5×5, 3×3; ReLU; pools 4, 3, 2)."""
    from .engine import backend

    keras = backend.keras()
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((size, size, 3), name="image"), keras.layers.Rescaling(1 / 255.0)]
    for index, (kernel, pool) in enumerate([(5, 4), (5, 3), (5, 2), (3, None)], 1):
        layers.append(keras.layers.Conv2D(9, kernel, activation="relu", name=f"conv{index}"))
        if pool:
            layers.append(keras.layers.MaxPooling2D(pool, name=f"pool{index}"))
    return keras.Sequential(layers, name="random_convnet")


# ------------------------------------------------------------------------------ activations
def layer_grids_figure(
    model: Any, image: Any, layers: list[str] | None = None, per_row: int = 16,
    cmap: str = "viridis",
) -> Any:
    """Every layer's feature maps in one picture, ``per_row`` maps a row, numbered.

    Default layers: every spatial layer after the first conv, up to the last pool.
    """
    from .engine.adapter import activations, layer_paths

    plt = _pyplot()
    paths = layers or [p for p in layer_paths(model) if not p.startswith("rescaling")]
    grids = []
    for path in paths:
        maps = activations(model, image, path)
        columns = min(per_row, maps.shape[-1])
        rgb, layout = render.channel_grid(maps, columns=columns, cmap=cmap, tile_min_side=40)
        grids.append((path, maps.shape, render.number_tiles(rgb, layout)))
    heights = [g[2].shape[0] / g[2].shape[1] for g in grids]
    fig, axes = plt.subplots(
        len(grids), 1, figsize=(14, 14 * sum(heights) + 0.5 * len(grids)),
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )  # fmt: skip
    for ax, (path, shape, rgb) in zip(axes[:, 0], grids, strict=True):
        ax.imshow(rgb)
        ax.set_title(f"{path} · {shape[0]}×{shape[1]}×{shape[2]}", loc="left")
        ax.axis("off")
    fig.tight_layout()
    return fig


def blank_channel_share(maps: np.ndarray, tolerance: float = 1e-6) -> float:
    """Share of channels that are blank (never above ``tolerance``) for this image."""
    peak = np.asarray(maps).reshape(-1, maps.shape[-1]).max(axis=0)
    return float(np.mean(peak <= tolerance))


def fused_maps_figure(model: Any, image: Any, layers: list[str], cmap: str = "viridis") -> Any:
    """For each layer: its first channels side by side, then their 1:1 sum (the fused map)."""
    from .engine.adapter import activations

    plt = _pyplot()
    fig, axes = plt.subplots(len(layers), 2, figsize=(13, 2.6 * len(layers)), squeeze=False,
                             gridspec_kw={"width_ratios": [4, 1]})  # fmt: skip
    for row, path in zip(axes, layers, strict=True):
        maps = activations(model, image, path)
        rgb, layout = render.channel_grid(maps, columns=min(9, maps.shape[-1]), cmap=cmap,
                                          tile_min_side=48)  # fmt: skip
        row[0].imshow(render.number_tiles(rgb, layout))
        row[0].set_title(f"{path} · {maps.shape[0]}×{maps.shape[1]}×{maps.shape[2]}", loc="left")
        row[1].imshow(render.channel_sum(maps), cmap=cmap)
        row[1].set_title(_("fused: sum of all {count} maps").format(count=maps.shape[-1]))
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ pixels, Sobel
def pixel_values_figure(picture: np.ndarray, title: str | None = None) -> Any:
    """A small grey picture with each pixel's value written on it (dark text on light pixels)."""
    plt = _pyplot()
    values = np.asarray(picture)
    fig, ax = plt.subplots(figsize=(0.55 * values.shape[1] + 1, 0.55 * values.shape[0] + 1))
    ax.imshow(values, cmap="gray", vmin=0, vmax=max(float(values.max()), 1.0))
    middle = (float(values.max()) + float(values.min())) / 2
    for (row, column), value in np.ndenumerate(values):
        text = f"{value:.2g}" if values.dtype.kind == "f" else str(int(value))
        ax.text(column, row, text, ha="center", va="center", fontsize=7,
                color="black" if value > middle else "white")  # fmt: skip
    ax.set_title(title or _("every pixel is a number"))
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)


def correlate(gray: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """What a conv layer computes (no flip, 'same' size, zero padding), in numpy."""
    from numpy.lib.stride_tricks import sliding_window_view

    kh, kw = kernel.shape
    pads = ((kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2))
    padded = np.pad(np.asarray(gray, np.float32), pads)
    return np.einsum("ijkl,kl->ij", sliding_window_view(padded, (kh, kw)), kernel)


def sobel_figure(gray: np.ndarray) -> Any:
    """The photo, Sobel x (vertical edges), Sobel y (horizontal edges) and the magnitude."""
    plt = _pyplot()
    gx, gy = correlate(gray, SOBEL_X), correlate(gray, SOBEL_X.T)
    panels = [
        (gray, _("input (grey)"), "gray"),
        (gx, _("Sobel x: left–right changes (vertical edges)"), "RdBu_r"),
        (gy, _("Sobel y: top–bottom changes (horizontal edges)"), "RdBu_r"),
        (np.hypot(gx, gy), _("magnitude √(x² + y²): every edge"), "gray"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    for ax, (picture, title, cmap) in zip(axes, panels, strict=True):
        limit = float(np.abs(picture).max()) or 1.0
        signed = cmap == "RdBu_r"
        low, high = (-limit, limit) if signed else (None, None)
        ax.imshow(picture, cmap=cmap, vmin=low, vmax=high)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ Grad-CAM steps
def gradcam_steps(model: Any, image: Any, layer: str, class_index: int) -> dict[str, np.ndarray]:
    """Grad-CAM taken apart: every intermediate array, in the order the method computes it.

    Keys: ``maps`` (h, w, K) feature maps; ``gradients`` (h, w, K) of the class score;
    ``weights`` (K,) = mean gradient per channel; ``weighted_sum`` (h, w) = Σ weight × map;
    ``relu`` = its positive part; ``coarse`` = that scaled to [0, 1]; ``upsampled`` (H, W) at the
    photo's size; ``overlay`` (H, W, 3) uint8, the heat map over the photo.
    """
    from .engine.adapter import adapter_for
    from .engine.backend import tensorflow

    tf = tensorflow()
    adapter = adapter_for(model)
    prepared = adapter.prepare(image)
    path = adapter.resolve_layer(layer)
    batch = tf.constant(adapter.model_input(prepared))
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        (features,), logits = adapter.forward(batch, [path], logits=True, watch=tape.watch)
        score = logits[0, class_index]
    grads = tape.gradient(score, features)
    maps = features.numpy()[0].astype(np.float32)
    gradients = grads.numpy()[0].astype(np.float32)
    weights = gradients.mean(axis=(0, 1))
    weighted = np.tensordot(maps, weights, axes=([2], [0]))
    relu = np.maximum(weighted, 0.0)
    coarse = relu / relu.max() if relu.max() > 0 else relu
    photo = render.as_rgb_uint8(prepared.pixels)
    from PIL import Image

    heat = Image.fromarray(np.float32(coarse), mode="F").resize(photo.shape[1::-1], Image.BILINEAR)
    upsampled = np.clip(np.asarray(heat, np.float32), 0, 1)
    overlay = render.overlay(photo, upsampled, cmap="jet", alpha=0.5)
    return {"maps": maps, "gradients": gradients, "weights": weights, "weighted_sum": weighted,
            "relu": relu, "coarse": coarse, "upsampled": upsampled, "overlay": overlay}  # fmt: skip


def steps_figure(steps: dict[str, np.ndarray], channels: int = 6) -> Any:
    """One picture per Grad-CAM step, left to right, top to bottom, each with its caption."""
    plt = _pyplot()
    # The channels that add most to the weighted sum (weight × mean activation): a channel with
    # a large weight that is zero on this photo adds nothing and would draw a blank panel.
    share = steps["weights"] * steps["maps"].mean(axis=(0, 1))
    order = np.argsort(share)[::-1][:channels]
    fig, axes = plt.subplots(3, 4, figsize=(16, 12))
    axes = axes.ravel()
    for ax, c in zip(axes[:2], order[:2], strict=False):
        ax.imshow(steps["maps"][:, :, c], cmap="viridis")
        ax.set_title(_("1. feature map, channel {c}").format(c=int(c)), fontsize=10)
    for ax, c in zip(axes[2:4], order[:2], strict=False):
        limit = float(np.abs(steps["gradients"][:, :, c]).max()) or 1.0
        ax.imshow(steps["gradients"][:, :, c], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(_("2. gradient of the class score, channel {c}").format(c=int(c)), fontsize=10)
    axes[4].bar(range(len(steps["weights"])), np.sort(steps["weights"])[::-1], color="#4477aa")
    axes[4].set_title(_("3. channel weights = mean gradient (sorted)"), fontsize=10)
    panels = [
        (steps["weighted_sum"], _("4. weighted sum of the maps"), "RdBu_r"),
        (steps["relu"], _("5. ReLU: keep the positive evidence"), "magma"),
        (steps["coarse"], _("6. raw coarse heat map ({h}×{w})").format(
            h=steps["coarse"].shape[0], w=steps["coarse"].shape[1]), "jet"),
        (steps["upsampled"], _("7. upsampled to the photo"), "jet"),
        (steps["overlay"], _("8. overlay on the photo"), None),
    ]  # fmt: skip
    for ax, (picture, title, cmap) in zip(axes[5:], panels, strict=False):
        if cmap == "RdBu_r":
            limit = float(np.abs(picture).max()) or 1.0
            ax.imshow(picture, cmap=cmap, vmin=-limit, vmax=limit)
        else:
            ax.imshow(picture, cmap=cmap)
        ax.set_title(title, fontsize=10)
    for ax in axes:
        if ax is not axes[4]:
            ax.axis("off")
    for ax in axes[10:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ deconvnet
def max_pool_with_switches(maps: np.ndarray, size: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """2-D max pooling (valid, stride = size) that also records where each maximum was.

    Returns the pooled maps (h // size, w // size, C) and the switches: for each pooled value
    the index 0 … size²−1 of its position inside its window (row-major).
    """
    h, w, c = maps.shape
    h, w = h - h % size, w - w % size
    windows = maps[:h, :w].reshape(h // size, size, w // size, size, c).transpose(0, 2, 4, 1, 3)
    flat = windows.reshape(h // size, w // size, c, size * size)
    switches = flat.argmax(axis=-1)
    return np.take_along_axis(flat, switches[..., None], -1)[..., 0], switches


def unpool(pooled: np.ndarray, switches: np.ndarray, size: int = 2) -> np.ndarray:
    """Max-unpooling: each value back where its switch says the maximum was; zeros elsewhere."""
    ph, pw, c = pooled.shape
    flat = np.zeros((ph, pw, c, size * size), pooled.dtype)
    np.put_along_axis(flat, switches[..., None], pooled[..., None], -1)
    return flat.reshape(ph, pw, c, size, size).transpose(0, 3, 1, 4, 2).reshape(
        ph * size, pw * size, c
    )
