"""Pure numpy → pixels and PNG bytes: no TensorFlow, no Keras, no widgets."""

from .core import *  # noqa: F403
from .core import __all__  # noqa: F401
