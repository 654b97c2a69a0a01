"""Why did the network say "cat"? Attribution methods, each one registered object.

* :func:`predict_top` (:mod:`.predictions`) — the classes the model ranks highest;
* :func:`grad_cam` (:mod:`.cam`) — where in the image the evidence for a class lies: Grad-CAM,
  Grad-CAM++, Score-CAM, LayerCAM, HiResCAM, element-wise Grad-CAM, XGrad-CAM, AblationCAM,
  Eigen-CAM and EigenGrad-CAM, each with eigen smoothing and test-time augmentation
  (:mod:`.smoothing`); the gradient ones share one cached (features, gradient) pair per layer
  (:mod:`.gradients`), the per-channel ones run stoppable batches (:mod:`.batched`);
* :func:`saliency` (:mod:`.saliency`) — which pixels the class score is most sensitive to:
  vanilla gradients, SmoothGrad, guided backpropagation, guided Grad-CAM, integrated gradients
  and occlusion (:mod:`.attribution`);
* :func:`deconvnet` (:mod:`.deconvnet`) — what one channel responds to, projected to pixels;
  :func:`normalize_signed` turns such signed arrays into pictures;
* :func:`faithfulness` and :func:`randomization_check` (:mod:`.trust`) — whether a map deserves
  trust; :func:`channel_attribution` (:mod:`.drilldown`) — the channels behind one spot;
  :func:`compare_methods` and :func:`compare_images` (:mod:`.gallery`) — maps side by side.

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
from .drilldown import channel_attribution
from .gallery import compare_images, compare_methods
from .predictions import predict_top
from .relu_rules import deconvnet_relu, guided_relu
from .saliency import SALIENCY_METHODS, normalize_signed, saliency
from .targets import default_cam_layer, evidence
from .trust import faithfulness, randomization_check

__all__ = [
    "CAM_METHODS",
    "SALIENCY_METHODS",
    "channel_attribution",
    "compare_images",
    "compare_methods",
    "deconvnet",
    "deconvnet_relu",
    "default_cam_layer",
    "evidence",
    "faithfulness",
    "grad_cam",
    "guided_relu",
    "normalize_signed",
    "predict_top",
    "randomization_check",
    "registry",
    "saliency",
]
