"""Side by side: several methods in one row, one method over several images; HTML export."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from PIL import Image

from cnnviz_widgets import render
from cnnviz_widgets.errors import CnnVizError, ImageError
from cnnviz_widgets.explain import grad_cam, predict_top, saliency
from cnnviz_widgets.explain.gallery import GAP, TILE_HEIGHT, compare_images, compare_methods
from cnnviz_widgets.images import resize_image
from cnnviz_widgets.samples import sample_image_names

LABELS = ["cat", "dog", "cup", "car", "tree"]


def tile(photo, heat):
    """One tile written out: photo and map at TILE_HEIGHT rows, the map laid over the photo."""
    h, w = photo.shape[:2]
    size = (TILE_HEIGHT, round(w * TILE_HEIGHT / h))
    shown = render.as_rgb_uint8(resize_image(photo.astype(np.float32), size))
    return render.overlay(shown, np.clip(resize_image(heat, size), 0, 1), cmap="jet", alpha=0.5)


def test_several_methods_in_one_row(tiny_functional, rgb16):
    gallery = compare_methods(tiny_functional, rgb16, ["gradcam", "layercam", "vanilla"], 1,
                              layer="conv2", name="noise", progress=False)  # fmt: skip
    maps = [
        grad_cam(tiny_functional, rgb16, 1, layer="conv2"),
        grad_cam(tiny_functional, rgb16, 1, layer="conv2", method="layercam"),
        saliency(tiny_functional, rgb16, 1),
    ]
    want = render.side_by_side([tile(rgb16, m) for m in maps], pad=GAP)
    np.testing.assert_array_equal(gallery.rgb, want)
    assert gallery.rgb.shape == (TILE_HEIGHT, 3 * TILE_HEIGHT + 2 * GAP, 3)
    assert [t.method for t in gallery.tiles] == ["gradcam", "layercam", "vanilla"]
    assert gallery.tiles[0].title == "noise · class 1 (1) · Grad-CAM"
    for got, heat in zip(gallery.tiles, maps, strict=True):
        np.testing.assert_array_equal(got.heatmap, heat)
    assert gallery.columns == 3 and gallery.png[:8] == render.PNG_SIGNATURE


def test_one_method_over_a_folder(tiny_flexible, tmp_path):
    rng = np.random.default_rng(4)
    photos = {"b.png": rng.integers(0, 256, (20, 30, 3), np.uint8),
              "a.png": rng.integers(0, 256, (20, 30, 3), np.uint8)}  # fmt: skip
    for name, photo in photos.items():
        Image.fromarray(photo).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a picture")
    gallery = compare_images(tiny_flexible, tmp_path, "gradcam", columns=1, progress=False)
    assert [t.image for t in gallery.tiles] == ["a.png", "b.png"]
    pictures = []
    for name in ("a.png", "b.png"):
        top = predict_top(tiny_flexible, photos[name], k=1)[0][0]
        assert gallery.tiles[pictures.__len__()].class_index == top
        pictures.append(tile(photos[name], grad_cam(tiny_flexible, photos[name], top)))
    want = np.full((2 * TILE_HEIGHT + GAP, pictures[0].shape[1], 3), 255, np.uint8)
    want[:TILE_HEIGHT], want[TILE_HEIGHT + GAP :] = pictures
    np.testing.assert_array_equal(gallery.rgb, want)


def test_every_bundled_photo_and_html_export(tiny_flexible, tmp_path):
    gallery = compare_images(tiny_flexible, None, "gradcam", target=2, progress=False)
    assert [t.image for t in gallery.tiles] == sample_image_names()
    assert {t.class_index for t in gallery.tiles} == {2}
    assert gallery.columns == 3
    path = gallery.export_html(tmp_path / "gallery.html")
    page = path.read_text(encoding="utf-8")
    data = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(data) == gallery.png
    for n, name in enumerate(sample_image_names(), 1):
        assert (
            f"<tr><td>{n}</td><td>{name}</td><td>2</td><td>class 2</td><td>Grad-CAM</td></tr>"
            in page
        )
    assert gallery.export_png(tmp_path / "g.png").read_bytes() == gallery.png


def test_bad_input(tiny_functional, rgb16, tmp_path):
    with pytest.raises(ImageError, match=re.escape(f"Folder {tmp_path} has no pictures")):
        compare_images(tiny_functional, tmp_path)
    with pytest.raises(CnnVizError, match=re.escape("Unknown attribution method 'gradcan'.")):
        compare_methods(tiny_functional, rgb16, ["gradcan"])
    with pytest.raises(CnnVizError, match=re.escape("methods is empty")):
        compare_methods(tiny_functional, rgb16, [])
    with pytest.raises(CnnVizError, match=re.escape("columns must be ≥ 1; got 0.")):
        compare_images(tiny_functional, [rgb16], columns=0)
