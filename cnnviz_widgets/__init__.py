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
    "load_default_model": "default_model",
    "imagenet_labels": "default_model",
    "sample_image": "images",
    "sample_image_names": "images",
    "load_image": "images",
    "ModelAdapter": "model_adapter",
    "layer_paths": "model_adapter",
    "activations": "model_adapter",
    "ActivationCache": "activation_cache",
    "ActivationExplorer": "activation_explorer",
    "CamExplorer": "cam_explorer",
    "FilterExplorer": "filter_explorer",
    "Explorer": "explorer",
    "predict_top": "class_activation",
    "grad_cam": "class_activation",
    "saliency": "class_activation",
    "deconvnet": "class_activation",
    "normalize_signed": "class_activation",
    "default_cam_layer": "class_activation",
}

__all__ = [
    "ActivationCache",
    "ActivationExplorer",
    "CamExplorer",
    "Explorer",
    "FilterExplorer",
    "ModelAdapter",
    "activations",
    "deconvnet",
    "default_cam_layer",
    "grad_cam",
    "imagenet_labels",
    "layer_paths",
    "load_default_model",
    "load_image",
    "normalize_signed",
    "predict_top",
    "saliency",
    "sample_image",
    "sample_image_names",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .activation_cache import ActivationCache
    from .activation_explorer import ActivationExplorer
    from .cam_explorer import CamExplorer
    from .class_activation import (
        deconvnet,
        default_cam_layer,
        grad_cam,
        normalize_signed,
        predict_top,
        saliency,
    )
    from .default_model import imagenet_labels, load_default_model
    from .explorer import Explorer
    from .filter_explorer import FilterExplorer
    from .images import load_image, sample_image, sample_image_names
    from .model_adapter import ModelAdapter, activations, layer_paths


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cnnviz_widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # resolve once; later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
