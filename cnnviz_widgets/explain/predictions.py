"""What the model says: its top classes, with probabilities and names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..engine.adapter import Preprocess
from ..engine.backend import compile
from ..errors import CnnVizError, check_int
from ..i18n import gettext_ as _
from .targets import KEY, Head, adapter_of, class_head, probabilities

__all__ = ["class_labels", "predict_top"]


def predict_top(
    model: Any,
    image: Any,
    k: int | None = None,
    labels: Sequence[str] | None = None,
    *,
    output: int | str | None = None,
    preprocess: Preprocess | None = None,
) -> list[tuple[int, str, float]]:
    """The ``k`` classes the model ranks highest for ``image``, with their probabilities.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
        A classifier. Its head may output logits or probabilities: probabilities are always
        computed from the logits with the head's own softmax (or sigmoid for multi-label heads;
        a head of several units without either is read as logits for a softmax). A single
        sigmoid unit is two classes, ``"negative"`` (1 − p) and ``"positive"`` (p). A single
        unit without activation is a regression head: its one entry is the value itself.
    image : array, path, PIL image or PreparedImage
        Anything :func:`cnnviz_widgets.load_image` accepts; prepared once.
    k : int, optional
        How many classes, 1 to the number of classes; by default 5, or all when there are fewer.
    labels : sequence of str, optional
        Class names by index. By default the ImageNet-1k names for a 1000-class head,
        ``["negative", "positive"]`` for a single sigmoid unit, ``"value"`` for a regression
        head, else ``"class 7"``.
    output : int or str, optional
        Which output is the class head, for models with several outputs.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see :class:`ModelAdapter`).

    Returns
    -------
    list of (int, str, float)
        ``(class index, label, probability in [0, 1])``, most probable first (ties in class
        order); for a regression head one entry, ``(0, label, value)``.

    Raises
    ------
    CnnVizError
        For ``k`` not an int in 1 … classes, or ``labels`` of the wrong length.
    ModelError
        For a model whose output is not a class vector, or several outputs without ``output=``.

    Examples
    --------
    >>> predict_top(cv.load_default_model(), cv.sample_image("chelsea"), k=2)  # doctest: +SKIP
    [(285, 'Egyptian cat', 0.468...), (282, 'tiger cat', 0.156...)]
    """
    adapter = adapter_of(model, preprocess)
    prepared = adapter.prepare(image)
    head = class_head(adapter, output)
    n = head.classes
    k = min(5, n or 5) if k is None else check_int(k, "k")
    # k counts classes (1 … n), it is no index: check_index's 0 … n−1 would misstate the range.
    if n is not None and not 1 <= k <= n:
        raise CnnVizError(
            _("k={k} is out of range: the model has {n} classes, so k must be 1–{n}.").format(
                k=k, n=n
            )
        )
    names = class_labels(labels, n, head)

    def build() -> Any:
        def forward(batch: Any) -> Any:
            _, logits = adapter.forward(batch, logits=True, output=head.index)
            return probabilities(logits, head.activation)

        return compile(forward, [adapter.input_spec()], warm=True)

    function = adapter.traced((KEY, "probabilities", head.index), build)
    probs = np.asarray(function(adapter.model_input(prepared))[0], dtype=np.float64)
    top = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), names(int(i)), float(probs[i])) for i in top]


def class_labels(
    labels: Sequence[str] | None, n: int | None, head: Head | None = None
) -> Callable[[int], str]:
    """The name of each class index: from ``labels``, ImageNet-1k's, or ``"class <i>"``.

    A single sigmoid unit's two classes are ``"negative"`` and ``"positive"``; a regression
    head's one entry is ``"value"``.

    Raises
    ------
    CnnVizError
        When ``labels`` does not have one name per class.
    """
    if labels is None:
        if head is not None and head.binary:
            return ("negative", "positive").__getitem__
        if head is not None and head.regression:
            return lambda i: "value"
        if n == 1000:
            from ..engine.models import imagenet_labels

            return imagenet_labels().__getitem__
        return lambda i: f"class {i}"
    table = list(labels)
    if n is not None and len(table) != n:
        raise CnnVizError(
            _(
                "labels has {n_table} names but the model has {n} classes. Pass one name per "
                "class, in class-index order (or labels=None for 'class <i>')."
            ).format(n_table=len(table), n=n)
        )
    return lambda i: str(table[i])
