"""Filter ascent (feature visualisation): images that make a channel, neuron or class fire.

Modules, each with one job:

- :mod:`.objectives` — what is maximised: :func:`channel`, :func:`neuron`,
  :func:`class_logit` and their sums (:class:`Objective`);
- :mod:`.settings` — the options (``size``, ``steps``, ``seed``, ...) as one validated value;
- :mod:`.param` — FFT / colour-decorrelated / pixel parametrisations, starting images and the
  random robustness transforms;
- :mod:`.step` — the traced Adam step and the parameters-to-image function;
- :mod:`.results` — the result cache (memory and disk) and its keys;
- :mod:`.optimize` — the loop: :func:`filter_ascent`, :func:`optimize_image`,
  :func:`warm_up`, :func:`starting_images`;
- :mod:`.quality` — whether a page of images is a picture yet (selectivity, gain).

Importing this package does not import TensorFlow.
"""

from __future__ import annotations

from .objectives import Objective, channel, class_logit, neuron
from .optimize import (
    AscentCancelled,
    filter_ascent,
    optimize_image,
    starting_images,
    warm_up,
)
from .results import cache_dir, clear_memory_cache, results_cache
from .settings import DEFAULT_STEPS, default_steps

__all__ = [
    "DEFAULT_STEPS",
    "AscentCancelled",
    "Objective",
    "cache_dir",
    "channel",
    "class_logit",
    "clear_memory_cache",
    "default_steps",
    "filter_ascent",
    "neuron",
    "optimize_image",
    "results_cache",
    "starting_images",
    "warm_up",
]
