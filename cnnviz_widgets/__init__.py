"""cnnviz_widgets: see inside a convolutional network from a Jupyter notebook.

Importing the package is cheap: TensorFlow, Keras, matplotlib and ipywidgets load only when a
function or widget that needs them is first used (attributes below resolve lazily).

Examples
--------
>>> import cnnviz_widgets as cv
>>> model = cv.load_default_model()          # EfficientNet-Lite0, ImageNet weights, offline
>>> cv.ActivationExplorer(model, cv.sample_image("chelsea"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY: dict[str, str] = {
    "load_default_model": "engine.models",
    "imagenet_labels": "engine.models",
    "sample_image": "samples",
    "sample_image_names": "samples",
    "load_image": "images",
    "ModelAdapter": "engine.adapter",
    "layer_paths": "engine.adapter",
    "activations": "engine.adapter",
    "ActivationCache": "cache",
    "set_memory_budget": "cache",
    "ActivationExplorer": "widgets.activations",
    "CamExplorer": "widgets.cam",
    "FilterExplorer": "widgets.filters",
    "Explorer": "widgets.explorer",
    "predict_top": "explain.predictions",
    "grad_cam": "explain.cam",
    "saliency": "explain.saliency",
    "deconvnet": "explain.deconvnet",
    "normalize_signed": "explain.saliency",
    "default_cam_layer": "explain.targets",
    "filter_ascent": "ascent.optimize",
    "optimize_image": "ascent.optimize",
    "kernel_weights": "engine.weights",
    "atlas": "atlas",  # the submodule itself: cv.atlas.build, cv.atlas.open
    "AtlasExplorer": "widgets.atlas",
    "faithfulness": "explain.trust",
    "randomization_check": "explain.trust",
    "channel_attribution": "explain.drilldown",
    "set_language": "i18n",
    "get_language": "i18n",
    "use_cjk_font": "i18n",
    "set_frontend": "widgets.frontend",
}

__all__ = [
    "ActivationCache",
    "ActivationExplorer",
    "AtlasExplorer",
    "CamExplorer",
    "Explorer",
    "FilterExplorer",
    "ModelAdapter",
    "activations",
    "atlas",
    "channel_attribution",
    "deconvnet",
    "default_cam_layer",
    "faithfulness",
    "filter_ascent",
    "get_language",
    "grad_cam",
    "imagenet_labels",
    "kernel_weights",
    "layer_paths",
    "load_default_model",
    "load_image",
    "normalize_signed",
    "optimize_image",
    "predict_top",
    "randomization_check",
    "saliency",
    "sample_image",
    "sample_image_names",
    "set_frontend",
    "set_language",
    "set_memory_budget",
    "use_cjk_font",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .ascent.optimize import filter_ascent, optimize_image
    from .cache import ActivationCache, set_memory_budget
    from .engine.adapter import ModelAdapter, activations, layer_paths
    from .engine.models import imagenet_labels, load_default_model
    from .engine.weights import kernel_weights
    from .explain.cam import grad_cam
    from .explain.deconvnet import deconvnet
    from .explain.drilldown import channel_attribution
    from .explain.predictions import predict_top
    from .explain.saliency import normalize_signed, saliency
    from .explain.targets import default_cam_layer
    from .explain.trust import faithfulness, randomization_check
    from .i18n import get_language, set_language, use_cjk_font
    from .images import load_image
    from .samples import sample_image, sample_image_names
    from .widgets.activations import ActivationExplorer
    from .widgets.cam import CamExplorer
    from .widgets.explorer import Explorer
    from .widgets.filters import FilterExplorer
    from .widgets.frontend import set_frontend


def __getattr__(name: str) -> Any:
    if name == "keras":
        # `from cnnviz_widgets import keras`: Keras 3 on TensorFlow, imported with TensorFlow's
        # native start-up lines kept out of the notebook (see engine/backend.py).
        from .engine.backend import keras

        return keras()
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cnnviz_widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # resolve once; later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
