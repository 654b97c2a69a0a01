"""Tests for cnnviz_widgets.render: pure-numpy normalisation, colormaps, grids and PNG output."""

from __future__ import annotations

import io
import struct
import sys
import warnings
import zlib
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from cnnviz_widgets.errors import CnnVizError
from cnnviz_widgets.render import (
    GridLayout,
    apply_colormap,
    as_rgb_uint8,
    channel_grid,
    channel_sum,
    colormap_lut,
    colormap_names,
    encode_png,
    image_grid,
    normalize_channels,
    overlay,
    page_channels,
    page_count,
    side_by_side,
    upscale_nearest,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _matplotlib_rgb(name: str, value: float) -> list[int]:
    rgba = matplotlib.colormaps[name](value)
    return [round(c * 255) for c in rgba[:3]]


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


# ---------------------------------------------------------------------------------------------
# normalize_channels
# ---------------------------------------------------------------------------------------------


def test_normalize_2d_exact_values():
    out = normalize_channels(np.array([[1.0, 3.0], [5.0, 2.0]]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32))


def test_normalize_each_channel_separately():
    maps = np.zeros((2, 2, 2), dtype=np.float32)
    maps[..., 0] = [[0, 10], [20, 40]]
    maps[..., 1] = [[-1, -3], [-5, -2]]  # independent range: -5..-1
    out = normalize_channels(maps)
    np.testing.assert_allclose(out[..., 0], [[0.0, 0.25], [0.5, 1.0]], rtol=0, atol=1e-7)
    np.testing.assert_allclose(out[..., 1], [[1.0, 0.5], [0.0, 0.75]], rtol=0, atol=1e-7)


def test_normalize_integer_input():
    out = normalize_channels(np.array([[0, 128], [255, 64]], dtype=np.uint8))
    np.testing.assert_allclose(out, [[0.0, 128 / 255], [1.0, 64 / 255]], atol=1e-7)


def test_normalize_constant_and_zero_channels_are_zero_without_warnings():
    maps = np.zeros((3, 4, 3), dtype=np.float32)
    maps[..., 1] = 7.5  # constant, non-zero
    maps[..., 2] = np.arange(12).reshape(3, 4)  # a live channel next to the dead ones
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        out = normalize_channels(maps)
    np.testing.assert_array_equal(out[..., 0], 0.0)
    np.testing.assert_array_equal(out[..., 1], 0.0)
    np.testing.assert_allclose(out[..., 2], np.arange(12).reshape(3, 4) / 11, atol=1e-7)


def test_normalize_nan_inf_become_zero_and_do_not_poison_range():
    x = np.array([[np.nan, 2.0], [np.inf, 4.0], [-np.inf, 6.0]])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        out = normalize_channels(x)
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.0, 0.5], [0.0, 1.0]], atol=1e-7)


def test_normalize_all_nan_channel_is_zero():
    maps = np.stack([np.full((2, 2), np.nan), np.array([[0.0, 1.0], [2.0, 4.0]])], axis=-1)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        out = normalize_channels(maps)
    np.testing.assert_array_equal(out[..., 0], 0.0)
    np.testing.assert_allclose(out[..., 1], [[0.0, 0.25], [0.5, 1.0]], atol=1e-7)


def test_normalize_does_not_mutate_input():
    x = np.array([[1.0, np.nan], [3.0, 9.0]], dtype=np.float32)
    before = x.copy()
    normalize_channels(x)
    normalize_channels(x, vmin=0, vmax=10)
    np.testing.assert_array_equal(x, before)  # NaN compares equal with assert_array_equal


def test_normalize_vmin_vmax_fixed_range_shared_by_channels():
    maps = np.stack([np.array([[-5.0, 0.0], [5.0, 10.0]]), np.array([[2.5, 7.5], [15.0, 1.0]])], -1)
    out = normalize_channels(maps, vmin=0.0, vmax=10.0)
    np.testing.assert_allclose(out[..., 0], [[0.0, 0.0], [0.5, 1.0]], atol=1e-7)  # clipped
    np.testing.assert_allclose(out[..., 1], [[0.25, 0.75], [1.0, 0.1]], atol=1e-7)


def test_normalize_only_vmin_keeps_per_channel_max():
    out = normalize_channels(np.array([[2.0, 4.0]]), vmin=0.0)
    np.testing.assert_allclose(out, [[0.5, 1.0]], atol=1e-7)


