"""Read a legacy (non-zip) PyTorch ``.pth`` state dict with numpy only, without PyTorch.

The legacy format written by ``torch.save(..., _use_new_zipfile_serialization=False)`` is a
run of pickles followed by raw storage bytes:

1. the magic number ``0x1950a86a20f9469cfc6c``;
2. the format version ``1001``;
3. a small dict of system information (byte order, C type sizes);
4. the saved object itself, in which every tensor is a call to
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and every storage is a
   *persistent id* ``("storage", StorageType, key, location, numel, view_metadata)``;
5. the list of storage keys, in the order their bytes follow;
6. for each of those keys: the element count as an 8-byte integer, then the elements.

Unpickling runs code chosen by the file's author, so the unpickler here resolves only the few
globals a weights file needs (the tensor-rebuild functions, the storage types and
``collections.OrderedDict``) and refuses every other one *before* it can be called.
"""

from __future__ import annotations

import collections
import os
import pickle
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

__all__ = ["read_torch_state_dict"]

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_ZIP_SIGNATURE = b"PK\x03\x04"

# torch storage class name -> numpy element type (byte order is applied from the file's header).
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co.: only its element type is ever needed.

    Deliberately not callable, so a pickle that tries to *call* a storage type fails instead of
    reaching anything outside this module.
    """

    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: np.dtype) -> None:
        self.name = name
        self.dtype = dtype


class _Storage:
    """A storage's numpy buffer, allocated when the pickle names it and filled afterwards."""

    __slots__ = ("buffer", "filled", "key", "root")

    def __init__(self, key: str, buffer: np.ndarray, root: _Storage | None = None) -> None:
        self.key = key
        self.buffer = buffer
        # Old files may reference a slice ("view") of another storage; the root is what is filled.
        self.root = root
        self.filled = False

    def is_filled(self) -> bool:
        return (self.root or self).filled


class _Tensor:
    """A tensor whose bytes are not read yet: a strided view over a storage that fills later."""

    __slots__ = ("storage", "view")

    def __init__(self, storage: _Storage, view: np.ndarray) -> None:
        self.storage = storage
        self.view = view


class _Invalid(pickle.UnpicklingError):
    """A problem this module found in the file (as opposed to one the pickle machinery found)."""


class _Refused(_Invalid):
    """A global outside the allow-list."""


