"""Thin ipywidgets explorers over the engine, the algorithms and the renderer.

- :mod:`.base` — :class:`~.base.ExplorerBase`, the scaffold every explorer is built on (adapter
  and cache, picture + caption, newest-request-wins background work, clicks, errors, exports).
- :mod:`.state` — traitlets validate/observe rules that keep layer, channel and page consistent.
- :mod:`.picture` — the picture and its caption, updated together.
- :mod:`.background` — the one-job-at-a-time worker where the newest request wins.
- :mod:`.activations`, :mod:`.filters`, :mod:`.cam` — the three explorers; :mod:`.explorer`
  puts them in tabs with :mod:`.summary` (the layer table) sharing one adapter and cache.
- :mod:`.detail` — the interactive matplotlib (ipympl) view of one channel.

No module here imports TensorFlow or Keras (``tests/test_layering.py`` reads the source).
"""
