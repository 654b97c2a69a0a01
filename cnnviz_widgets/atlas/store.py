"""The atlas's Zarr store: its layout, the resumable per-batch parts, and the final arrays.

Layout (every array chunked so that one writer owns each chunk)::

    atlas.zarr/                       attrs: format, params, layers, images, complete
      parts/                          scratch while building; deleted once complete
        score  (batches, C, k) f32    per batch: its own top-k, over the flat channel axis C
        index  (batches, C, k) i64    (every chosen layer's channels one after the other)
        y, x   (batches, C, k) i32
        moments (batches, C, 4) f64   count, mean, M2, zeros
        status (batches, batch_size) i1   1 read, 0 skipped, -1 past the end
        done   (batches,) u1          written last: the batch is finished
      layers/L000/                    one group per layer (attrs: path)
        score (C, k) f32 · index (C, k) i64 · y, x (C, k) i32 · box (C, k, 4) i32
        mean, std, zero_fraction (C,) f64        (each one chunk)
        crops (C, k, h, w, channels) u1          (chunks of a few channels, ~1 MB)
        ascent (C, size, size, 3) u1             (the same; when built with ascent)
      source/path_bytes, path_offsets the images' paths as UTF-8 (when they are files)

Empty slots (fewer readable images than k) have index -1 and score NaN.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from typing import Any

import numpy as np

from ..errors import CnnVizError
from ..i18n import gettext_ as _

__all__ = ["FORMAT", "create_or_resume", "open_group", "write_part"]

#: Version of the layout above, written into every store.
FORMAT = 1
#: Arrays chunked by channels (pictures): about CHUNK_BYTES a chunk, so that showing a
#: channel reads one small chunk and a big layer is not tens of thousands of files.
PICTURES = ("crops", "ascent")
CHUNK_BYTES = 1 << 20


@contextlib.contextmanager
def atlas_dependency() -> Any:
    """Wrap the import of ``dask`` or ``zarr`` so a missing one names the install command.

    The imports stay plain ``import`` statements (inside this block) so dependency checkers
    such as deptry see them; they run on first use, so the package imports without the extra.
    """
    try:
        yield
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CnnVizError(
            _(
                "The atlas needs Dask and Zarr: pip install 'cnnviz_widgets[atlas]' (dask[array], "
                "distributed, zarr)."
            )
        ) from exc


def _zarr() -> Any:
    with atlas_dependency():
        import zarr
    return zarr


def open_group(url: str | os.PathLike[str], mode: str = "r") -> Any:
    """The store's root group (``mode`` "r", "r+" or "a")."""
    return _zarr().open_group(os.fspath(url), mode=mode)


def create_array(group: Any, name: str, shape, chunks, dtype, fill_value) -> Any:
    """A new array in ``group`` (replacing one of that name), on zarr 2 or 3."""
    make = getattr(group, "create_array", None) or group.create_dataset
    return make(
        name, shape=tuple(shape), chunks=tuple(chunks), dtype=dtype, fill_value=fill_value,
        overwrite=True,
    )  # fmt: skip


def layer_key(position: int) -> str:
    """The group name of the ``position``-th layer (paths hold "/" and ":")."""
    return f"L{position:03d}"


# ------------------------------------------------------------------------------ building
def create_or_resume(
    url: str | os.PathLike[str],
    params: dict[str, Any],
    total_channels: int,
    batches: int,
    *,
    overwrite: bool,
) -> Any:
    """Open the store to build into: a new one, or one built with the same ``params``.

    Raises
    ------
    CnnVizError
        The store exists and was made with other parameters, or is not an atlas.
    """
    zarr = _zarr()
    url = os.fspath(url)
    exists = os.path.exists(url) if "://" not in url else _exists(url)
    if exists and not overwrite:
        try:
            attrs = dict(zarr.open_group(url, mode="r").attrs)
        except Exception:  # a folder or file that is not a Zarr group
            attrs = {}
        if attrs.get("cnnviz_atlas") is None:
            raise CnnVizError(
                _(
                    "{url!r} exists and is not an atlas store. Choose another store path, or pass "
                    "overwrite=True to replace it."
                ).format(url=url)
            )
        old = attrs.get("params", {})
        changed = sorted(key for key in set(old) | set(params) if old.get(key) != params.get(key))
        if changed:
            detail = "; ".join(f"{key}: {old.get(key)!r} → {params.get(key)!r}" for key in changed)
            raise CnnVizError(
                _(
                    "The atlas store {url!r} was built with other parameters ({detail}). A rerun "
                    "continues a build only with the same model, images and settings. Use another "
                    "store path, or pass overwrite=True to start again."
                ).format(url=url, detail=detail)
            )
        root = zarr.open_group(url, mode="a")
        if not attrs.get("complete") and "parts" not in root:
            _create_parts(root, params, total_channels, batches)
        return root
    root = zarr.open_group(url, mode="w")
    _create_parts(root, params, total_channels, batches)
    root.attrs.update({"cnnviz_atlas": FORMAT, "params": params, "complete": False})
    return root


