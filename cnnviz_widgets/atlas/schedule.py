"""Where the atlas's tasks run: Dask's local threads by default, or a ``distributed.Client``.

Both runners offer the same three things:

- :meth:`map`: run a task per argument tuple from a lazy iterator, with at most ``window``
  tasks in flight, handing each result to ``on_result`` in the client as it arrives (so an
  iterable source is read only as fast as it is consumed, and memory stays bounded);
- :meth:`compute`: compute a ``dask.delayed`` graph (the tree of top-k merges);
- :attr:`spec`: the model spec as the tasks receive it (the object itself on threads; on a
  cluster a future of it, sent once to every worker with ``client.scatter(broadcast=True)``).

On threads, tasks run in waves of ``window`` (one ``dask.compute`` each); a distributed client
streams them (``as_completed``) and Dask retries a task whose worker died.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from ..i18n import gettext_ as _
from ..progress import check
from .store import atlas_dependency

__all__ = ["DistributedRunner", "LocalRunner", "runner_for"]

#: How often Dask retries a task that raised (a worker that dies is rescheduled regardless).
RETRIES = 3


def _dask() -> Any:
    with atlas_dependency():
        import dask
    return dask


class LocalRunner:
    """Dask's threaded scheduler in this process: no cluster to start, the model not copied."""

    def __init__(self, spec: Any, workers: int | None = None) -> None:
        self.spec = spec
        self.workers = workers
        self.window = 2 * (workers or _cpu_count())

    def map(
        self,
        fn: Callable[..., Any],
        arguments: Iterable[tuple[Any, ...]],
        on_result: Callable[[Any], None],
        cancel: Any = None,
        what: str = "the atlas",
    ) -> None:
        dask = _dask()
        delayed = dask.delayed(fn, pure=False)
        arguments = iter(arguments)
        while True:
            check(cancel, what)
            wave = list(itertools.islice(arguments, self.window))
            if not wave:
                return
            tasks = [delayed(self.spec, *args) for args in wave]
            for result in dask.compute(*tasks, scheduler="threads", num_workers=self.workers):
                on_result(result)

    def compute(self, graph: Any) -> Any:
        return _dask().compute(graph, scheduler="threads", num_workers=self.workers)[0]


class DistributedRunner:
    """A ``distributed.Client``: tasks stream to its workers; a dead worker's tasks rerun."""

    def __init__(self, client: Any, spec: Any) -> None:
        self.client = client
        self.spec = client.scatter(spec, broadcast=True, hash=False)
        threads = sum(client.nthreads().values()) or 1
        self.window = 2 * threads

    def map(
        self,
        fn: Callable[..., Any],
        arguments: Iterable[tuple[Any, ...]],
        on_result: Callable[[Any], None],
        cancel: Any = None,
        what: str = "the atlas",
    ) -> None:
        from distributed import as_completed

        arguments = iter(arguments)
        pending = as_completed()

        def submit_next() -> bool:
            args = next(arguments, None)
            if args is None:
                return False
            pending.add(self.client.submit(fn, self.spec, *args, pure=False, retries=RETRIES))
            return True

        for _slot in range(self.window):
            if not submit_next():
                break
        try:
            for future in pending:
                on_result(future.result())
                check(cancel, what)
                submit_next()
        except BaseException:
            for future in list(pending.futures):
                future.cancel()
            raise

    def compute(self, graph: Any) -> Any:
        return self.client.compute(graph, retries=RETRIES).result()


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def runner_for(client: Any, spec: Any) -> LocalRunner | DistributedRunner:
    """A :class:`DistributedRunner` for a ``distributed.Client``, else a :class:`LocalRunner`."""
    if client is None:
        return LocalRunner(spec)
    if not hasattr(client, "submit") or not hasattr(client, "scatter"):
        from ..errors import CnnVizError

        raise CnnVizError(
            _(
                "client must be a distributed.Client (or None for local threads); got {kind}."
            ).format(kind=type(client).__name__)
        )
    return DistributedRunner(client, spec)
