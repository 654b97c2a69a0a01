"""CamExplorer: which part of the image made the network say *this* class?

The top predictions are a bqplot bar chart; clicking a bar picks the class, and the class
activation map for it is laid over the photo. Maps are computed in a background worker (Score-CAM
and SmoothGrad take a second or more; the newest request wins) and kept in the shared
:class:`ActivationCache`, so coming back to a class, method or layer is instant.
"""

from __future__ import annotations

import html
import inspect
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import render
from ..cache import ActivationCache
from ..engine.adapter import Preprocess
from ..errors import check_choice
from ..explain import CAM_METHODS, default_cam_layer, evidence, grad_cam, predict_top, saliency
from ..explain.targets import check_class_index
from ..export import Section
from ..i18n import N_, gettext_
from ..images import load_image, resize_image
from .background import Job
from .base import ExplorerBase
from .cam_trust import CamTrustMixin
from .frontend import has_feature, stand_in_note
from .layer_picker import LayerPicker
from .picture import Picture
from .state import ColormapState, LayerState

#: Every map the explorer can show: (label in the picker, value of the ``method`` trait). Labels
#: in words are translated where shown; the others are the methods' own names.
METHOD_CHOICES = (
    ("Grad-CAM", "gradcam"),
    ("Grad-CAM++", "gradcam++"),
    ("Score-CAM", "scorecam"),
    ("LayerCAM", "layercam"),
    ("HiResCAM", "hirescam"),
    (N_("Grad-CAM element-wise"), "gradcam_elementwise"),
    ("XGrad-CAM", "xgradcam"),
    ("AblationCAM", "ablationcam"),
    ("Eigen-CAM", "eigencam"),
    ("EigenGrad-CAM", "eigengradcam"),
    (N_("Saliency (gradient)"), "vanilla"),
    ("SmoothGrad", "smoothgrad"),
    (N_("Guided backprop"), "guided_backprop"),
    (N_("Guided Grad-CAM"), "guided_gradcam"),
    (N_("Integrated gradients"), "integrated_gradients"),
    (N_("Occlusion"), "occlusion"),
)
METHODS = tuple(value for _, value in METHOD_CHOICES)
_METHOD_LABELS = {value: label for label, value in METHOD_CHOICES}
# Methods that read a layer's feature maps (the others look at input pixels only).
_LAYER_METHODS = (*CAM_METHODS, "guided_gradcam")

COLORMAP_CHOICES = ("jet", "turbo", "inferno", "viridis", "magma", "gray", "RdBu_r")

# Longest side of the overlay picture: photos are shown at up to this size.
OVERLAY_MAX_SIDE = 480


def _selection(selected: Any) -> list[int]:
    """bqplot's ``selected`` (None or an index array) as a plain list."""
    return [] if selected is None else [int(i) for i in np.asarray(selected).ravel()]


