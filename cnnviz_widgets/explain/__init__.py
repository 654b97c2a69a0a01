"""Why did the network say "cat"? Attribution methods, each one registered object.

* :func:`predict_top` (:mod:`.predictions`) — the classes the model ranks highest;
* :func:`grad_cam` (:mod:`.cam`) — where in the image the evidence for a class lies: Grad-CAM,
  Grad-CAM++, Score-CAM and LayerCAM;
* :func:`saliency` (:mod:`.saliency`) — which pixels the class score is most sensitive to:
  vanilla gradients, SmoothGrad, guided backpropagation and guided Grad-CAM;
* :func:`deconvnet` (:mod:`.deconvnet`) — what one channel responds to, projected to pixels;
  :func:`normalize_signed` turns such signed arrays into pictures.

The methods of :func:`grad_cam` and :func:`saliency` live in :mod:`.registry`
(``registry.methods("cam")``); the shared bookkeeping (class head, class, layer) is in
:mod:`.targets`, the ReLU backward rules in :mod:`.relu_rules`. Maps come back at the size of
the image as the caller gave it. Importing this package does not import TensorFlow.

Examples
--------
>>> import cnnviz_widgets as cv
>>> from cnnviz_widgets.explain import grad_cam, predict_top
>>> model, cat = cv.load_default_model(), cv.sample_image("chelsea")
>>> predict_top(model, cat, k=1)                        # doctest: +SKIP
[(285, 'Egyptian cat', 0.468...)]
>>> grad_cam(model, cat).shape                          # doctest: +SKIP
(300, 451)
"""

from __future__ import annotations

from . import registry
from .cam import CAM_METHODS, grad_cam
from .deconvnet import deconvnet
from .predictions import predict_top
from .relu_rules import deconvnet_relu, guided_relu
from .saliency import SALIENCY_METHODS, normalize_signed, saliency
from .targets import default_cam_layer, evidence

__all__ = [
    "CAM_METHODS",
    "SALIENCY_METHODS",
    "deconvnet",
    "deconvnet_relu",
    "default_cam_layer",
    "evidence",
    "grad_cam",
    "guided_relu",
    "normalize_signed",
    "predict_top",
    "registry",
    "saliency",
]
