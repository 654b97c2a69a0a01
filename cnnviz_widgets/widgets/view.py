"""FeatureMapView: a layer's feature maps drawn in the browser, one frame per key press.

The PNG path (kernel → PNG → ``Image``) waits on a round trip to the kernel for every channel or
colormap change. This view receives a layer's maps **once**, as binary buffers, and draws
channels, the channel sum, grid pages and colormaps on a ``<canvas>`` in the browser; the value
under the cursor is read there too. It is an anywidget: its JavaScript and CSS are the files in
``static/``, shipped inside the package, with no build step and no lab extension of ours.

What crosses the wire for a layer (one comm message, see :func:`pack_array`):

- ``offset``/``scale``: float32 per plane, so ``value ≈ offset + index * scale`` in the map's own
  units (within half a step, ``scale / 2``) for the readout under the cursor;
- ``sum``: the channel sum's plane, uint8 ``(H, W)``: its colormap index exactly as the kernel's
  renderer computes it (``round(normalize_channels(maps) * 255)``);
- ``chunks``: the channels the picture shows, in chunks of :data:`CHUNK_CHANNELS` channels,
  uint8 ``(n, H, W)`` each, compressed with zlib (the browser's ``DecompressionStream``); for maps
  larger than a grid tile may be (early layers), the grid's block-averaged planes come as chunks
  of their own kind, quantised the same way.

Further chunks go only when the browser asks (a ``need`` message: a channel or grid page not
yet there; while the channel slider moves it also asks for the next chunk in that direction,
so scrubbing rarely waits). A wide layer is then never sent whole for a look at a few channels:
the default model's ``block3a_expand_activation`` (144 channels of 56×85) is 517 kB compressed
in one piece, and 20 channel steps need two or three chunks of 16.

The 256×3 lookup tables of the offered colormaps (``render.colormap_lut``) are sent once. The
picture the browser draws is, pixel for pixel, the kernel's ``rgb`` of the same state.

Which traits the browser moves: ``channel``, ``mode_index``, ``cmap_index``, ``page_number``
(linked in the browser to the stock controls with ``jslink``); the kernel follows through
:meth:`FeatureMapView.link_explorer`. Python-side changes reach the view through
:meth:`FeatureMapView.show`.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import render
from ..errors import CnnVizError
from ..i18n import gettext_ as _
from ..render.color import _to_lut_index
from ..render.kernels import _GLYPHS
from ..render.layout import _block_mean

try:
    from anywidget import AnyWidget
except ModuleNotFoundError:  # never instantiated then: wants_view() says False
    AnyWidget = widgets.DOMWidget

STATIC = Path(__file__).parent / "static"
#: The view's modes, in the order of the explorer's mode buttons (``mode_index``).
MODES = ("channel", "grid", "sum")
# zlib level 1: activation maps are noisy at 8 bits (~5.3 bits a value of entropy), so higher
# levels save only ~2 % (block3a of the default model: 517 kB at level 1, 506 kB at 6) for 2–3×
# the time.
ZLIB_LEVEL = 1
# Every packed layer differs from the one before, even the same maps sent again.
_SERIALS = itertools.count(1)
#: Channels per chunk sent: a fraction of a wide layer, and about one grid row of tiles.
CHUNK_CHANNELS = 16


def anywidget_installed() -> bool:
    """True when the ``anywidget`` package can be imported in this kernel."""
    return importlib.util.find_spec("anywidget") is not None


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a front end may show widgets), False in scripts and tests."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def wants_view(use_view: bool | None) -> bool:
    """Decide between the browser-side view and the PNG path.

    ``True`` chooses the view (it needs anywidget), ``False`` and ``None`` the PNG path. The
    view is opt-in for now: it is verified pixel for pixel in JupyterLab, but Voilà 0.5 logs a
    module-sharing error for anywidget and Notebook 7 is not verified yet, so the default stays
    the PNG path every front end shows. ``None`` will choose by the front-end rule
    (:mod:`.frontend`, feature ``anywidget``) once those are.
    """
    if use_view is None:
        return False
    if use_view and not anywidget_installed():
        raise CnnVizError(
            _(
                "use_view=True needs anywidget: pip install 'anywidget>=0.9' (or pass "
                "use_view=False for the PNG view)."
            )
        )
    return bool(use_view)


# ------------------------------------------------------------------------------ packing
def pack_array(array: np.ndarray, *, compress: bool = False) -> dict[str, Any]:
    """An array as a JSON-able dict whose data is one binary buffer (bqplot's ``array_to_json``).

    ``{"dtype", "shape", "compression", "buffer"}``: ipywidgets takes the ``memoryview`` out of
    the state and sends it as a binary frame, never as a JSON list or base64 text.
    """
    data = np.ascontiguousarray(array)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    raw = data.tobytes()
    payload = zlib.compress(raw, ZLIB_LEVEL) if compress else raw
    return {
        "dtype": data.dtype.name,
        "shape": list(data.shape),
        "compression": "deflate" if compress else "none",
        "buffer": memoryview(payload),
    }


def unpack_array(packed: dict[str, Any]) -> np.ndarray:
    """The inverse of :func:`pack_array` (for tests and tools)."""
    raw = bytes(packed["buffer"])
    if packed["compression"] == "deflate":
        raw = zlib.decompress(raw)
    return np.frombuffer(raw, dtype=np.dtype(packed["dtype"])).reshape(packed["shape"])


def quantize(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each channel of ``(H, W, C)`` maps as its colormap index, with the way back to values.

    Returns
    -------
    index : np.ndarray
        uint8 ``(C, H, W)``: the lookup-table row the renderer uses for each value
        (``round(normalize_channels(maps) * 255)``, the very same computation).
    offset, scale : np.ndarray
        float32 ``(C,)``: ``offset + index * scale`` is within ``scale / 2`` of the value
        (``offset`` the channel's finite minimum; a constant or dead channel has ``scale`` 0).
    """
    stack = np.asarray(maps)
    if stack.ndim == 2:
        stack = stack[:, :, None]
    index = _to_lut_index(render.normalize_channels(stack))
    finite = np.isfinite(stack)
    if bool(finite.all()):
        lo, hi = stack.min(axis=(0, 1)), stack.max(axis=(0, 1))
    else:
        lo = np.where(finite, stack, np.inf).min(axis=(0, 1))
        hi = np.where(finite, stack, -np.inf).max(axis=(0, 1))
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    empty = ~(np.isfinite(lo) & np.isfinite(hi))
    lo, hi = np.where(empty, 0.0, lo), np.where(empty, 0.0, hi)
    scale = (hi - lo) / 255.0
    return (
        np.ascontiguousarray(index.transpose(2, 0, 1)),
        lo.astype(np.float32),
        scale.astype(np.float32),
    )


class FeatureMapView(AnyWidget):
    """One layer's feature maps, drawn in the browser: a channel, the channel sum, or a grid page.

    Parameters
    ----------
    view_min_side, tile_min_side, tile_max_side, columns, page_size, pad, pad_value
        The geometry of the kernel's pictures (see ``render.upscale_nearest`` and
        ``render.channel_grid``); the browser draws with the same numbers.
    number_tiles : bool
        Write each grid tile's channel number as ``render.number_tiles`` does.
    compress : bool
        Send the maps zlib-compressed (the browser inflates them with ``DecompressionStream``;
        a browser without it asks for them uncompressed).

    Examples
    --------
    >>> view = FeatureMapView()  # doctest: +SKIP
    >>> view.show("conv1", maps, channel=3, mode="channel", cmap="magma", page=0,
    ...           colormaps=["viridis", "magma"])  # doctest: +SKIP
    """

    _esm = STATIC / "feature_map_view.js"
    _css = STATIC / "feature_map_view.css"

    # moved by the browser (and by the kernel)
    channel = traitlets.Int(0, help="Channel shown in channel mode.").tag(sync=True)
    mode_index = traitlets.Int(0, help="Index in MODES: channel, grid, sum.").tag(sync=True)
    cmap_index = traitlets.Int(0, help="Index in cmap_names.").tag(sync=True)
    page_number = traitlets.Int(1, help="Grid page, counting from 1 (as the page slider).").tag(
        sync=True
    )
    # sent by the kernel
    layer = traitlets.Unicode("", help="Path of the layer whose maps are held.").tag(sync=True)
    data = traitlets.Dict(allow_none=True, default_value=None, help="The packed layer.").tag(
        sync=True
    )
    cmap_names = traitlets.List(traitlets.Unicode(), help="Names of the LUT rows.").tag(sync=True)
    luts = traitlets.Dict(allow_none=True, default_value=None, help="(N, 256, 3) uint8.").tag(
        sync=True
    )
    geometry = traitlets.Dict(help="Picture geometry shared with the kernel's renderer.").tag(
        sync=True
    )

    def __init__(
        self,
        *,
        view_min_side: int = 320,
        tile_min_side: int = 48,
        tile_max_side: int = 112,
        columns: int = 8,
        page_size: int = 64,
        pad: int = 2,
        pad_value: int = 255,
        number_tiles: bool = False,
        compress: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.geometry = {
            "view_min_side": view_min_side, "tile_min_side": tile_min_side, "columns": columns,
            "page_size": page_size, "pad": pad, "pad_value": pad_value,
            # render.number_tiles' 3×5 digits, so grid tiles carry the same numbers
            "digits": {d: list(_GLYPHS[d]) for d in "0123456789"} if number_tiles else None,
        }  # fmt: skip
        self._tile_max_side = tile_max_side
        self._compress = compress
        self._maps: np.ndarray | None = None
        self._planes: dict[str, np.ndarray] = {}
        self._serial = 0
        self._pushing = False
        self.on_msg(self._on_browser_message)

    # ------------------------------------------------------------------ kernel → browser
    def show(
        self,
        layer: str,
        maps: np.ndarray,
        *,
        channel: int,
        mode: str,
        cmap: str,
        page: int,
        colormaps: Sequence[str],
    ) -> None:
        """Show ``channel``/``mode``/``cmap``/``page`` of ``layer`` (its ``maps``, H×W×C).

        The maps are packed and sent only when they are not the ones already sent; everything
        goes in one message.
        """
        with self.hold_sync():
            self._pushing = True
            try:
                # Picker options are names, or (label, name) pairs.
                names = [o[1] if isinstance(o, tuple) else o for o in colormaps]
                if cmap not in names:
                    names.append(cmap)
                if names != self.cmap_names:
                    luts = np.stack([render.colormap_lut(name) for name in names])
                    self.luts = pack_array(luts)
                    self.cmap_names = names
                if layer != self.layer or maps is not self._maps:
                    if mode != "grid":  # the picture first, while the layer is packed
                        self._send_preview(layer, maps, None if mode == "sum" else channel)
                    self._send_maps(layer, maps, self._chunks_for(mode, channel, page, maps))
                self.cmap_index = names.index(cmap)
                self.mode_index = MODES.index(mode)
                self.channel = int(channel)
                self.page_number = int(page) + 1
            finally:
                self._pushing = False

    def _send_preview(self, layer: str, maps: np.ndarray, channel: int | None) -> None:
        """The one plane a channel or sum view shows, ahead of the layer (a custom message).

        Packing a wide layer takes tens of milliseconds; its first picture need not wait.
        """
        array = np.asarray(maps)
        if array.ndim == 2:
            array = array[:, :, None]
        height, width, count = array.shape
        source = render.channel_sum(array) if channel is None else array[:, :, channel]
        index, offset, scale = quantize(source)
        content = {
            "type": "preview", "layer": layer, "channels": count, "height": height,
            "width": width, "plane": count if channel is None else int(channel),
            "offset": float(offset[0]), "scale": float(scale[0]),
        }  # fmt: skip
        self.send(content, buffers=[memoryview(index.tobytes())])

    def _chunks_for(self, mode: str, channel: int, page: int, maps: np.ndarray) -> list[tuple]:
        """The (kind, index) chunks the picture of that state needs (the sum needs none)."""
        count = 1 if np.ndim(maps) == 2 else int(np.shape(maps)[-1])
        if mode == "sum":
            return []
        if mode == "channel":
            return [("planes", int(channel) // CHUNK_CHANNELS)]
        size = self.geometry["page_size"]
        first, last = page * size, min((page + 1) * size, count) - 1
        kind = "grid" if self._shrink(maps) > 1 else "planes"
        return [(kind, i) for i in range(first // CHUNK_CHANNELS, last // CHUNK_CHANNELS + 1)]

    def _shrink(self, maps: np.ndarray) -> int:
        height, width = np.shape(maps)[:2]
        return -(-max(height, width) // self._tile_max_side)

    def _chunk(self, kind: str, index: int) -> dict[str, Any]:
        planes = self._planes["grid" if kind == "grid" else "planes"]
        count = len(self._planes["offset"]) - 1
        part = planes[index * CHUNK_CHANNELS : min((index + 1) * CHUNK_CHANNELS, count)]
        return {"kind": kind, "index": index, "planes": pack_array(part, compress=self._compress)}

    def _send_maps(self, layer: str, maps: np.ndarray, chunks: Sequence[tuple]) -> None:
        array = np.asarray(maps)
        if array.ndim == 2:
            array = array[:, :, None]
        height, width, count = array.shape
        index, offset, scale = quantize(array)
        s_index, s_offset, s_scale = quantize(render.channel_sum(array))
        self._planes = {
            "planes": np.concatenate([index, s_index]),
            "offset": np.concatenate([offset, s_offset]),
            "scale": np.concatenate([scale, s_scale]),
        }
        self._serial = next(_SERIALS)
        data: dict[str, Any] = {
            "layer": layer, "serial": self._serial, "channels": count,
            "height": height, "width": width, "chunk": CHUNK_CHANNELS,
            "offset": pack_array(self._planes["offset"]),
            "scale": pack_array(self._planes["scale"]),
            "sum": pack_array(s_index[0]), "grid": None, "chunks": [],
        }  # fmt: skip
        shrink = self._shrink(array)
        if shrink > 1:  # the grid shows block means of large maps, as channel_grid does
            g_index, g_offset, g_scale = quantize(_block_mean(array, shrink))
            self._planes.update(grid=g_index, grid_offset=g_offset, grid_scale=g_scale)
            data["grid"] = {
                "height": int(g_index.shape[1]), "width": int(g_index.shape[2]),
                "offset": pack_array(g_offset), "scale": pack_array(g_scale),
            }  # fmt: skip
        data["chunks"] = [self._chunk(kind, i) for kind, i in chunks]
        self._maps = maps
        self.layer = layer
        self.data = data

    def _send_chunk(self, kind: str, index: int) -> None:
        """One chunk the browser asked for, as a custom message with one binary buffer."""
        chunk = self._chunk(kind, index)
        packed = chunk.pop("planes")
        content = {"type": "chunk", "serial": self._serial, **chunk,
                   "shape": packed["shape"], "compression": packed["compression"]}  # fmt: skip
        self.send(content, buffers=[packed["buffer"]])

    def _on_browser_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or self._maps is None:
            return
        if content.get("type") == "need" and content.get("serial") == self._serial:
            kind, index = content.get("kind"), content.get("index")
            count = len(self._planes["offset"]) - 1
            if (kind == "planes" or (kind == "grid" and "grid" in self._planes)) and isinstance(
                index, int
            ) and 0 <= index * CHUNK_CHANNELS < count:
                self._send_chunk(kind, index)
        elif content.get("type") == "need_raw" and self._compress:
            # A browser without DecompressionStream: send the same maps uncompressed.
            self._compress = False
            state = (self.mode, self.channel, self.page_number - 1)
            self._send_maps(self.layer, self._maps, self._chunks_for(*state, self._maps))

    # ------------------------------------------------------------------ reading back
    @property
    def mode(self) -> str:
        """The mode shown: ``"channel"``, ``"grid"`` or ``"sum"``."""
        return MODES[self.mode_index] if 0 <= self.mode_index < len(MODES) else MODES[0]

    @property
    def cmap(self) -> str:
        """The colormap shown."""
        return self.cmap_names[self.cmap_index]

    @property
    def planes(self) -> dict[str, np.ndarray]:
        """What was sent for the current layer, unpacked (``planes``, ``offset``, ``scale``…)."""
        return dict(self._planes)

    def value_at(self, channel: int | None, y: int, x: int) -> float:
        """The value the browser reads out at map cell ``(y, x)`` (``channel=None``: the sum).

        The same arithmetic as the page (float64 of ``offset + index * scale``).
        """
        plane = len(self._planes["offset"]) - 1 if channel is None else int(channel)
        index = int(self._planes["planes"][plane, y, x])
        offset, scale = self._planes["offset"][plane], self._planes["scale"][plane]
        return float(offset) + index * float(scale)

    # ------------------------------------------------------------------ explorer wiring
    def link_explorer(self, explorer: Any) -> list[widgets.Widget]:
        """Wire an ActivationExplorer's stock controls to this view, in the browser.

        The channel slider, colormap picker, mode buttons and page slider move the view with
        ``jslink`` (no kernel round trip); the explorer's traits follow the view's. The view
        is the links' source, so a page opened later starts from the kernel's state. The layer
        picker stays linked in the kernel (a new layer needs new maps), by the explorer.
        Returns the links.
        """
        channel_slider, page_slider = explorer.channel_slider, explorer.page_slider
        traitlets.dlink((explorer, "_channels"), (channel_slider, "max"), lambda c: max(c - 1, 0))
        traitlets.dlink((explorer, "_pages"), (page_slider, "max"))
        explorer._range_controls = (channel_slider, page_slider)
        channel_slider.value = explorer.channel
        page_slider.value = explorer.page + 1
        explorer.cmap_dropdown.value = explorer.cmap
        explorer.mode_buttons.value = explorer.mode
        links = [
            widgets.jslink((self, "channel"), (channel_slider, "value")),
            widgets.jslink((self, "cmap_index"), (explorer.cmap_dropdown, "index")),
            widgets.jslink((self, "mode_index"), (explorer.mode_buttons, "index")),
            widgets.jslink((self, "page_number"), (page_slider, "value")),
        ]

        def follow(change: dict) -> None:
            if self._pushing:
                return
            try:
                with explorer._held():
                    explorer.mode = self.mode
                    explorer.cmap = self.cmap
                    explorer.page = self.page_number - 1
                    explorer.channel = self.channel
            except (CnnVizError, IndexError):
                pass  # shown in the widget; the redraw below puts the view back in range
            explorer._refresh()

        self.observe(follow, names=["channel", "mode_index", "cmap_index", "page_number"])
        self._links = links
        return links


class LazyPicture:
    """The explorer's picture when the browser draws it: ``rgb`` kept, PNG made on request.

    Stands in for :class:`~.picture.Picture`: the caption widget is updated at once; the PNG
    (for exports and the static picture of a saved notebook) is encoded only when asked for.
    """

    def __init__(self, caption: widgets.HTML) -> None:
        self.caption = caption
        self._shown: tuple[np.ndarray, bytes | None] = (np.zeros((1, 1, 3), np.uint8), b"")

    @property
    def rgb(self) -> np.ndarray:
        """The picture shown, uint8 (H, W, 3) (a copy)."""
        return self._shown[0].copy()

    @property
    def png(self) -> bytes:
        """The picture shown as PNG (empty before the first)."""
        rgb, png = self._shown
        if png is None:
            png = render.encode_png(rgb)
            self._shown = (rgb, png)
        return png

    def show(self, rgb: np.ndarray, caption: str) -> None:
        """Keep ``rgb`` (the browser draws the same pixels) and show ``caption``."""
        self._shown = (rgb, None)
        self.caption.value = caption