def _create_parts(root: Any, params: dict[str, Any], total_channels: int, batches: int) -> None:
    k, batch_size = params["k"], params["batch_size"]
    parts = root.require_group("parts")
    shape = (batches, total_channels, k)
    chunks = (1, total_channels, k)
    create_array(parts, "score", shape, chunks, "f4", float("-inf"))
    create_array(parts, "index", shape, chunks, "i8", -1)
    create_array(parts, "y", shape, chunks, "i4", 0)
    create_array(parts, "x", shape, chunks, "i4", 0)
    create_array(parts, "moments", (batches, total_channels, 4), (1, total_channels, 4), "f8", 0.0)
    create_array(parts, "status", (batches, batch_size), (1, batch_size), "i1", -1)
    create_array(parts, "done", (batches,), (1,), "u1", 0)


def drop_parts(root: Any) -> None:
    """Delete the per-batch parts (scratch once the final arrays are written)."""
    if "parts" in root:
        del root["parts"]


def _exists(url: str) -> bool:
    try:
        open_group(url, mode="r")
    except Exception:  # any store error means there is nothing to resume
        return False
    return True


def batch_capacity(root: Any) -> int:
    return int(root["parts"]["done"].shape[0])


def grow(root: Any, batches: int) -> None:
    """Make room for ``batches`` batches (an iterable turned out longer than expected)."""
    parts = root["parts"]
    for name in ("score", "index", "y", "x", "moments", "status", "done"):
        array = parts[name]
        array.resize((batches, *array.shape[1:]))


def done_batches(root: Any) -> np.ndarray:
    """Numbers of the batches already finished."""
    return np.flatnonzero(root["parts"]["done"][:])


def write_part(url: str, result: Any) -> None:
    """Write one batch's part (a ``worker.BatchResult``); the done mark last. Idempotent."""
    parts = open_group(url, mode="r+")["parts"]
    n = result.number
    parts["score"][n] = result.top.score
    parts["index"][n] = result.top.index
    parts["y"][n] = result.top.y
    parts["x"][n] = result.top.x
    parts["moments"][n] = result.moments
    status = np.full(parts["status"].shape[1], -1, np.int8)
    status[: len(result.status)] = result.status
    parts["status"][n] = status
    parts["done"][n] = 1


def read_parts(url: str, start: int, stop: int) -> tuple[Any, Any]:
    """Batches ``start..stop-1`` merged in order: (Top, Moments) over the flat channel axis."""
    from .reduce import EMPTY_INDEX, Moments, Top

    parts = open_group(url, mode="r")["parts"]
    rows = slice(start, stop)
    score, index = parts["score"][rows], parts["index"][rows]
    index = np.where(index < 0, EMPTY_INDEX, index)
    y, x, moments = parts["y"][rows], parts["x"][rows], parts["moments"][rows]
    top = Top(score[0], index[0], y[0], x[0])
    merged = Moments.from_array(moments[0])
    for i in range(1, stop - start):
        top = top.merge(Top(score[i], index[i], y[i], x[i]))
        merged = merged.merge(Moments.from_array(moments[i]))
    return top, merged


def image_status(root: Any) -> np.ndarray:
    """Per image of the source, in order: 1 read, 0 skipped (only finished batches)."""
    status = root["parts"]["status"][:]
    return status[status >= 0]


def write_paths(root: Any, paths: list[str]) -> None:
    """Keep the images' paths (UTF-8 bytes and offsets: plain arrays on any zarr version)."""
    encoded = [p.encode("utf-8") for p in paths]
    offsets = np.cumsum([0, *(len(e) for e in encoded)]).astype(np.int64)
    data = np.frombuffer(b"".join(encoded), np.uint8) if encoded else np.zeros(0, np.uint8)
    source = root.require_group("source")
    create_array(source, "path_bytes", (max(len(data), 1),), (1 << 20,), "u1", 0)
    if len(data):
        source["path_bytes"][:] = data
    create_array(source, "path_offsets", offsets.shape, (1 << 16,), "i8", 0)
    source["path_offsets"][:] = offsets


def read_paths(root: Any) -> list[str] | None:
    if "source" not in root:
        return None
    data = root["source"]["path_bytes"][:].tobytes()
    offsets = root["source"]["path_offsets"][:]
    return [data[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets.tolist())]


def write_layer(root: Any, position: int, path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write one layer's final arrays into ``layers/L<position>``.

    Pictures (crops, ascent images) are chunked by a few channels (:data:`CHUNK_BYTES`), so
    showing a channel reads one small chunk; the small per-channel tables are one chunk each.
    """
    group = root.require_group("layers").require_group(layer_key(position))
    group.attrs.update({"path": path})
    for name, array in arrays.items():
        chunks = array.shape
        if name in PICTURES:
            per_channel = max(1, int(np.prod(array.shape[1:])))
            chunks = (max(1, min(array.shape[0], CHUNK_BYTES // per_channel)), *array.shape[1:])
        fill = 0 if array.dtype.kind in "iu" else float("nan")
        create_array(group, name, array.shape, chunks, array.dtype, fill)
        group[name][...] = array