class CamExplorer(CamTrustMixin, LayerPicker, LayerState, ColormapState, ExplorerBase):
    """Class activation maps over the photo, with the top predictions as a clickable bar chart.

    Parameters
    ----------
    model : keras.Model
        A Keras 3 classifier (its softmax, if any, is left out on the fly: gradients are taken
        of the logits).
    image : array, path or PIL image
        The photo to explain.
    labels : sequence of str, optional
        Class names; ImageNet's for a 1000-class head by default.
    k : int, optional
        How many top predictions the bar chart shows; 5 by default, or every class when the
        model has fewer (a single sigmoid unit shows "negative" and "positive").
    method : str
        One of :data:`METHODS` (``"gradcam"`` by default).
    layer : str, optional
        Layer for the CAM methods; default: the deepest layer with a spatial map.
    cmap, alpha
        Colormap and opacity of the heat map over the photo.
    output : int or str, optional
        Which output is the classifier, for models with several outputs.
    cache : ActivationCache, optional
        Where maps are kept; default: the cache shared by all explorers.
    preprocess : callable, optional
        Preprocessing for models that do not include it.

    Attributes
    ----------
    rgb, png
        The current overlay as uint8 (H, W, 3) and as PNG bytes.
    heatmap
        The current map, float32 (H, W) in [0, 1] at the photo's resolution.

    Examples
    --------
    >>> cam = CamExplorer(cv.load_default_model(), cv.sample_image("chelsea"))  # doctest: +SKIP
    >>> cam.class_index = 281; cam.method = "layercam"                           # doctest: +SKIP
    """

    class_index = traitlets.Int(help="The class explained.")
    # Any, checked by _valid_method: a typo is shown in the widget as the package's own error
    # (an Enum would raise traitlets' English TraitError before any validator runs).
    method = traitlets.Any("gradcam", help="Which map: one of METHODS.")
    cmap = traitlets.Unicode("jet", help="Colormap of the heat map.")
    alpha = traitlets.Float(0.5, help="Opacity of the heat map over the photo (0–1).")
    busy = traitlets.Bool(False, help="True while a map is being computed.")

    _css_root = "cnnviz-cam-explorer"
    _css_prefix = "cnnviz-cam"
    _worker_name = "cnnviz-cam"

    def __init__(
        self,
        model: Any,
        image: Any,
        labels: Any = None,
        *,
        k: int | None = None,
        method: str = "gradcam",
        layer: str | None = None,
        cmap: str = "jet",
        alpha: float = 0.5,
        output: int | str | None = None,
        cache: ActivationCache | None = None,
        preprocess: Preprocess | None = None,
    ) -> None:
        self._adopt(model, preprocess=preprocess, cache=cache)
        self._output = output
        photo = load_image(image)  # decoded once: the photo shown and the image prepared
        self._image = self._adapter.prepare(photo)
        self._photo = render.as_rgb_uint8(self._shown_photo(photo))
        self.top = predict_top(self._adapter, self._image, k=k, labels=labels, output=output)
        self._labels = labels
        self._n_classes = self._adapter.class_count(output)
        self._heat: np.ndarray | None = None
        self._build_controls()
        super().__init__(self._layout_children())

        self.class_index = self.top[0][0]
        self.method = method
        self.layer = layer if layer is not None else default_cam_layer(self._adapter)
        self.cmap = cmap
        self.alpha = alpha
        self._link_controls()
        self._select_bar()  # class_index may equal the trait's default: no change event fired
        self._suspended = False
        self._refresh()

    # ------------------------------------------------------------------ set-up
    def _shown_photo(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        scale = min(1.0, OVERLAY_MAX_SIDE / max(h, w))
        self._overlay_size = (max(1, round(h * scale)), max(1, round(w * scale)))
        return image if scale == 1.0 else resize_image(image, self._overlay_size)

    def _build_controls(self) -> None:
        self.bars = None
        self.frontend_note = widgets.HTML(layout=widgets.Layout(display="none"))
        if has_feature("bqplot"):
            self._build_chart()
        else:  # stock stand-in: the top classes as a list to pick from
            self.chart = widgets.Select(
                options=[(f"{name} · {self._shown_value(p)}", i)
                         for name, (i, _, p) in zip(self._bar_names(), self.top, strict=True)],
                value=None, rows=len(self.top), description=gettext_("Top"),
                layout=widgets.Layout(width="420px"),
            )  # fmt: skip
            self.chart.observe(self._on_class_listed, names="value")
            note = html.escape(stand_in_note("bqplot"))
            self.frontend_note.value = f'<div class="cnnviz-note" style="color:#555">ℹ {note}</div>'
            self.frontend_note.layout.display = ""
        self._build_pickers()

    def _shown_value(self, value: float) -> str:
        regression = self._adapter.head_activation(self._output) == "linear"
        return f"{value:.4g}" if regression else f"{value:.1%}"

    def _build_chart(self) -> None:
        from bqplot import Axis, Bars, Figure, LinearScale, OrdinalScale

        names = self._bar_names()
        # A regression head reports a value, not a probability: its axis spans that value.
        regression = self._adapter.head_activation(self._output) == "linear"
        value = self.top[0][2]
        y_scale = (
            LinearScale(min=min(0.0, value), max=max(0.0, value) or 1.0)
            if regression
            else LinearScale(min=0.0, max=1.0)
        )
        x_scale = OrdinalScale()
        self.bars = Bars(
            x=names, y=[p for _, _, p in self.top], scales={"x": x_scale, "y": y_scale},
            orientation="horizontal", interactions={"click": "select"},
            selected_style={"fill": "#e4572e"}, unselected_style={"opacity": 0.55},
            colors=["#1f77b4"],
        )  # fmt: skip
        self.chart = Figure(
            marks=[self.bars],
            axes=[
                Axis(scale=x_scale, side="left"),
                Axis(
                    scale=y_scale,
                    side="bottom",
                    tick_format=".3g" if regression else ".0%",
                    label=gettext_("value") if regression else gettext_("probability"),
                ),
            ],
            fig_margin={"top": 10, "bottom": 40, "left": 150, "right": 10},
            layout=widgets.Layout(width="420px", height="240px"),
            title=gettext_("Top predictions — click a bar"),
        )
        self.bars.observe(self._on_bar_click, names="selected")

    def _build_pickers(self) -> None:
        self.class_picker = widgets.Combobox(
            options=self._class_options(), placeholder=gettext_("any class…"),
            ensure_option=True, description=gettext_("Class"), layout=widgets.Layout(width="320px"),
        )  # fmt: skip
        self.class_picker.observe(self._on_class_typed, names="value")
        self.method_dropdown = widgets.Dropdown(
            options=[(gettext_(label), value) for label, value in METHOD_CHOICES],
            description=gettext_("Method"),
        )
        self._build_layer_picker()  # grouped by block, the lesson's layers first
        self.cmap_dropdown = widgets.Dropdown(
            options=list(COLORMAP_CHOICES), description=gettext_("Colormap")
        )
        self.alpha_slider = widgets.FloatSlider(
            min=0.0, max=1.0, step=0.05, description=gettext_("Opacity")
        )
        # In a column a picture is stretched to the full width unless it aligns to the start;
        # it may still shrink to fit a narrow notebook, keeping its proportions.
        self.view = widgets.Image(
            format="png",
            layout=widgets.Layout(align_self="flex-start", max_width="100%", object_fit="contain"),
        )
        self.caption = widgets.HTML()
        # Until the first map is ready, ``rgb`` is the photo and ``png`` is empty.
        self.picture = Picture(self.view, self.caption, rgb=self._photo)
        self.progress = widgets.HTML()
        self._stop_button()
        self.message = widgets.HTML(layout=widgets.Layout(display="none"))
        for control, name in [
            (self.chart, "chart"), (self.class_picker, "class"), (self.method_dropdown, "method"),
            (self.layer_dropdown, "layer"), (self.cmap_dropdown, "cmap"),
            (self.alpha_slider, "alpha"), (self.view, "view"), (self.caption, "caption"),
            (self.message, "message"), (self.progress, "progress"),
            (self.frontend_note, "frontend-note"),
        ]:  # fmt: skip
            self._css(control, name)

    def _bar_names(self) -> list[str]:
        # bqplot needs distinct bar names; ImageNet has a few duplicate labels ("crane").
        names = [label for _, label, _ in self.top]
        return [
            f"{label} ({index})" if names.count(label) > 1 else label
            for (index, label, _) in self.top
        ]

    def _class_options(self) -> list[str]:
        return [f"{i}: {self._label_of(i)}" for i in range(self._n_classes)]

    def _label_of(self, index: int) -> str:
        for i, label, _ in self.top:
            if i == index:
                return label
        if self._labels is not None:
            return str(self._labels[index])
        if self._n_classes == 1000:
            from ..engine.models import imagenet_labels

            return imagenet_labels()[index]
        return f"class {index}"

    def _layout_children(self) -> list[widgets.Widget]:
        controls = widgets.VBox(
            [
                self.class_picker,
                self.method_dropdown,
                widgets.HBox([self.layer_dropdown, self.all_layers_box]),
                self.layer_note,
                self.cmap_dropdown,
                self.alpha_slider,
                widgets.HBox([self.stop_button, self.progress]),
            ]
        )
        top = widgets.HBox([self.chart, controls])
        return [top, self.frontend_note, self.message, self.view, self.caption,
                *self._trust_children()]  # fmt: skip

    def _link_controls(self) -> None:
        for name, control in [
            ("method", self.method_dropdown), ("cmap", self.cmap_dropdown),
            ("alpha", self.alpha_slider),
        ]:  # fmt: skip
            traitlets.link((self, name), (control, "value"))
        self._link_layer()
        self._link_busy()

    # ------------------------------------------------------------------ trait rules
    @traitlets.validate("method")
    def _valid_method(self, proposal: dict) -> str:
        return self._checked(lambda: check_choice(proposal["value"], METHODS, "method"))

    @traitlets.validate("class_index")
    def _valid_class(self, proposal: dict) -> int:
        # The words of class_number, which the Python functions use (with the fix hint).
        value, classes = proposal["value"], self._n_classes
        return self._checked(lambda: check_class_index(value, classes))

    @traitlets.validate("alpha")
    def _valid_alpha(self, proposal: dict) -> float:
        alpha = float(proposal["value"])
        if not 0.0 <= alpha <= 1.0:
            self._refuse(gettext_("alpha must be between 0 (photo only) and 1 (map only); got "
                                  "{alpha}.").format(alpha=alpha))  # fmt: skip
        return alpha

    @traitlets.observe("class_index")
    def _on_class(self, change: dict) -> None:
        self._select_bar()
        self._refresh()

    def _select_bar(self) -> None:
        """Highlight the explained class's bar (none when it is not among the top k)."""
        indexes = [i for i, _, _ in self.top]
        if self.bars is None:  # the stock list
            self.chart.value = self.class_index if self.class_index in indexes else None
            return
        selected = [indexes.index(self.class_index)] if self.class_index in indexes else []
        if _selection(self.bars.selected) != selected:
            self.bars.selected = selected or None

    @traitlets.observe("method", "layer")
    def _on_map_change(self, change: dict) -> None:
        self.layer_dropdown.disabled = self.method not in _LAYER_METHODS
        self._refresh()

    @traitlets.observe("cmap", "alpha")
    def _on_look_change(self, change: dict) -> None:
        if self._heat is not None and not self._suspended:
            with self._draw_lock:
                self._draw(self._heat)

    def _on_bar_click(self, change: dict) -> None:
        selected = _selection(change["new"])
        if len(selected) == 1:
            self.class_index = self.top[int(selected[0])][0]

    def _on_class_listed(self, change: dict) -> None:
        if change["new"] is not None:
            self.class_index = int(change["new"])

    def _on_class_typed(self, change: dict) -> None:
        value = change["new"]
        if value:
            self.class_index = int(value.split(":", 1)[0])

    # ------------------------------------------------------------------ computing
    def _request(self) -> tuple:
        """What the controls ask for: the cache key of the map to show."""
        layer = self.layer if self.method in _LAYER_METHODS else None
        return (self._adapter.identity, self._image.key, "cam", self.method, layer,
                self.class_index, self._output)  # fmt: skip

    def _compute(self, method: str, layer: str, class_index: int) -> np.ndarray:
        job: Job | None = getattr(self, "_running_job", None)  # set by the worker's job
        function = grad_cam if method in CAM_METHODS else saliency
        options: dict[str, Any] = {"method": method, "output": self._output}
        if method in CAM_METHODS or method == "guided_gradcam":
            options["layer"] = layer
        # Batched methods stop between batches when given the job's cancel check; no text
        # bar from a background thread (the widget shows its own progress).
        accepted = inspect.signature(function).parameters
        if job is not None and "cancel" in accepted:
            options["cancel"] = lambda: job.cancelled
        if "progress" in accepted:
            options["progress"] = False
        if "cache" in accepted:  # the layer's (features, gradient) pair kept: methods switch fast
            options["cache"] = self._cache
        return function(self._adapter, self._image, class_index, **options)

    def _refresh(self) -> None:
        if self._suspended:
            return
        key = self._request()
        cached = self._cache.get(key)
        if cached is not None:
            self._cancel_work()
            with self._draw_lock:
                self.busy = False
                self._draw(cached)
            return
        method, layer, class_index = self.method, self.layer, self.class_index
        label = html.escape(gettext_(_METHOD_LABELS[method]))
        self.busy = True
        busy = gettext_("computing {method}…").format(method=label)
        self.progress.value = f'<span class="cnnviz-busy">⏳ {busy}</span>'

        def work(job: Job) -> np.ndarray:
            self._running_job = job  # one worker per explorer: its cancel reaches _compute
            heat = self._compute(method, layer, class_index)
            job.check()
            return self._cache.put(key, heat)

        self._submit(work, self._computed, on_error=self._failed)

    def _computed(self, heat: np.ndarray) -> None:
        self.busy = False
        self.progress.value = ""
        self._draw(heat)

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.progress.value = ""
        self._show_error(exc)

    def _stopped(self) -> None:
        if self.busy:
            self.busy = False
            self.progress.value = f'<span class="cnnviz-stopped">■ {gettext_("stopped")}</span>'

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until the map being computed is shown, with the drill-down's ascent images
        (for scripts and tests)."""
        return super().wait(timeout) and self._wait_drill_ascent(timeout)

    def _draw(self, heat: np.ndarray) -> None:
        self._heat = heat
        shown = heat if heat.shape == self._overlay_size else resize_image(heat, self._overlay_size)
        rgb = render.overlay(self._photo, np.clip(shown, 0, 1), cmap=self.cmap, alpha=self.alpha)
        caption = (gettext_("<b>{label}</b> (class {index}) · {method} · layer {layer}")
                   if self.method in _LAYER_METHODS
                   else gettext_("<b>{label}</b> (class {index}) · {method}"))  # fmt: skip
        self.picture.show(rgb, caption.format(
            label=html.escape(self._label_of(self.class_index)), index=self.class_index,
            method=html.escape(gettext_(_METHOD_LABELS[self.method])),
            layer=html.escape(self.layer),
        ))  # fmt: skip
        self._clear_error(self._evidence_notes(heat))
        self._map_shown(heat)  # readouts and drill-down (cam_trust.py)

    def _evidence_notes(self, heat: np.ndarray) -> list[str]:
        """Say in words when a class activation map shows no *where* (not for saliency)."""
        if self.method not in CAM_METHODS:
            return []
        found = evidence(heat)
        label = self._label_of(self.class_index)
        if found == "none":
            note = gettext_("No positive evidence for {label!r} at layer {layer!r}: the map is "
                            "zero everywhere. Try another class, layer or method.")  # fmt: skip
        elif found == "flat":
            note = gettext_("The map for {label!r} at layer {layer!r} is the same everywhere: "
                            "it shows no place that matters more than another.")  # fmt: skip
        else:
            return []
        return [note.format(label=label, layer=self.layer)]

    _exported_traits = ("class_index", "method", "layer", "cmap", "alpha")
    _code_traits = ("method", "layer", "cmap", "alpha", "class_index", "point", "drill_channel")

    def _export_sections(self) -> list[Section]:
        sections = super()._export_sections()
        regression = self._adapter.head_activation(self._output) == "linear"
        shown = "{:.4g}" if regression else "{:.1%}"
        sections[0].table = [(i, label, shown.format(p)) for i, label, p in self.top]
        value = gettext_("value") if regression else gettext_("probability")
        sections[0].header = (gettext_("class"), gettext_("label"), value)
        return [*sections, *self._trust_sections()]

    _static_wait = 30.0  # a map takes well under a second, Score-CAM a few

    def _static_panels(self) -> list[np.ndarray]:
        return [self._photo, *super()._static_panels()]

    def _static_caption(self) -> str:
        top = ", ".join(f"{label} {self._shown_value(p)}" for _, label, p in self.top)
        return gettext_("{caption} · top: {top}").format(caption=super()._static_caption(), top=top)

    @property
    def heatmap(self) -> np.ndarray | None:
        """The current map, float32 (H, W) in [0, 1] at the photo's own resolution."""
        return self._heat