def test_normalize_float64_extreme_range_no_overflow():
    x = np.array([[-1e308, 1e308]])
    with np.errstate(all="raise"):
        out = normalize_channels(x)
    np.testing.assert_array_equal(out, [[0.0, 1.0]])


def test_normalize_errors():
    with pytest.raises(CnnVizError, match=r"vmin \(2\.0\) must be smaller than vmax \(1\.0\)"):
        normalize_channels(np.zeros((2, 2)), vmin=2.0, vmax=1.0)
    with pytest.raises(CnnVizError, match=r"got shape \(1, 2, 2, 3\).*maps\[0\]"):
        normalize_channels(np.zeros((1, 2, 2, 3)))
    with pytest.raises(CnnVizError, match="real numbers"):
        normalize_channels(np.zeros((2, 2), dtype=complex))


# ---------------------------------------------------------------------------------------------
# colormaps
# ---------------------------------------------------------------------------------------------


def test_viridis_lut_matches_matplotlib_ends():
    lut = colormap_lut("viridis")
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert lut[0].tolist() == _matplotlib_rgb("viridis", 0.0)
    assert lut[255].tolist() == _matplotlib_rgb("viridis", 1.0)


def test_reversed_lut_is_reverse():
    np.testing.assert_array_equal(colormap_lut("viridis_r"), colormap_lut("viridis")[::-1])


def test_lut_cached_and_read_only():
    lut = colormap_lut("magma")
    assert colormap_lut("magma") is lut
    assert not lut.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        lut[0, 0] = 1


def test_colormap_names_sorted_complete_and_all_build():
    names = colormap_names()
    assert names == sorted(names)
    assert {"viridis", "viridis_r", "gray", "grey", "jet", "Blues_r"} <= set(names)
    assert set(matplotlib.colormaps) <= set(names)
    assert all(f"{n}_r" in names for n in names if not n.endswith("_r"))
    for name in names:
        lut = colormap_lut(name)
        assert lut.shape == (256, 3) and lut.dtype == np.uint8, name
    names.clear()  # callers get a copy
    assert colormap_names()


def test_gray_and_grey():
    for name in ("gray", "grey"):
        lut = colormap_lut(name)
        np.testing.assert_array_equal(lut, np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1))


def test_case_insensitive_colormap_name():
    np.testing.assert_array_equal(colormap_lut("blues"), colormap_lut("Blues"))


def test_unknown_colormap_error_suggests_close_matches():
    with pytest.raises(CnnVizError) as info:
        colormap_lut("virdis")
    message = str(info.value)
    assert message.startswith("Unknown colormap 'virdis'. Did you mean: 'viridis'")
    assert "Any matplotlib colormap name works, with '_r' for its reversed form." in message
    with pytest.raises(CnnVizError, match="colormap name string"):
        colormap_lut(["viridis"])  # type: ignore[arg-type]


def test_apply_colormap_indexes_by_rounding_and_clips():
    lut = colormap_lut("viridis")
    values = np.array([[0.0, 1.0, 0.5], [-3.0, 7.0, np.nan]])
    out = apply_colormap(values, "viridis")
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    expected = lut[[[0, 255, 128], [0, 255, 0]]]  # round(0.5 * 255) = round(127.5) = 128
    np.testing.assert_array_equal(out, expected)


def test_apply_colormap_gray_identity():
    values = np.arange(256) / 255
    out = apply_colormap(values, "grey")
    np.testing.assert_array_equal(out[:, 0], np.arange(256))
    np.testing.assert_array_equal(out[:, 0], out[:, 2])


def test_apply_colormap_unknown_name():
    with pytest.raises(CnnVizError, match="Did you mean: 'jet'"):
        apply_colormap(np.zeros(3), "jte")


# ---------------------------------------------------------------------------------------------
# upscale_nearest
# ---------------------------------------------------------------------------------------------


def test_upscale_7x7_to_224_exact_replication():
    image = np.arange(49, dtype=np.float32).reshape(7, 7)
    out = upscale_nearest(image, 224)
    assert out.shape == (224, 224)
    for r in (0, 3, 6):
        for c in (0, 2, 6):
            np.testing.assert_array_equal(
                out[r * 32 : (r + 1) * 32, c * 32 : (c + 1) * 32], r * 7 + c
            )
    np.testing.assert_array_equal(out[::32, ::32], image)