def _refuse(module: str, name: str) -> pickle.UnpicklingError:
    return _Refused(
        f"refusing to unpickle '{module}.{name}': only tensors, storages and OrderedDict are "
        "allowed in a weights file"
    )


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that knows tensors, storages and OrderedDict, and nothing else."""

    def __init__(self, file: IO[bytes], byte_order: str = "<", max_bytes: int = 0) -> None:
        super().__init__(file)
        self._byte_order = byte_order
        # A storage cannot hold more bytes than the file: checking this before allocating stops
        # a crafted size from reserving absurd amounts of memory.
        self._max_bytes = max_bytes
        # Shared by every tensor that names the same storage key, as in torch.
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_tensor":
            return self._rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise _refuse(module, name)

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise _Invalid(f"unexpected persistent id in a weights file: {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise _Invalid(f"storage {key!r} has no known storage type")
        if not isinstance(numel, int) or numel < 0:
            raise _Invalid(f"storage {key!r} has an invalid size {numel!r}")
        root = self.storages.get(key)
        if root is None:
            n_bytes = numel * storage_type.dtype.itemsize
            if n_bytes > self._max_bytes:
                raise _Invalid(
                    f"storage {key!r} claims {numel} elements ({n_bytes} bytes) but the whole "
                    f"file is {self._max_bytes} bytes; the file is truncated or corrupt"
                )
            dtype = storage_type.dtype.newbyteorder(self._byte_order)
            root = self.storages[key] = _Storage(key, np.empty(numel, dtype=dtype))
        if view_metadata is None:
            return root
        view_key, offset, view_size = view_metadata
        if not (0 <= offset and 0 <= view_size and offset + view_size <= root.buffer.size):
            raise _Invalid(f"storage view {view_key!r} lies outside storage {key!r}")
        return _Storage(view_key, root.buffer[offset : offset + view_size], root=root)

    def _rebuild_tensor(
        self, storage: _Storage, storage_offset: int, size: tuple, stride: tuple
    ) -> _Tensor:
        if not isinstance(storage, _Storage):
            raise _Invalid("a tensor in the weights file does not refer to a storage")
        size, stride = tuple(size), tuple(stride)
        if len(size) != len(stride) or any(
            not isinstance(v, int) or v < 0 for v in (storage_offset, *size, *stride)
        ):
            raise _Invalid(
                f"tensor has an invalid layout: offset {storage_offset!r}, size {size!r}, "
                f"stride {stride!r}"
            )
        buffer = storage.buffer
        if int(np.prod(size, dtype=object)) > buffer.size:
            # Only stride-0 (expanded) tensors repeat storage elements; a weights file has none,
            # and copying one could allocate far more memory than the file holds.
            raise _Invalid(
                f"tensor of size {size} has more elements than its storage ({buffer.size})"
            )
        # as_strided does no bounds checking: verify the last element addressed is inside the
        # storage, or a crafted file could read arbitrary process memory.
        if all(size):
            last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
            if last >= buffer.size:
                raise _Invalid(
                    f"tensor of size {size} with stride {stride} at offset {storage_offset} "
                    f"reads past the end of its storage ({buffer.size} elements)"
                )
            base = buffer[storage_offset:]
        else:
            base = buffer[:0]
        view = np.lib.stride_tricks.as_strided(
            base, shape=size, strides=[s * buffer.itemsize for s in stride], writeable=False
        )
        return _Tensor(storage, view)

    def _rebuild_tensor_v2(
        self,
        storage: _Storage,
        storage_offset: int,
        size: tuple,
        stride: tuple,
        requires_grad: bool = False,
        backward_hooks: Any = None,
        metadata: Any = None,
    ) -> _Tensor:
        # requires_grad, hooks and metadata only matter to autograd; the values are what we want.
        return self._rebuild_tensor(storage, storage_offset, size, stride)


def _load_pickle(unpickler: _RestrictedUnpickler, path: str, what: str) -> Any:
    try:
        return unpickler.load()
    except EOFError as exc:
        raise pickle.UnpicklingError(
            f"{path} is truncated: the file ended while reading the {what}"
        ) from exc
    except _Refused:
        raise  # its message is complete as it is
    except _Invalid as exc:
        raise pickle.UnpicklingError(f"{path} is not a valid weights file: {exc}") from exc
    except pickle.UnpicklingError as exc:
        if "truncated" in str(exc):  # the C unpickler's word for a file that ends mid-pickle
            raise pickle.UnpicklingError(
                f"{path} is truncated: the file ended while reading the {what}"
            ) from exc
        raise pickle.UnpicklingError(
            f"{path} is not a readable legacy PyTorch file ({what}: {exc})"
        ) from exc
    except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
        # Raised when a (corrupt or hostile) pickle calls an allowed global with bad arguments.
        raise pickle.UnpicklingError(
            f"{path} is not a readable legacy PyTorch file ({what}: {type(exc).__name__}: {exc})"
        ) from exc


def _read_exactly(file: IO[bytes], out: memoryview, path: str, key: str) -> None:
    got = file.readinto(out)
    if got != len(out):
        raise pickle.UnpicklingError(
            f"{path} is truncated: storage {key!r} needs {len(out)} bytes but only "
            f"{got or 0} remain"
        )


def read_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a legacy (non-zip) PyTorch ``.pth`` state dict into numpy arrays, without torch.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``torch.save(state_dict)`` in the legacy format (the default before
        PyTorch 1.6, or ``_use_new_zipfile_serialization=False`` since).

    Returns
    -------
    dict of str to numpy.ndarray
        Tensor name -> a new C-contiguous, writable array in native byte order, with the tensor's
        shape and the storage's element type (``float32`` for weights, ``int64`` for
        ``num_batches_tracked`` counters). Insertion order follows the file.

    Raises
    ------
    pickle.UnpicklingError
        If the file names any global other than the tensor-rebuild functions, the storage types
        and ``collections.OrderedDict`` (nothing in the file is executed), if it is truncated or
        corrupt, if it is a zip-format checkpoint, or if it does not hold a flat name -> tensor
        mapping.
    FileNotFoundError
        If ``path`` does not exist.

    Examples
    --------
    >>> weights = read_torch_state_dict("efficientnet-lite0-57934424.pth")  # doctest: +SKIP
    >>> weights["_conv_stem.weight"].shape  # doctest: +SKIP
    (32, 3, 3, 3)
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        if file.read(4) == _ZIP_SIGNATURE:
            raise pickle.UnpicklingError(
                f"{path} is a zip-format PyTorch checkpoint; only the legacy format is supported "
                "(re-save it with torch.save(obj, f, _use_new_zipfile_serialization=False))"
            )
        file.seek(0)

        header = _RestrictedUnpickler(file)
        if _load_pickle(header, path, "magic number") != _MAGIC_NUMBER:
            raise pickle.UnpicklingError(
                f"{path} is not a legacy PyTorch file (its magic number does not match)"
            )
        version = _load_pickle(header, path, "format version")
        if version != _PROTOCOL_VERSION:
            raise pickle.UnpicklingError(
                f"{path} uses PyTorch legacy format version {version!r}; only "
                f"{_PROTOCOL_VERSION} is supported"
            )
        sys_info = _load_pickle(header, path, "system information")
        little_endian = not isinstance(sys_info, Mapping) or sys_info.get("little_endian", True)
        byte_order = "<" if little_endian else ">"

        unpickler = _RestrictedUnpickler(
            file, byte_order, max_bytes=os.fstat(file.fileno()).st_size
        )
        state = _load_pickle(unpickler, path, "tensor index")
        keys = _load_pickle(_RestrictedUnpickler(file), path, "storage key list")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise pickle.UnpicklingError(f"{path} has a malformed storage key list")

        count_dtype = np.dtype(np.int64).newbyteorder(byte_order)
        for key in keys:
            storage = unpickler.storages.get(key)
            if storage is None:
                raise pickle.UnpicklingError(f"{path} lists storage {key!r} that no tensor uses")
            count = np.empty(1, dtype=count_dtype)
            _read_exactly(file, memoryview(count).cast("B"), path, key)
            if int(count[0]) != storage.buffer.size:
                raise pickle.UnpicklingError(
                    f"{path} is corrupt: storage {key!r} holds {int(count[0])} elements, "
                    f"the index says {storage.buffer.size}"
                )
            _read_exactly(file, memoryview(storage.buffer).cast("B"), path, key)
            storage.filled = True

    if not isinstance(state, Mapping):
        raise pickle.UnpicklingError(
            f"{path} holds a {type(state).__name__}, not a state dict (a mapping of names to "
            "tensors)"
        )
    result: dict[str, np.ndarray] = {}
    for name, tensor in state.items():
        if not isinstance(tensor, _Tensor):
            raise pickle.UnpicklingError(
                f"{path}: entry {name!r} is a {type(tensor).__name__}, not a tensor"
            )
        if not tensor.storage.is_filled():
            raise pickle.UnpicklingError(f"{path}: the bytes of tensor {name!r} are missing")
        # Copy out of the strided view: the result must not share memory with (or keep alive)
        # the whole storage, and callers expect ordinary contiguous arrays.
        result[str(name)] = np.array(
            tensor.view, dtype=tensor.view.dtype.newbyteorder("="), order="C"
        )
    return result
