"""Tests for image loading, validation, fingerprints, resizing and channel conversion (no TF)."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz_widgets.errors import ImageConversionWarning, ImageError
from cnnviz_widgets.images import (
    image_key,
    load_image,
    resize_image,
    to_channels,
)
from cnnviz_widgets.samples import sample_image, sample_image_names

ROOT = Path(__file__).resolve().parents[1]


# --- sample images ----------------------------------------------------------------------------


def test_sample_image_names() -> None:
    assert sample_image_names() == ["astronaut", "chelsea", "china", "coffee", "flower", "rocket"]


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("astronaut", (512, 512, 3)),
        ("chelsea", (300, 451, 3)),
        ("china", (427, 640, 3)),
        ("coffee", (400, 600, 3)),
        ("flower", (427, 640, 3)),
        ("rocket", (427, 640, 3)),
    ],
)
def test_sample_images_load_offline(name: str, shape: tuple[int, int, int]) -> None:
    image = sample_image(name)
    assert image.shape == shape
    assert image.dtype == np.uint8
    assert image.flags.writeable and image.flags.c_contiguous
    # A real photo, not a blank placeholder.
    assert image.std() > 20


def test_sample_image_is_a_fresh_copy() -> None:
    first = sample_image("chelsea")
    original = first[0, 0].copy()
    first[0, 0] = 255 - original
    np.testing.assert_array_equal(sample_image("chelsea")[0, 0], original)


def test_unknown_sample_name_lists_names_and_close_matches() -> None:
    expected = (
        "Unknown sample image 'chelsae'. Did you mean 'chelsea' or 'china'? Available: "
        "astronaut, chelsea, china, coffee, flower, rocket. For your own picture use "
        "load_image(path)."
    )
    with pytest.raises(ImageError, match=f"^{re.escape(expected)}$"):
        sample_image("chelsae")


def test_non_string_sample_name() -> None:
    with pytest.raises(ImageError, match=r"^Unknown sample image 3\. Available: astronaut"):
        sample_image(3)  # type: ignore[arg-type]


# --- load_image: arrays ---------------------------------------------------------------------


def test_uint8_rgb_is_copied_to_float32_unchanged() -> None:
    source = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    before = source.copy()
    image = load_image(source)
    assert image.dtype == np.float32 and image.shape == (2, 3, 3)
    np.testing.assert_array_equal(image, source.astype(np.float32))
    assert image.flags.c_contiguous and image.flags.owndata
    assert not np.shares_memory(image, source)
    np.testing.assert_array_equal(source, before)


def test_float32_input_is_never_returned_as_is() -> None:
    source = np.full((4, 5, 3), 100.0, dtype=np.float32)
    image = load_image(source)
    assert image is not source and not np.shares_memory(image, source)
    image[0, 0, 0] = -1
    assert source[0, 0, 0] == 100.0


def test_non_contiguous_input_becomes_c_contiguous() -> None:
    source = np.arange(3 * 4 * 3, dtype=np.float32).reshape(4, 3, 3).transpose(1, 0, 2) + 2
    image = load_image(source)
    assert image.flags.c_contiguous
    np.testing.assert_array_equal(image, source)


def test_gray_2d_gets_a_channel_axis() -> None:
    image = load_image(np.array([[0, 128], [255, 7]], dtype=np.uint8))
    assert image.shape == (2, 2, 1)
    np.testing.assert_array_equal(image[:, :, 0], [[0, 128], [255, 7]])


def test_gray_with_channel_axis() -> None:
    assert load_image(np.zeros((3, 4, 1), np.uint8)).shape == (3, 4, 1)


def test_batch_of_one_is_squeezed() -> None:
    source = np.full((1, 2, 3, 3), 9, dtype=np.uint8)
    image = load_image(source)
    assert image.shape == (2, 3, 3)
    assert (image == 9).all()


def test_uint16_is_scaled_to_255() -> None:
    image = load_image(np.array([[0, 65535, 257]], dtype=np.uint16))
    np.testing.assert_allclose(image[0, :, 0], [0.0, 255.0, 1.0], rtol=1e-6)


def test_bool_becomes_0_or_255() -> None:
    image = load_image(np.array([[True, False]]))
    np.testing.assert_array_equal(image[0, :, 0], [255.0, 0.0])


def test_float_in_unit_range_is_scaled() -> None:
    image = load_image(np.array([[0.0, 0.5, 1.0]], dtype=np.float64))
    np.testing.assert_array_equal(image[0, :, 0], [0.0, 127.5, 255.0])


def test_float_beyond_one_is_taken_as_0_255() -> None:
    image = load_image(np.array([[0.0, 0.5, 200.0]], dtype=np.float64))
    np.testing.assert_array_equal(image[0, :, 0], [0.0, 0.5, 200.0])


def test_other_integers_are_taken_as_0_255() -> None:
    image = load_image(np.array([[3, 250]], dtype=np.int64))
    np.testing.assert_array_equal(image[0, :, 0], [3.0, 250.0])


def test_rgba_drops_alpha_with_a_warning() -> None:
    source = np.zeros((2, 2, 4), np.uint8)
    source[..., 0] = 10
    source[..., 3] = 99
    expected = (
        "Dropped the alpha channel of a 4-channel (RGBA) image of shape (2, 2, 4); only the "
        "RGB values are used."
    )
    with pytest.warns(ImageConversionWarning, match=f"^{re.escape(expected)}$"):
        image = load_image(source)
    assert image.shape == (2, 2, 3) and image.flags.c_contiguous
    np.testing.assert_array_equal(image[0, 0], [10.0, 0.0, 0.0])


def test_tensor_like_objects_with_array_protocol() -> None:
    class TensorLike:
        def __array__(self, dtype=None, copy=None):
            return np.full((2, 2, 3), 5, dtype=np.uint8)

    np.testing.assert_array_equal(load_image(TensorLike()), np.full((2, 2, 3), 5.0))


# --- load_image: errors ---------------------------------------------------------------------


def test_batch_of_several_is_refused() -> None:
    expected = (
        "Expected an image of shape (H, W), (H, W, 1) or (H, W, 3); got an array of shape "
        "(2, 3, 4, 5). Pass one image at a time."
    )
    with pytest.raises(ImageError, match=f"^{re.escape(expected)}$"):
        load_image(np.zeros((2, 3, 4, 5)))


def test_one_dimensional_is_refused() -> None:
    with pytest.raises(ImageError, match=r"got an array of shape \(5,\)\. Reshape a flattened"):
        load_image(np.zeros(5))


@pytest.mark.parametrize("channels", [2, 5])
def test_bad_channel_count(channels: int) -> None:
    with pytest.raises(
        ImageError, match=rf"shape \(4, 4, {channels}\) with {channels} channels on the last axis"
    ):
        load_image(np.zeros((4, 4, channels)))


def test_channels_first_gets_a_moveaxis_hint() -> None:
    with pytest.raises(ImageError, match=r"np\.moveaxis\(image, 0, -1\)"):
        load_image(np.zeros((3, 32, 32)))


def test_empty_image() -> None:
    with pytest.raises(
        ImageError, match=r"^The image is empty: its shape \(0, 4, 3\) has a zero-size axis\.$"
    ):
        load_image(np.zeros((0, 4, 3)))


def test_nan_and_inf_are_counted() -> None:
    source = np.array([[np.nan, np.inf], [1.0, -np.inf]])
    expected = (
        "The image (shape (2, 2)) contains 1 NaN and 2 infinite values. Replace them first, "
        "e.g. with np.nan_to_num(image)."
    )
    with pytest.raises(ImageError, match=f"^{re.escape(expected)}$"):
        load_image(source)


@pytest.mark.parametrize(
    ("value", "dtype_text"),
    [
        (np.zeros((2, 2), complex), "complex128"),
        (np.array([["a", "b"]]), "<U1"),
        (np.array([[object()]]), "object"),
    ],
)
def test_non_numeric_dtype(value: np.ndarray, dtype_text: str) -> None:
    with pytest.raises(
        ImageError, match=rf"^Expected a numeric image array; got dtype {re.escape(dtype_text)} "
    ):
        load_image(value)


@pytest.mark.parametrize("value", [None, 3, [[1, 2]], {"a": 1}])
def test_unsupported_type(value: object) -> None:
    with pytest.raises(
        ImageError,
        match=rf"^Cannot use an object of type {type(value).__name__} as an image; pass a numpy",
    ):
        load_image(value)


def test_errors_are_cnnviz_errors_and_value_errors() -> None:
    with pytest.raises(ValueError):
        load_image(np.zeros((0, 0)))


# --- load_image: files and PIL ----------------------------------------------------------------


def test_png_file_roundtrip_str_and_path(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(pixels).save(path)
    np.testing.assert_array_equal(load_image(path), pixels.astype(np.float32))
    np.testing.assert_array_equal(load_image(str(path)), pixels.astype(np.float32))


def test_grayscale_png_stays_one_channel(tmp_path: Path) -> None:
    path = tmp_path / "g.png"
    Image.fromarray(np.array([[1, 2], [3, 4]], np.uint8), mode="L").save(path)
    image = load_image(path)
    assert image.shape == (2, 2, 1)
    np.testing.assert_array_equal(image[:, :, 0], [[1, 2], [3, 4]])


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageError, match=f"^No image file at '{re.escape(str(missing))}'\\.$"):
        load_image(missing)


def test_missing_relative_path_that_is_a_sample_name() -> None:
    with pytest.raises(ImageError, match=r"For the bundled photo use sample_image\('chelsea'\)"):
        load_image("chelsea")


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(b"this is not an image")
    with pytest.raises(ImageError, match=r"^Could not read '.*bad\.png' as an image"):
        load_image(path)


def test_pil_modes() -> None:
    assert load_image(Image.new("L", (3, 2), 40)).shape == (2, 3, 1)
    rgb = load_image(Image.new("RGB", (3, 2), (1, 2, 3)))
    np.testing.assert_array_equal(rgb[1, 2], [1.0, 2.0, 3.0])
    palette = Image.new("P", (3, 2), 0)
    palette.putpalette([10, 20, 30] + [0] * 765)
    np.testing.assert_array_equal(load_image(palette)[0, 0], [10.0, 20.0, 30.0])
    cmyk = load_image(Image.new("CMYK", (3, 2), (0, 0, 0, 0)))
    np.testing.assert_array_equal(cmyk[0, 0], [255.0, 255.0, 255.0])
    one_bit = load_image(Image.new("1", (2, 2), 1))
    np.testing.assert_array_equal(one_bit, np.full((2, 2, 1), 255.0))
    sixteen = load_image(Image.new("I;16", (2, 1), 65535))
    np.testing.assert_allclose(sixteen, np.full((1, 2, 1), 255.0))


def test_pil_rgba_and_la_drop_alpha_with_warning() -> None:
    with pytest.warns(ImageConversionWarning, match=r"4-channel \(RGBA\)"):
        rgba = load_image(Image.new("RGBA", (3, 2), (5, 6, 7, 0)))
    np.testing.assert_array_equal(rgba[0, 0], [5.0, 6.0, 7.0])
    with pytest.warns(ImageConversionWarning, match=r"2-channel \(gray \+ alpha\).*gray values"):
        gray = load_image(Image.new("LA", (3, 2), (9, 0)))
    assert gray.shape == (2, 3, 1) and (gray == 9).all()


def test_warning_points_at_the_caller() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_image(np.zeros((2, 2, 4), np.uint8))
    assert caught[0].filename == __file__


# --- image_key --------------------------------------------------------------------------------


def test_image_key_is_a_stable_fingerprint() -> None:
    image = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    key = image_key(image)
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert image_key(image.copy()) == key
    changed = image.copy()
    changed[1, 1, 2] += 1
    assert image_key(changed) != key
    assert image_key(image.reshape(2, 3, 2)) != key  # same bytes, other shape
    assert image_key(image.astype(np.float64)) != key
    assert image_key(image.view(np.int32)) != key  # same bytes, other dtype
    # A non-contiguous view with the same values has the same key as its contiguous copy.
    assert image_key(np.asfortranarray(image)) == key


# --- resize_image ------------------------------------------------------------------------------


def test_resize_same_size_is_an_exact_copy() -> None:
    image = np.random.default_rng(1).random((5, 6, 3)).astype(np.float32)
    out = resize_image(image, (5, 6))
    np.testing.assert_array_equal(out, image)
    assert not np.shares_memory(out, image)


def test_resize_shapes_and_constant_image() -> None:
    image = np.full((10, 20, 3), 42.0, dtype=np.float32)
    out = resize_image(image, (5, 7))
    assert out.shape == (5, 7, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 42.0, rtol=1e-6)


def test_resize_2d_heatmap_upscale_is_bilinear() -> None:
    heat = np.array([[0.0, 1.0]], dtype=np.float32)
    out = resize_image(heat, (1, 4))
    assert out.shape == (1, 4)
    # Pixel-centre bilinear: 0, 0.25, 0.75, 1.
    np.testing.assert_allclose(out[0], [0.0, 0.25, 0.75, 1.0], atol=1e-6)


def test_resize_downscale_antialiases() -> None:
    # A 1-pixel checkerboard averages to its mean when shrinking 4x; plain bilinear sampling
    # without antialiasing would alias to stripes of 0 or 1.
    board = (np.indices((16, 16)).sum(axis=0) % 2).astype(np.float32)
    out = resize_image(board, (4, 4))
    np.testing.assert_allclose(out, 0.5, atol=0.05)


def test_resize_keeps_values_beyond_255() -> None:
    out = resize_image(np.full((4, 4), 1000.0, np.float32), (2, 2))
    np.testing.assert_allclose(out, 1000.0)


@pytest.mark.parametrize("size", [(0, 3), (2,), (2.5, 3), "ab", (-1, 2)])
def test_resize_bad_size(size: object) -> None:
    with pytest.raises(ImageError, match=r"^size must be \(height, width\) with two positive"):
        resize_image(np.zeros((3, 3)), size)  # type: ignore[arg-type]


def test_resize_bad_rank() -> None:
    with pytest.raises(ImageError, match=r"got shape \(3,\)"):
        resize_image(np.zeros(3), (2, 2))


# --- to_channels --------------------------------------------------------------------------------


def test_rgb_to_gray_uses_luminance_and_warns() -> None:
    rgb = np.zeros((1, 2, 3), np.float32)
    rgb[0, 0] = [100, 0, 0]
    rgb[0, 1] = [10, 20, 30]
    expected = (
        "Converted a 3-channel (RGB) image to 1 channel (grayscale) because the model expects "
        "1 channel."
    )
    with pytest.warns(ImageConversionWarning, match=f"^{re.escape(expected)}$"):
        gray = to_channels(rgb, 1)
    assert gray.shape == (1, 2, 1) and gray.dtype == np.float32
    np.testing.assert_allclose(gray[0, :, 0], [29.9, 2.99 + 11.74 + 3.42], rtol=1e-5)


def test_gray_to_rgb_repeats_and_warns() -> None:
    gray = np.array([[[7.0], [9.0]]], np.float32)
    expected = (
        "Converted a 1-channel (grayscale) image to 3 channels (RGB) because the model expects "
        "3 channels."
    )
    with pytest.warns(ImageConversionWarning, match=f"^{re.escape(expected)}$"):
        rgb = to_channels(gray, 3)
    np.testing.assert_array_equal(rgb, [[[7, 7, 7], [9, 9, 9]]])


def test_to_channels_no_change_copies_without_warning() -> None:
    rgb = np.ones((2, 2, 3), np.float32)
    out = to_channels(rgb, 3)  # an ImageConversionWarning would be an error here
    np.testing.assert_array_equal(out, rgb)
    assert not np.shares_memory(out, rgb)


def test_to_channels_errors() -> None:
    with pytest.raises(ImageError, match=r"^channels must be 1 or 3; got 4$"):
        to_channels(np.ones((2, 2, 3), np.float32), 4)
    with pytest.raises(ImageError, match=r"expects an \(H, W, 1\) or \(H, W, 3\) image; got shape"):
        to_channels(np.ones((2, 2), np.float32), 3)


# --- import hygiene ------------------------------------------------------------------------------


def test_import_does_not_load_tensorflow() -> None:
    code = "import cnnviz_widgets.images, sys; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
