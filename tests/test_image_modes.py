"""Every PIL mode and every array dtype reaches the model on the 0-255 scale, or is refused.

The value each case must give is computed by hand from the mode's or dtype's true range.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnviz_widgets.errors import ImageConversionWarning, ImageError
from cnnviz_widgets.images import load_image


def _pil(mode: str, value) -> Image.Image:
    return Image.new(mode, (3, 2), value)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("1", 1, [255.0]),
        ("L", 40, [40.0]),
        ("RGB", (1, 2, 250), [1.0, 2.0, 250.0]),
        ("CMYK", (0, 0, 0, 0), [255.0, 255.0, 255.0]),  # no ink: white
        ("CMYK", (0, 0, 0, 255), [0.0, 0.0, 0.0]),  # full black ink
        ("YCbCr", (255, 128, 128), [255.0, 255.0, 255.0]),  # full luma, neutral chroma: white
        ("I;16", 65535, [255.0]),  # 16-bit white
        ("I;16", 257, [1.0]),
        ("I", 65535, [255.0]),  # 16-bit data as PIL opens many 16-bit PNGs: int32
        ("I", 200, [200.0]),  # 8-bit values in a 32-bit image
        ("F", 0.5, [127.5]),  # float on 0-1
        ("F", 128.0, [128.0]),  # float on 0-255
    ],
)
def test_pil_mode_is_scaled_by_its_true_range(mode, value, expected) -> None:
    image = load_image(_pil(mode, value))
    assert image.shape == (2, 3, len(expected))
    np.testing.assert_allclose(image[1, 2], expected, atol=0.51)
    assert image.dtype == np.float32 and image.min() >= 0 and image.max() <= 255


def test_pil_sixteen_bit_in_int32_mode_is_not_passed_unscaled() -> None:
    # Issue: a mode "I" image holding 16-bit data reached the model with values up to 65,535.
    data = np.array([[0, 32768, 65535]], dtype=np.int32)
    image = load_image(Image.fromarray(data, mode="I"))
    np.testing.assert_allclose(image[0, :, 0], [0.0, 127.5, 255.0], atol=0.01)


@pytest.mark.parametrize(
    ("mode", "value", "expected", "warning"),
    [
        ("LA", (9, 0), [9.0], r"2-channel \(gray \+ alpha\)"),
        ("RGBA", (5, 6, 7, 0), [5.0, 6.0, 7.0], r"4-channel \(RGBA\)"),
        ("PA", (0, 0), [10.0, 20.0, 30.0], r"4-channel \(RGBA\)"),
    ],
)
def test_pil_modes_with_alpha_drop_it_with_a_warning(mode, value, expected, warning) -> None:
    picture = _pil(mode, value)
    if mode == "PA":
        picture.putpalette([10, 20, 30] + [0] * 765)
    with pytest.warns(ImageConversionWarning, match=warning):
        image = load_image(picture)
    np.testing.assert_array_equal(image[0, 0], expected)


def test_pil_palette_mode_reads_the_palette() -> None:
    picture = _pil("P", 1)
    picture.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    np.testing.assert_array_equal(load_image(picture)[0, 0], [10.0, 20.0, 30.0])


@pytest.mark.parametrize(
    ("dtype", "values", "expected"),
    [
        (np.bool_, [False, True], [0.0, 255.0]),
        (np.uint8, [0, 255], [0.0, 255.0]),
        (np.int8, [0, 127], [0.0, 127.0]),
        (np.uint16, [0, 65535], [0.0, 255.0]),
        (np.int16, [0, 200], [0.0, 200.0]),
        (np.int16, [0, 30000], [0.0, 30000 * 255 / 65535]),
        (np.int32, [3, 250], [3.0, 250.0]),
        (np.int64, [0, 65535], [0.0, 255.0]),
        (np.uint32, [0, 255], [0.0, 255.0]),
        (np.float16, [0.0, 1.0], [0.0, 255.0]),
        (np.float32, [0.0, 0.5], [0.0, 127.5]),
        (np.float64, [0.0, 200.0], [0.0, 200.0]),
        (np.float32, [-0.4, 255.3], [0.0, 255.0]),  # a resize's overshoot is clipped
    ],
)
def test_array_dtype_is_scaled_by_its_true_range(dtype, values, expected) -> None:
    image = load_image(np.array([values], dtype=dtype))
    np.testing.assert_allclose(image[0, :, 0], expected, rtol=1e-3)


@pytest.mark.parametrize(
    ("values", "dtype", "message"),
    [
        ([-1.0, 1.0], np.float32, r"from -1 to 1: neither 0-1 nor 0-255.*\(image \+ 1\) \* 127\.5"),
        ([-123.7, 151.1], np.float32, r"from -123\.7 to 151\.1.*np\.interp"),
        ([0.0, 4000.0], np.float64, r"from 0 to 4000"),
        ([-5, 10], np.int16, r"int16 image's values run from -5 to 10: neither 8-bit"),
        ([0, 70000], np.int32, r"from 0 to 70000.*16-bit \(0-65535\)"),
        ([-128, 5], np.int8, r"int8 image's values run from -128 to 5"),
    ],
)
def test_arrays_on_no_known_scale_are_refused(values, dtype, message) -> None:
    with pytest.raises(ImageError, match=message):
        load_image(np.array([values], dtype=dtype))


def test_user_array_is_not_modified_by_scaling() -> None:
    source = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    before = source.copy()
    load_image(source)
    np.testing.assert_array_equal(source, before)
