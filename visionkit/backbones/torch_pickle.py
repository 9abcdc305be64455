"""Read legacy (zip-less) PyTorch ``.pth`` state dicts into NumPy, without torch.

``torch.save(..., _use_new_zipfile_serialization=False)`` writes, one after another:

1. a pickle of the magic number ``0x1950a86a20f9469cfc6c``,
2. a pickle of the protocol version ``1001``,
3. a pickle of ``sys_info`` (``little_endian``, ``type_sizes``, ...),
4. the main pickle; tensors inside it point at storages through *persistent ids*
   ``("storage", storage_type, key, location, numel, view_metadata)``,
5. a pickle of the list of storage keys, and
6. for each key in that order, an 8-byte little-endian element count and the raw data.

Unpickling is code execution, so every pickle here goes through
:class:`RestrictedUnpickler`, which resolves only the handful of globals a state dict
needs (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter`` and the typed storage classes) to harmless local
stand-ins and refuses anything else with :class:`UnsafePickleError`. Nothing from torch
is imported; this module imports only the standard library and NumPy.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "MAGIC_NUMBER",
    "PROTOCOL_VERSION",
    "STORAGE_DTYPES",
    "HashMismatchError",
    "LegacyPickleError",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "load_legacy_state_dict",
    "sha256_file",
]

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

#: Storage class names (as ``torch.<Name>``) and the NumPy dtype of their elements.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class LegacyPickleError(ValueError):
    """The file is not a readable legacy PyTorch pickle (truncated, wrong magic, ...)."""


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for a global outside the allow-list; nothing was executed."""


class HashMismatchError(ValueError):
    """The file's sha256 differs from the expected one."""


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: only carries the dtype."""

    name: str
    dtype: np.dtype


@dataclass
class _StorageRef:
    """A storage named by a persistent id; its bytes are read after the main pickle."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    """A tensor waiting for its storage: ``offset``, ``size`` and ``stride`` in elements."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, *args):
    if not isinstance(storage, _StorageRef):
        raise UnsafePickleError("_rebuild_tensor_v2 got something other than a storage")
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    return data