def test_upscale_rgb_non_square_and_smallest_factor():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = upscale_nearest(image, 5)  # min side 2 -> factor ceil(5 / 2) = 3
    assert out.shape == (6, 9, 3)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(image, 3, axis=0), 3, axis=1))


def test_upscale_noop_when_large_enough():
    image = np.ones((300, 400, 3), dtype=np.uint8)
    assert upscale_nearest(image, 224) is image
    assert upscale_nearest(image, 300) is image
    assert upscale_nearest(image, 301).shape == (600, 800, 3)


def test_upscale_errors():
    with pytest.raises(CnnVizError, match=r"^min_side must be an int; got 2\.5 of type float\.$"):
        upscale_nearest(np.zeros((2, 2)), 2.5)  # type: ignore[arg-type]
    with pytest.raises(CnnVizError, match="empty"):
        upscale_nearest(np.zeros((0, 2)), 4)


# ---------------------------------------------------------------------------------------------
# channel_grid and GridLayout
# ---------------------------------------------------------------------------------------------


def _maps(h: int = 7, w: int = 5, c: int = 10) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(h, w, c)).astype(np.float32)


def test_channel_grid_geometry_and_padding():
    maps = _maps()
    grid, layout = channel_grid(maps, tile_min_side=48, pad=2)
    # 10 channels -> 4 columns, 3 rows; factor ceil(48 / 5) = 10 -> tiles of 70 x 50
    assert (layout.columns, layout.rows) == (4, 3)
    assert (layout.tile_height, layout.tile_width, layout.pad) == (70, 50, 2)
    assert layout.channels == tuple(range(10))
    assert grid.shape == (*layout.shape, 3) == (2 + 3 * 72, 2 + 4 * 52, 3)
    assert grid.dtype == np.uint8
    assert (grid[:2] == 255).all() and (grid[:, :2] == 255).all()  # border
    assert (grid[:, 52:54] == 255).all()  # gap between columns 0 and 1
    # the last row has 2 tiles; the remaining 2 are empty (pad_value)
    assert (grid[2 + 2 * 72 : 2 + 2 * 72 + 70, 2 + 2 * 52 :] == 255).all()


def test_channel_grid_tile_pixels_equal_colormapped_channel():
    maps = _maps()
    grid, layout = channel_grid(maps, [8, 3, 5], columns=2, cmap="magma", pad=3)
    expected = upscale_nearest(apply_colormap(normalize_channels(maps[:, :, 3]), "magma"), 48)
    # channel 3 is the second tile: row 0, column 1
    top = layout.pad
    left = layout.pad + (layout.tile_width + layout.pad)
    tile = grid[top : top + layout.tile_height, left : left + layout.tile_width]
    np.testing.assert_array_equal(tile, expected)
    # channel 5 is tile 2: row 1, column 0
    top = layout.pad + layout.tile_height + layout.pad
    tile = grid[top : top + layout.tile_height, layout.pad : layout.pad + layout.tile_width]
    expected5 = upscale_nearest(apply_colormap(normalize_channels(maps[:, :, 5]), "magma"), 48)
    np.testing.assert_array_equal(tile, expected5)


def test_channel_grid_tile_at_round_trip():
    grid, layout = channel_grid(_maps(), [9, 0, 4, 7, 1], columns=3, pad=4)
    for i, channel in enumerate(layout.channels):
        row, col = divmod(i, layout.columns)
        y = layout.pad + row * (layout.tile_height + layout.pad) + layout.tile_height / 2
        x = layout.pad + col * (layout.tile_width + layout.pad) + layout.tile_width / 2
        assert layout.tile_at(x, y) == channel
    assert layout.tile_at(layout.pad, layout.pad) == 9  # first pixel of tile 0
    assert layout.tile_at(layout.pad - 0.5, 10) is None  # left border
    assert layout.tile_at(1, 1) is None
    assert layout.tile_at(layout.pad + layout.tile_width, 10) is None  # gap after tile 0
    assert layout.tile_at(layout.pad + layout.tile_width - 0.01, 10) == 9
    height, width = layout.shape
    assert layout.tile_at(width - 1, height - 1) is None
    assert layout.tile_at(width + 100, 10) is None
    assert layout.tile_at(-5, 10) is None
    assert layout.tile_at(float("nan"), 10) is None
    # row 1, column 2 is an empty tile (only 5 channels)
    y = layout.pad + layout.tile_height + layout.pad + 1
    x = layout.pad + 2 * (layout.tile_width + layout.pad) + 1
    assert layout.tile_at(x, y) is None
    assert grid.shape[:2] == layout.shape


