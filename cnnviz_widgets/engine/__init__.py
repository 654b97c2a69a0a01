"""The engine: the one place that reads Keras models and owns TensorFlow.

- :mod:`.backend` — TensorFlow and Keras loaded on first use (clear errors when missing or on
  another Keras backend), and :func:`~.backend.compile`, the one maker of ``tf.function``.
- :mod:`.graph` — a model read as replayable steps named by layer paths.
- :mod:`.heads` — the class-score head and its logits view; the ReLU rules of gradient views.
- :mod:`.geometry` — the size an image is fed at, and the smallest image a model takes.
- :mod:`.adapter` — :class:`~.adapter.ModelAdapter`, which every view goes through.
- :mod:`.models` — model files, the offline default model, the hand-made filter network.
- :mod:`.weights` — convolution kernels read from a model.
- :mod:`.torch_pickle` — the default model's weights read with numpy (no torch).

Importing this package imports no TensorFlow: its modules import it inside functions.
"""