_ALLOWED_FUNCTIONS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a PyTorch state dict needs.

    ``storages`` collects the storages named by persistent ids, by key.
    """

    def __init__(self, file: BinaryIO, storages: dict[str, _StorageRef] | None = None):
        super().__init__(file)
        self.storages = storages if storages is not None else {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_FUNCTIONS:
            return _ALLOWED_FUNCTIONS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name, STORAGE_DTYPES[name])
        raise UnsafePickleError(
            f"refused to load global {module}.{name}: only a PyTorch state dict's "
            "globals (OrderedDict, tensor rebuilders, storage types) are allowed"
        )

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        view_metadata = pid[5] if len(pid) > 5 else None
        if not isinstance(storage_type, _StorageType):
            raise UnsafePickleError(f"persistent id names a non-storage type {storage_type!r}")
        if view_metadata is not None:
            raise LegacyPickleError("storage views (pre-1.0 PyTorch files) are not supported")
        key = str(key)
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = _StorageRef(key, storage_type.dtype, int(numel))
        return ref


def _restricted_load(f: BinaryIO, storages: dict[str, _StorageRef] | None = None) -> Any:
    try:
        return RestrictedUnpickler(f, storages).load()
    except (UnsafePickleError, LegacyPickleError):
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError) as exc:
        raise LegacyPickleError(f"corrupt or truncated pickle: {exc}") from exc


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _materialise(tensor: _TensorRef) -> np.ndarray:
    data = tensor.storage.data
    if data is None:
        raise LegacyPickleError(f"storage {tensor.storage.key!r} has no data in the file")
    if len(tensor.size) != len(tensor.stride):
        raise LegacyPickleError(f"tensor size {tensor.size} and stride {tensor.stride} disagree")
    if any(not isinstance(v, int) or v < 0 for v in (tensor.offset, *tensor.size, *tensor.stride)):
        raise LegacyPickleError(
            f"tensor view (offset {tensor.offset}, size {tensor.size}, stride {tensor.stride}) of "
            f"storage {tensor.storage.key!r} has a negative or non-integer entry; refusing it"
        )
    if not tensor.size:
        if tensor.offset >= data.size:
            raise LegacyPickleError(
                f"scalar offset {tensor.offset} past storage {tensor.storage.key!r}"
            )
        return data[tensor.offset : tensor.offset + 1].reshape(()).copy()
    count = int(np.prod(tensor.size, dtype=np.int64))
    if count == 0:
        return np.zeros(tensor.size, dtype=data.dtype)
    extent = (
        tensor.offset
        + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride, strict=True))
        + 1
    )
    # A state dict never holds expanded (stride-0) views: a view with more elements than
    # its storage would only make the copy below allocate without bound.
    if extent > data.size or count > data.size:
        raise LegacyPickleError(
            f"tensor view (offset {tensor.offset}, size {tensor.size}, stride "
            f"{tensor.stride}) does not fit storage {tensor.storage.key!r} of {data.size} elements"
        )
    base = data[tensor.offset :]
    strides = tuple(s * data.itemsize for s in tensor.stride)
    view = np.lib.stride_tricks.as_strided(base, shape=tensor.size, strides=strides)
    return np.array(view, copy=True)


def _replace_tensors(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return _materialise(obj)
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _replace_tensors(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _replace_tensors(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_tensors(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_replace_tensors(v) for v in obj)
    return obj


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise LegacyPickleError(f"truncated file: expected {n} bytes of {what}, got {len(data)}")
    return data


def _load_from_stream(f: BinaryIO) -> Any:
    magic = _restricted_load(f)
    if magic != MAGIC_NUMBER:
        raise LegacyPickleError(
            "not a legacy PyTorch file (bad magic number); zip-format .pth files are not supported"
        )
    protocol = _restricted_load(f)
    if protocol != PROTOCOL_VERSION:
        raise LegacyPickleError(f"unsupported legacy protocol version {protocol!r}")
    sys_info = _restricted_load(f)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise LegacyPickleError("only little-endian legacy files are supported")

    storages: dict[str, _StorageRef] = {}
    result = _restricted_load(f, storages)
    keys = _restricted_load(f)
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise LegacyPickleError("storage key list does not match the storages the pickle names")
    for key in map(str, keys):
        ref = storages[key]
        count = int.from_bytes(_read_exact(f, 8, f"storage {key} size"), "little", signed=True)
        if count != ref.numel:
            raise LegacyPickleError(
                f"storage {key}: file says {count} elements, the pickle said {ref.numel}"
            )
        nbytes = count * ref.dtype.itemsize
        raw = _read_exact(f, nbytes, f"storage {key} data")
        ref.data = np.frombuffer(raw, dtype=ref.dtype)
    return _replace_tensors(result)


def load_legacy_state_dict(
    path: str | os.PathLike[str], *, sha256: str | None = None
) -> dict[str, np.ndarray]:
    """Load a legacy PyTorch pickle at ``path`` into a dict of NumPy arrays.

    When ``sha256`` is given, the file's hash is checked before anything is parsed and a
    mismatch raises :class:`HashMismatchError` naming the file and both hashes. A global
    outside the allow-list raises :class:`UnsafePickleError`; a truncated or malformed
    file raises :class:`LegacyPickleError`. The top-level object is returned as read
    (normally an ``OrderedDict`` of name → ``numpy.ndarray``).
    """
    raw = Path(path).read_bytes()  # hash and parse the very same bytes
    if sha256 is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != sha256.lower():
            raise HashMismatchError(
                f"{os.fspath(path)}: sha256 {actual} does not match the expected {sha256.lower()}"
            )
    stream = io.BytesIO(raw)
    result = _load_from_stream(stream)
    if stream.read(1):
        raise LegacyPickleError(f"{os.fspath(path)}: unexpected trailing bytes after the storages")
    return result