def test_grid_layout_is_frozen():
    layout = GridLayout((1,), columns=1, rows=1, tile_height=4, tile_width=4, pad=0)
    assert layout.shape == (4, 4)
    with pytest.raises(AttributeError):
        layout.pad = 3  # type: ignore[misc]


def test_channel_grid_columns_param_and_pad_value():
    grid, layout = channel_grid(_maps(4, 4, 6), columns=6, pad=1, tile_min_side=4, pad_value=0)
    assert (layout.rows, layout.columns) == (1, 6)
    assert grid.shape == (1 + 5, 1 + 6 * 5, 3)
    assert (grid[0] == 0).all()
    grid, layout = channel_grid(_maps(4, 4, 3), columns=5, tile_min_side=4)
    assert (layout.rows, layout.columns) == (1, 5)  # honoured even with fewer tiles
    assert (grid[:, 2 + 3 * 6 :] == 255).all()


def test_channel_grid_dead_channel_is_flat_colour():
    maps = np.zeros((3, 3, 2), dtype=np.float32)
    maps[..., 1] = np.arange(9).reshape(3, 3)
    with np.errstate(all="raise"):
        grid, _ = channel_grid(maps, tile_min_side=3, pad=0, columns=2)
    assert (grid[:3, :3] == colormap_lut("viridis")[0]).all()
    assert grid[2, 5].tolist() == colormap_lut("viridis")[255].tolist()


def test_channel_grid_bad_channels():
    maps = _maps(c=10)
    with pytest.raises(CnnVizError) as info:
        channel_grid(maps, [0, 10])
    assert str(info.value) == (
        "Channel index 10 is out of range: this layer has 10 channels (valid: 0–9). "
        "Pick channel indexes from 0 to 9."
    )
    with pytest.raises(CnnVizError, match=r"Channel index -1 is out of range.*valid: 0–9"):
        channel_grid(maps, [-1])
    with pytest.raises(CnnVizError, match="at least one channel"):
        channel_grid(maps, [])
    with pytest.raises(CnnVizError, match=r"^columns must be ≥ 1; got 0\.$"):
        channel_grid(maps, columns=0)


def test_channel_grid_64_tiles_single_map():
    grid, layout = channel_grid(_maps(56, 56, 64), cmap="gray", pad=2, tile_min_side=48)
    assert (layout.rows, layout.columns, layout.tile_height) == (8, 8, 56)
    assert grid.shape == (2 + 8 * 58, 2 + 8 * 58, 3)
    grid1, _ = channel_grid(np.arange(12.0).reshape(3, 4), tile_min_side=1, pad=0, cmap="gray")
    np.testing.assert_array_equal(grid1[..., 0], np.rint(np.arange(12).reshape(3, 4) / 11 * 255))


# ---------------------------------------------------------------------------------------------
# paging
# ---------------------------------------------------------------------------------------------


def test_page_count():
    assert page_count(130, 64) == 3
    assert page_count(128, 64) == 2
    assert page_count(1, 64) == 1
    assert page_count(0, 64) == 1  # an empty layer still has one (empty) page


def test_page_channels_ranges():
    assert page_channels(130, 0, 64) == range(0, 64)
    assert page_channels(130, 1, 64) == range(64, 128)
    assert page_channels(130, 2, 64) == range(128, 130)
    assert page_channels(10, 0, 64) == range(0, 10)
    assert page_channels(0, 0, 64) == range(0, 0)


def test_page_out_of_range_message():
    with pytest.raises(CnnVizError) as info:
        page_channels(150, 9, 64)
    assert str(info.value).startswith(
        "page 9 is out of range: this layer has 3 pages of 64 channels (0–2)"
    )
    with pytest.raises(CnnVizError) as info:
        page_channels(10, -1, 64)
    assert str(info.value) == (
        "page -1 is out of range: this layer has only 1 page (64 channels per page), so the page "
        "must be 0."
    )
    with pytest.raises(CnnVizError, match=r"^per_page must be ≥ 1; got 0\.$"):
        page_count(10, 0)


# ---------------------------------------------------------------------------------------------
# channel_sum, overlay, side_by_side, as_rgb_uint8
# ---------------------------------------------------------------------------------------------


def test_channel_sum_values_and_nan_safety():
    maps = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    out = channel_sum(maps)
    assert out.dtype == np.float32 and out.shape == (2, 2)
    np.testing.assert_array_equal(out, [[3, 12], [21, 30]])
    maps[0, 0, 1] = np.nan
    maps[1, 1, 0] = np.inf
    np.testing.assert_array_equal(channel_sum(maps), [[2, 12], [21, 21]])
    assert np.isnan(maps[0, 0, 1])  # input untouched


def test_overlay_alpha_ends_and_middle():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    heat = rng.random((5, 6))
    np.testing.assert_array_equal(overlay(image, heat, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, heat, alpha=1.0), apply_colormap(heat, "jet"))
    mid = overlay(image, heat, cmap="viridis", alpha=0.25)
    expected = np.rint(0.75 * image + 0.25 * apply_colormap(heat, "viridis").astype(float))
    np.testing.assert_allclose(mid, expected, atol=1)  # float32 vs float64 rounding
    assert mid.dtype == np.uint8


def test_overlay_accepts_float_image():
    image = np.full((2, 2, 3), 100.4)
    out = overlay(image, np.zeros((2, 2)), cmap="gray", alpha=0.5)
    np.testing.assert_array_equal(out, 50)


def test_overlay_errors():
    image = np.zeros((224, 224, 3), dtype=np.uint8)
    with pytest.raises(CnnVizError) as info:
        overlay(image, np.zeros((7, 7)))
    message = str(info.value)
    assert "(7, 7)" in message and "(224, 224, 3)" in message and "Resize" in message
    with pytest.raises(CnnVizError, match=r"alpha must be in \[0, 1\], got 1.5"):
        overlay(image, np.zeros((224, 224)), alpha=1.5)
    with pytest.raises(CnnVizError, match=r"alpha must be in \[0, 1\]"):
        overlay(image, np.zeros((224, 224)), alpha=float("nan"))


def test_side_by_side_geometry_and_pixels():
    a = np.full((4, 2, 3), 10, dtype=np.uint8)
    b = np.full((2, 3, 3), 20, dtype=np.uint8)
    c = np.full((3, 1), 30, dtype=np.uint8)  # grey is accepted
    out = side_by_side([a, b, c], pad=1, pad_value=0)
    assert out.shape == (4, 2 + 1 + 3 + 1 + 1, 3)
    np.testing.assert_array_equal(out[:, 0:2], 10)
    np.testing.assert_array_equal(out[:, 2], 0)  # gap
    np.testing.assert_array_equal(out[1:3, 3:6], 20)  # (4 - 2) // 2 = 1 row from the top
    np.testing.assert_array_equal(out[[0, 3], 3:6], 0)
    np.testing.assert_array_equal(out[0:3, 7], 30)  # (4 - 3) // 2 = 0
    np.testing.assert_array_equal(out[3, 7], 0)
    with pytest.raises(CnnVizError, match="at least one image"):
        side_by_side([])


def test_as_rgb_uint8_conversions():
    gray = np.array([[0, 128]], dtype=np.uint8)
    np.testing.assert_array_equal(as_rgb_uint8(gray), [[[0, 0, 0], [128, 128, 128]]])
    np.testing.assert_array_equal(as_rgb_uint8(gray[..., None]), as_rgb_uint8(gray))
    floats = np.array([[[-4.0, 12.6, 300.0]]])
    np.testing.assert_array_equal(as_rgb_uint8(floats), [[[0, 13, 255]]])
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    assert as_rgb_uint8(rgb) is rgb
    view = np.zeros((3, 2, 3), dtype=np.uint8).transpose(1, 0, 2)
    assert as_rgb_uint8(view).flags.c_contiguous
    with pytest.raises(CnnVizError, match=r"image\[\.\.\., :3\]"):
        as_rgb_uint8(np.zeros((2, 2, 4), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------
# encode_png
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(1, 1), (3, 517), (8, 8), (1, 1, 3), (3, 517, 3), (17, 5, 3), (1, 1, 4), (3, 517, 4)]
)
def test_encode_png_round_trip_exact(shape):
    image = np.random.default_rng(sum(shape)).integers(0, 256, size=shape, dtype=np.uint8)
    png = encode_png(image)
    assert png[:8] == PNG_SIGNATURE
    decoded = _decode(png)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, image)


def test_encode_png_mode_and_non_contiguous_input():
    image = np.random.default_rng(2).integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    view = image[::2, ::-1]
    decoded = Image.open(io.BytesIO(encode_png(view, compress_level=9)))
    assert decoded.mode == "RGB" and decoded.size == (9, 3)
    np.testing.assert_array_equal(np.asarray(decoded), view)
    assert Image.open(io.BytesIO(encode_png(image[..., 0]))).mode == "L"
    assert Image.open(io.BytesIO(encode_png(np.zeros((2, 2, 4), np.uint8)))).mode == "RGBA"


def test_encode_png_chunk_structure_and_crcs():
    png = encode_png(np.zeros((2, 3, 3), dtype=np.uint8))
    pos, kinds = 8, []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        kinds.append(kind)
        if kind == b"IHDR":
            assert struct.unpack(">IIBBBBB", data) == (3, 2, 8, 2, 0, 0, 0)
        if kind == b"IDAT":
            raw = zlib.decompress(data)
            assert raw == b"\x00" + bytes(9) + b"\x00" + bytes(9)  # filter byte 0 per row
        pos += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_encode_png_errors():
    with pytest.raises(CnnVizError, match=r"needs a uint8 image, got dtype float64.*as_rgb_uint8"):
        encode_png(np.zeros((2, 2)))
    with pytest.raises(CnnVizError, match=r"got shape \(2, 2, 2\)"):
        encode_png(np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(CnnVizError, match=r"got shape \(1, 2, 2, 3\)"):
        encode_png(np.zeros((1, 2, 2, 3), dtype=np.uint8))
    with pytest.raises(CnnVizError, match="empty"):
        encode_png(np.zeros((0, 4, 3), dtype=np.uint8))
    with pytest.raises(CnnVizError, match="compress_level must be 0–9"):
        encode_png(np.zeros((2, 2), dtype=np.uint8), compress_level=10)


def test_render_modules_stay_light():
    import cnnviz_widgets.render as render

    sources = sorted(Path(render.__file__).parent.glob("*.py"))
    assert {p.stem for p in sources} >= {"__init__", "color", "layout", "png", "kernels"}
    for path in sources:
        source = path.read_text(encoding="utf-8")
        for heavy in ("tensorflow", "keras", "ipywidgets", "PIL"):
            assert f"import {heavy}" not in source and f"from {heavy}" not in source, path.name
        # lazy: never at module level
        assert "import matplotlib" not in source.split("def ", 1)[0], path.name
    assert sys.modules["cnnviz_widgets.render"] is render


def test_end_to_end_map_to_png():
    x = np.random.default_rng(3).normal(size=(112, 112)).astype(np.float32)
    rgb = upscale_nearest(apply_colormap(normalize_channels(x), "viridis"), 448)
    decoded = _decode(encode_png(rgb))
    assert decoded.shape == (448, 448, 3)
    lut = colormap_lut("viridis")
    i, j = np.unravel_index(np.argmax(x), x.shape)
    assert decoded[i * 4 + 3, j * 4].tolist() == lut[255].tolist()


def test_channel_grid_shrinks_large_maps_by_block_means() -> None:
    maps = np.arange(8 * 12 * 2, dtype=np.float32).reshape(8, 12, 2)
    grid, layout = channel_grid(
        maps, columns=2, pad=0, tile_min_side=1, tile_max_side=6, cmap="gray"
    )
    assert (layout.tile_height, layout.tile_width) == (4, 6)  # 12 wide → shrunk by 2
    means = maps.reshape(4, 2, 6, 2, 2).mean(axis=(1, 3))
    want = apply_colormap(normalize_channels(means[:, :, 1]), "gray")
    np.testing.assert_array_equal(grid[:, 6:12], want)


def test_channel_grid_leaves_maps_within_the_maximum_alone() -> None:
    maps = np.random.default_rng(0).random((6, 6, 3)).astype(np.float32)
    shrunk, _ = channel_grid(maps, tile_min_side=1, tile_max_side=6)
    plain, _ = channel_grid(maps, tile_min_side=1)
    np.testing.assert_array_equal(shrunk, plain)


def test_image_grid_places_colour_pictures_and_maps_clicks_to_labels() -> None:
    images = np.zeros((3, 4, 4, 3), dtype=np.float32)
    images[1, :, :, 0] = 1.0  # red
    images[2] = 0.5
    grid, layout = image_grid(images, [10, 11, 12], columns=2, pad=1, tile_min_side=8)
    assert (layout.rows, layout.columns, layout.tile_height) == (2, 2, 8)
    assert grid.shape == (1 + 2 * 9, 1 + 2 * 9, 3)
    np.testing.assert_array_equal(grid[1:9, 10:18], np.broadcast_to([255, 0, 0], (8, 8, 3)))
    np.testing.assert_array_equal(grid[10:18, 1:9], np.full((8, 8, 3), 128))
    np.testing.assert_array_equal(grid[10:18, 10:18], np.full((8, 8, 3), 255))  # empty tile
    assert layout.tile_at(13, 4) == 11 and layout.tile_at(0, 0) is None


def test_image_grid_refuses_wrong_shapes_and_label_counts() -> None:
    with pytest.raises(
        CnnVizError, match=r"images must be \(N, H, W, 3\) with N, H, W ≥ 1; got shape \(4, 4, 3\)"
    ):
        image_grid(np.zeros((4, 4, 3)))
    with pytest.raises(CnnVizError, match="2 labels for 3 images; give one label per image"):
        image_grid(np.zeros((3, 4, 4, 3)), [1, 2])


# ---------------------------------------------------------------------------------------------
# the package: one public face over color / layout / png / kernels, shared argument checks
# ---------------------------------------------------------------------------------------------


def test_package_re_exports_each_submodule_name() -> None:
    import cnnviz_widgets.render as render
    from cnnviz_widgets.render import color, kernels, labels, layout, paging, png

    for module in (color, layout, paging, png, kernels, labels):
        for name in module.__all__:
            assert getattr(render, name) is getattr(module, name), (module.__name__, name)
            assert name in render.__all__
    assert sorted(render.__all__) == sorted(
        {*color.__all__, *layout.__all__, *paging.__all__, *png.__all__, *kernels.__all__,
         *labels.__all__}
    )  # fmt: skip
    assert render.PNG_SIGNATURE == PNG_SIGNATURE


def test_integer_arguments_use_the_shared_validator_wording() -> None:
    maps = _maps(c=4)
    with pytest.raises(CnnVizError, match=r"^pad must be ≥ 0; got -1\.$"):
        channel_grid(maps, pad=-1)
    with pytest.raises(CnnVizError, match=r"^tile_min_side must be an int; got 2\.0 of type float\.$"):
        channel_grid(maps, tile_min_side=2.0)  # type: ignore[arg-type]
    with pytest.raises(CnnVizError, match=r"^channel index must be an int; got True of type bool\.$"):
        channel_grid(maps, [True])
    with pytest.raises(CnnVizError, match=r"^page must be an int; got '1' of type str\.$"):
        page_channels(10, "1", 4)  # type: ignore[arg-type]
    with pytest.raises(CnnVizError, match=r"^n_channels must be ≥ 0; got -3\.$"):
        page_count(-3, 4)
    with pytest.raises(CnnVizError, match=r"^pad_value must be 0–255, got 256\. Use 255 for white\.$"):
        side_by_side([np.zeros((2, 2, 3), np.uint8)], pad_value=256)
    # image_grid had no upper bound and failed inside numpy; it now says what is wrong
    with pytest.raises(CnnVizError, match=r"^pad_value must be 0–255, got 300\."):
        image_grid(np.zeros((1, 2, 2, 3)), pad_value=300)
    with pytest.raises(CnnVizError, match=r"^compress_level must be an int; got 1\.5 of type float\.$"):
        encode_png(np.zeros((2, 2), np.uint8), compress_level=1.5)  # type: ignore[arg-type]
    with pytest.raises(CnnVizError, match=r"^vmin must be a finite number; got inf\.$"):
        normalize_channels(np.zeros((2, 2)), vmin=float("inf"))
    # numpy integers are integers
    assert page_count(np.int64(130), np.int32(64)) == 3
    assert upscale_nearest(np.zeros((2, 2)), np.uint8(4)).shape == (4, 4)
