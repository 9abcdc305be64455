"""CNN arithmetic of the lecture material: output sizes, receptive fields, parameter and
MAC counts, NumPy reference convolution and pooling, and a per-layer table of a Keras model.

Everything is channels-last (H × W × C) and NumPy-only; TensorFlow/Keras is imported lazily
inside :func:`layer_table`, so ``import visionkit.analysis`` stays light.

Conventions (see ``SEED_CHECKS.md`` §2.11, "Padding convention"):

* ``per_side`` (cs231n, [000]/[002]): P zeros on *each* side, out = (N + 2P − F)/S + 1.
* ``total`` ([004]): p zeros in *all* along one axis, out = (n − k + p)/s + 1.

A size that does not come out as a whole number is an error here ("7×7 input with 3×3 filter
and stride 3 doesn't work!", W7), whereas Keras 'valid' padding silently floors it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = [
    "conv2d_reference",
    "conv_macs",
    "conv_output_size",
    "conv_params",
    "format_layer_table",
    "layer_table",
    "layer_table_totals",
    "pool2d_reference",
    "pool_output_size",
    "receptive_field",
    "same_padding",
]

LAYER_TABLE_COLUMNS = (
    "layer",
    "type",
    "output_shape",
    "params",
    "trainable_params",
    "macs",
    "activations",
)
SUM_COLUMNS = ("params", "trainable_params", "macs", "activations")


# --------------------------------------------------------------------------- sizes


def _check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as int; ValueError unless it is an integer ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _pair(name: str, value: int | Sequence[int], minimum: int) -> tuple[int, int]:
    """An int or a 2-sequence as a pair of checked ints (height, width)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = _check_int(name, value, minimum)
        return v, v
    vals = tuple(value)  # type: ignore[arg-type]
    if len(vals) != 2:
        raise ValueError(f"{name} must be an int or a pair (height, width), got {value!r}")
    return _check_int(name, vals[0], minimum), _check_int(name, vals[1], minimum)


def _fit(
    n: int, f: int, stride: int, pad_total: int, formula: str, what: str, pad_desc: str
) -> int:
    """Shared fit rule: (n + pad_total − f)/stride + 1 must be a whole number ≥ 1."""
    span = n + pad_total - f
    if span < 0:
        raise ValueError(
            f"{formula} = {span}/{stride} + 1 < 1: a {f}×{f} {what} is larger than the "
            f"{n + pad_total}×{n + pad_total} (padded) input; use a smaller {what} or more padding"
        )
    if span % stride:
        result = span / stride + 1
        divisors = [d for d in range(1, span + 1) if span % d == 0] if span else [1]
        raise ValueError(
            f"{formula} = {result:.2f}: a {f}×{f} {what} at stride {stride} does not fit a "
            f"{n}×{n} input ({pad_desc}); choose a stride that divides "
            f"{span} (one of {divisors[:8]}) or change the padding"
        )
    return span // stride + 1


def conv_output_size(
    n: int,
    f: int,
    stride: int = 1,
    padding: int = 0,
    convention: Literal["per_side", "total"] = "per_side",
) -> int:
    """Spatial output size of a convolution along one axis.

    ``convention="per_side"`` (cs231n, W7/W8/W12): ``(N + 2P − F)/S + 1`` with P zeros on each
    side. ``convention="total"`` ([004], W8): ``(n − k + p)/s + 1`` with p zeros in all.

    Reproduces C7 (N=7, F=3: stride 1 → 5, stride 2 → 3, stride 3 → ValueError "2.33"),
    C8 (pad 1 per side: stride 1 → 7, stride 3 → 3), C28 (AlexNet CONV1: 227, 11, 4 → 55).

    Raises:
        ValueError: non-integer or non-positive arguments, a filter larger than the padded
            input, or a stride that does not divide the span (message names every size).
    """
    n = _check_int("n", n, 1)
    f = _check_int("f", f, 1)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    if convention == "per_side":
        pad_total = 2 * padding
        formula = f"({n} + 2*{padding} - {f})/{stride} + 1"
    elif convention == "total":
        pad_total = padding
        formula = f"({n} - {f} + {padding})/{stride} + 1"
    else:
        raise ValueError(f"convention must be 'per_side' or 'total', got {convention!r}")
    pad_desc = f"padding {padding} {'per side' if convention == 'per_side' else 'in total'}"
    return _fit(n, f, stride, pad_total, formula, "filter", pad_desc)


def pool_output_size(n: int, f: int = 2, stride: int = 2) -> int:
    """Spatial output size of an (unpadded) pooling window along one axis: ``(N − F)/S + 1``.

    Same fit rule as :func:`conv_output_size`. Reproduces W11/C13 (224 → 112 with 2×2/2) and
    C29 (AlexNet POOL1 3×3/2: 55 → 27).
    """
    n = _check_int("n", n, 1)
    f = _check_int("f", f, 1)
    stride = _check_int("stride", stride, 1)
    return _fit(n, f, stride, 0, f"({n} - {f})/{stride} + 1", "pooling window", "no padding")


def same_padding(f: int) -> int:
    """Per-side zero padding ``P = (F − 1)/2`` that keeps the size at stride 1 (W8, C9).

    Raises ValueError for an even F, which cannot be padded symmetrically.
    """
    f = _check_int("f", f, 1)
    if f % 2 == 0:
        raise ValueError(
            f"'same' padding needs an odd filter size; (F - 1)/2 = {(f - 1) / 2} for F={f}"
        )
    return (f - 1) // 2


def receptive_field(layers: Iterable[tuple[int, int]]) -> int:
    """Receptive field (in input pixels, per axis) of one unit after a stack of layers.

    ``layers`` is ``[(kernel, stride), ...]`` from input to output;
    ``r_L = r_{L−1} + (k_L − 1)·Π_{i<L} s_i`` with ``r_0 = 1``. Padding does not change it.

    Reproduces W15/C17 (three 3×3/1 convs → 7; two → 5) and C18 (figure A: 3×3/1 then 2×2/1
    → 4; figure B: 4×4/1 then 2×2/2 → 5).
    """
    r, jump = 1, 1
    for i, layer in enumerate(layers):
        k, s = layer
        k = _check_int(f"kernel of layer {i}", k, 1)
        s = _check_int(f"stride of layer {i}", s, 1)
        r += (k - 1) * jump
        jump *= s
    return r


def conv_params(f: int | Sequence[int], c_in: int, c_out: int, bias: bool = True) -> int:
    """Learnable parameters of a conv layer: ``(F·F·D_i)·K + K`` (W12, C15; C10: 5·5·3·1 + 1 = 76).

    ``f`` is F or ``(kh, kw)``; ``bias=False`` drops the ``+ K`` (C16: 7·7·C·C = 49C², the
    VGG table's weights-only counts of C33).
    """
    kh, kw = _pair("f", f, 1)
    c_in = _check_int("c_in", c_in, 1)
    c_out = _check_int("c_out", c_out, 1)
    return kh * kw * c_in * c_out + (c_out if bias else 0)


def conv_macs(h_out: int, w_out: int, f: int | Sequence[int], c_in: int, c_out: int) -> int:
    """Multiply-accumulates of a conv layer: ``H_out·W_out·C_out·F·F·C_in`` (bias adds excluded).

    Reproduces C19/W17 (32·32·32·5·5·200 = 163,840,000) and the per-branch terms of the
    Inception examples W18/W19 (e.g. 28·28·192·3·3·256 = 346,816,512).
    """
    kh, kw = _pair("f", f, 1)
    h_out = _check_int("h_out", h_out, 1)
    w_out = _check_int("w_out", w_out, 1)
    c_in = _check_int("c_in", c_in, 1)
    c_out = _check_int("c_out", c_out, 1)
    return h_out * w_out * c_out * kh * kw * c_in


# --------------------------------------------------------------------------- NumPy references


def conv2d_reference(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | Sequence[float] | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
) -> np.ndarray:
    """Multi-channel 2-D cross-correlation (what Conv2D computes; no kernel flip), float64.

    ``y[i, j, o] = b[o] + Σ_{a,b,c} xp[i·S + a, j·S + b, c] · w[a, b, c, o]`` where ``xp`` is
    ``x`` with ``padding`` zeros on each side (an int, or ``(ph, pw)``).

    Shapes: ``x`` H×W×Cin, ``w`` kh×kw×Cin×Cout (the Keras kernel layout), ``b`` (Cout,) →
    H'×W'×Cout with H' = (H + 2·ph − kh)/S + 1. A 2-D ``x`` with a 2-D ``w`` (one channel,
    one filter) gives a 2-D result, as in the lecture examples W1–W4 (C1–C4); W6/C50 is the
    multi-channel case (5×5×3 input, pad 1, stride 2, two 3×3×3 filters → 3×3×2).

    Raises ValueError when the stride does not fit (see :func:`conv_output_size`) or the
    channel counts disagree.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    squeeze = x.ndim == 2 and w.ndim == 2
    if squeeze:
        x, w = x[:, :, None], w[:, :, None, None]
    if x.ndim != 3 or w.ndim != 4:
        raise ValueError(
            f"expected x H×W×Cin and w kh×kw×Cin×Cout (or both 2-D); got x{x.shape}, w{w.shape}"
        )
    kh, kw, c_in, c_out = w.shape
    if x.shape[2] != c_in:
        raise ValueError(
            f"filters must extend the full depth of the input: x has {x.shape[2]} channels, "
            f"w has {c_in}"
        )
    sh, sw = _pair("stride", stride, 1)
    ph, pw = _pair("padding", padding, 0)
    h_out = conv_output_size(x.shape[0], kh, sh, ph)
    w_out = conv_output_size(x.shape[1], kw, sw, pw)
    xp = np.pad(x, ((ph, ph), (pw, pw), (0, 0)))
    # windows[i, j, c, a, b] = xp[i + a, j + b, c]; keep every S-th window.
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(0, 1))
    windows = windows[: (h_out - 1) * sh + 1 : sh, : (w_out - 1) * sw + 1 : sw]
    y = np.einsum("ijcab,abco->ijo", windows, w, optimize=True)
    if b is not None:
        bias = np.asarray(b, dtype=np.float64).reshape(-1)
        if bias.shape != (c_out,):
            raise ValueError(f"b must have {c_out} values (one per filter), got {bias.shape}")
        y = y + bias
    return y[:, :, 0] if squeeze else y


def pool2d_reference(
    x: np.ndarray,
    size: int | Sequence[int] = 2,
    stride: int | Sequence[int] = 2,
    mode: Literal["max", "avg"] = "max",
) -> np.ndarray:
    """Max or average pooling of each channel separately, no padding, float64.

    ``y[i, j, c] = max|mean_{a,b} x[i·S + a, j·S + b, c]``; ``x`` H×W×C → H'×W'×C with
    H' = (H − F)/S + 1 (a 2-D ``x`` gives a 2-D result). Pooling has no parameters (W11).
    Reproduces W10: C5 (max → [[3, 6], [1, 3]]) and C6 (avg → [[1.5, 2.25], [−0.25, 1]]).
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    x = np.asarray(x, dtype=np.float64)
    squeeze = x.ndim == 2
    if squeeze:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"expected x H×W×C or H×W, got shape {x.shape}")
    fh, fw = _pair("size", size, 1)
    sh, sw = _pair("stride", stride, 1)
    h_out = pool_output_size(x.shape[0], fh, sh)
    w_out = pool_output_size(x.shape[1], fw, sw)
    windows = np.lib.stride_tricks.sliding_window_view(x, (fh, fw), axis=(0, 1))
    windows = windows[: (h_out - 1) * sh + 1 : sh, : (w_out - 1) * sw + 1 : sw]
    y = windows.max(axis=(-2, -1)) if mode == "max" else windows.mean(axis=(-2, -1))
    return y[:, :, 0] if squeeze else y


# --------------------------------------------------------------------------- layer table


def _shape_of(spec: Any) -> tuple[Any, ...] | None:
    shape = getattr(spec, "shape", None)
    return None if shape is None else tuple(None if d is None else int(d) for d in shape)


def _numel(shape: tuple[Any, ...] | None) -> int | None:
    """Values per example (batch dim dropped); None when a dimension is unknown."""
    if shape is None or any(d is None for d in shape[1:]):
        return None
    return math.prod(shape[1:])


def _kernel_size(var: Any) -> int:
    return math.prod(int(d) for d in var.shape)


def _spatial(shape: tuple[Any, ...] | None, data_format: str | None) -> int | None:
    """Product of the spatial dims of a conv input/output (batch and channel dims dropped)."""
    if shape is None:
        return None
    dims = shape[2:] if data_format == "channels_first" else shape[1:-1]
    if any(d is None for d in dims):
        return None
    return math.prod(dims)


def _classes(keras: Any, *names: str) -> tuple[type, ...]:
    """The ``keras.layers`` classes of these names that exist in this Keras version."""
    return tuple(c for c in (getattr(keras.layers, n, None) for n in names) if c is not None)


def _layer_macs(layer: Any, inputs: list[Any], outputs: list[Any], keras: Any) -> int | None:
    """MACs of one call of ``layer`` for one example (None when a needed dim is unknown)."""
    L = keras.layers
    out_shape = _shape_of(outputs[0]) if outputs else None
    in_shape = _shape_of(inputs[0]) if inputs else None
    fmt = getattr(layer, "data_format", None)
    transpose = _classes(keras, "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
    separable = _classes(keras, "SeparableConv1D", "SeparableConv2D")
    depthwise = _classes(keras, "DepthwiseConv1D", "DepthwiseConv2D")
    conv = _classes(keras, "Conv1D", "Conv2D", "Conv3D")
    if isinstance(layer, transpose):
        # kernel (*k, C_out, C_in): every input value is scattered through the whole kernel.
        n = _spatial(in_shape, fmt)
        return None if n is None else n * _kernel_size(layer.kernel)
    if isinstance(layer, separable):
        n = _spatial(out_shape, fmt)
        if n is None:
            return None
        return n * (_kernel_size(layer.depthwise_kernel) + _kernel_size(layer.pointwise_kernel))
    if isinstance(layer, depthwise + conv):
        # kernel (*k, C_in/groups, C_out) or depthwise (*k, C_in, multiplier).
        n = _spatial(out_shape, fmt)
        return None if n is None else n * _kernel_size(layer.kernel)
    if isinstance(layer, L.Dense):
        if out_shape is None or any(d is None for d in out_shape[1:-1]):
            return None
        return math.prod(out_shape[1:-1]) * _kernel_size(layer.kernel)
    return 0


def _passthrough_types(keras: Any) -> tuple[type, ...]:
    """Layers whose output is their input, reshaped or unchanged at inference: 0 activations."""
    return _classes(
        keras,
        "Flatten",
        "Reshape",
        "Permute",
        "Identity",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianDropout",
        "AlphaDropout",
        "GaussianNoise",
        "ActivityRegularization",
        "InputLayer",
    )


def _graph(model: Any) -> Any:
    """The Functional graph of a model (a built Sequential keeps one in ``_functional``)."""
    if hasattr(model, "_nodes_by_depth"):
        return model
    functional = getattr(model, "_functional", None)
    if functional is not None and hasattr(functional, "_nodes_by_depth"):
        return functional
    return None


def _trace(model: Any, inputs: list[Any], records: dict[int, list[Any]], keras: Any) -> list[Any]:
    """Propagate symbolic specs through ``model``'s graph, recording each layer call.

    Recurses into nested models so their layers get concrete shapes even when the nested
    model was built with ``None`` spatial dims. Returns the flat list of output specs.
    Walks Keras-internal graph attributes (``_nodes_by_depth``, ``node.arguments``, as
    ``Function._run_through_graph`` does in Keras 3.15); :func:`layer_table` falls back to
    the shapes recorded at build time if this ever breaks.
    """
    graph = _graph(model)
    if graph is None:
        raise TypeError(f"{type(model).__name__} {model.name!r} has no layer graph")
    tensors = {id(t): s for t, s in zip(graph.inputs, inputs, strict=True)}
    for t, s in zip(graph.inputs, inputs, strict=True):  # input layers see the caller's specs
        op = getattr(getattr(t, "_keras_history", None), "operation", None)
        if op is not None:
            records.setdefault(id(op), []).append(([], [s]))
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            op = node.operation
            if op is None or node.is_input:
                continue
            if any(id(t) not in tensors for t in node.input_tensors):
                continue
            args, kwargs = node.arguments.fill_in(tensors)
            flat_in = [a for a in keras.tree.flatten((args, kwargs)) if hasattr(a, "shape")]
            if isinstance(op, keras.Model) and _graph(op) is not None:
                outs = _trace(op, keras.tree.flatten(args), records, keras)
            else:
                outs = keras.tree.flatten(op.compute_output_spec(*args, **kwargs))
            records.setdefault(id(op), []).append((flat_in, outs))
            for t, s in zip(node.outputs, outs, strict=True):
                tensors[id(t)] = s
    return [tensors.get(id(t)) for t in graph.outputs]


def _recorded_calls(layer: Any) -> list[Any]:
    """Fallback when tracing fails: the layer's own recorded call(s)."""
    calls = []
    for node in getattr(layer, "_inbound_nodes", []):
        calls.append((list(node.input_tensors), list(node.output_tensors)))
    return calls


def _input_layers(model: Any, keras: Any) -> list[Any]:
    """InputLayer objects feeding ``model`` (Sequential hides them from ``model.layers``)."""
    found = []
    for t in getattr(model, "inputs", None) or []:
        history = getattr(t, "_keras_history", None)
        op = getattr(history, "operation", None)
        if isinstance(op, keras.layers.InputLayer) and op not in found:
            found.append(op)
    return found


def _rows(
    model: Any, prefix: str, records: dict[int, list[Any]], top: bool, keras: Any
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    passthrough = _passthrough_types(keras)
    layers = list(model.layers)
    layers = [lay for lay in _input_layers(model, keras) if lay not in layers] + layers
    for layer in layers:
        name = prefix + layer.name
        if isinstance(layer, keras.Model) and _graph(layer) is not None:
            rows.extend(_rows(layer, name + ".", records, False, keras))
            continue
        calls = records.get(id(layer)) or _recorded_calls(layer)
        if isinstance(layer, keras.layers.InputLayer):
            shape = tuple(layer.batch_shape) if layer.batch_shape is not None else None
            if calls:  # a nested model's input: use the traced (concrete) spec
                shape = _shape_of(calls[0][1][0])
            out_shape: Any = None if shape is None else shape[1:]
            acts = _numel(shape) if top else 0
            macs: int | None = 0
        else:
            shapes = [_shape_of(s) for s in calls[0][1]] if calls else []
            out_shape = None
            if len(shapes) == 1 and shapes[0] is not None:
                out_shape = shapes[0][1:]
            elif len(shapes) > 1:
                out_shape = tuple(None if s is None else s[1:] for s in shapes)
            if not calls:
                acts, macs = None, None
            elif isinstance(layer, passthrough):
                acts, macs = 0, 0
            else:
                counts = [_numel(_shape_of(s)) for _, outs in calls for s in outs]
                acts = None if any(c is None for c in counts) else sum(counts)
                per_call = [_layer_macs(layer, ins, outs, keras) for ins, outs in calls]
                macs = None if any(m is None for m in per_call) else sum(per_call)
        rows.append(
            {
                "layer": name,
                "type": type(layer).__name__,
                "output_shape": out_shape,
                "params": int(sum(_kernel_size(v) for v in layer.weights)),
                "trainable_params": int(sum(_kernel_size(v) for v in layer.trainable_weights)),
                "macs": macs,
                "activations": acts,
            }
        )
    return rows


def layer_table(model: Any) -> pd.DataFrame:
    """One row per layer of a built Keras 3 model, in model order.

    Columns:

    * ``layer``: name; layers of nested models (e.g. a ``keras.applications`` base used as a
      layer) appear in place of the nested model, as ``outer.inner``.
    * ``type``: class name. ``output_shape``: tuple without the batch dim (a tuple of such
      tuples for multi-output layers; None where unknown).
    * ``params``: all weights incl. non-trainable (BatchNorm moving statistics);
      ``trainable_params``: the trainable ones.
    * ``macs``: multiply-accumulates for one example, bias adds excluded. ConvND =
      out_spatial·C_out·k…·C_in/groups; DepthwiseConv = out_spatial·k…·C_in·multiplier;
      SeparableConv = depthwise + pointwise; ConvNDTranspose = in_spatial·C_in·k…·C_out;
      Dense = in·units × any leading non-batch dims; every other layer 0.
    * ``activations``: values in the layer's output(s) for one example. The top-level model
      inputs count (VGG-16: 224·224·3 = 150,528); layers that only reshape or pass their
      input through count 0 (Flatten, Reshape, Permute, Identity, the Dropout/noise layers,
      ActivityRegularization, a nested model's InputLayer).

    A layer called several times (shared weights) sums its MACs and activations over its
    calls; ``output_shape`` is that of its first call. ``macs``/``activations`` are ``<NA>``
    where a dimension is unknown (build the model with a fixed input size).

    Reproduces the VGG-16 table of [002] (W21; C33, C34, C37: activations sum to 15,237,608)
    and the per-layer parameter checks C10–C14, C22–C24, C53. Totals: see
    :func:`layer_table_totals`; printing: :func:`format_layer_table`.
    """
    import keras
    import pandas as pd

    if not isinstance(model, keras.Model):
        raise TypeError(f"layer_table needs a keras.Model, got {type(model).__name__}")
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            f"model {model.name!r} is not built with known inputs; start it with keras.Input(...) "
            "or call model.build(input_shape) first"
        )
    records: dict[int, list[Any]] = {}
    try:
        _trace(model, list(model.inputs), records, keras)
    except Exception:  # fall back to the shapes Keras recorded when the model was built
        records = {}
    df = pd.DataFrame(_rows(model, "", records, True, keras), columns=list(LAYER_TABLE_COLUMNS))
    df = df.astype(
        {"params": "int64", "trainable_params": "int64", "macs": "Int64", "activations": "Int64"}
    )
    df.attrs["model"] = model.name
    return df


def layer_table_totals(df: pd.DataFrame) -> dict[str, int]:
    """Column sums of a :func:`layer_table` (params, trainable_params, macs, activations).

    Kept out of the table so that summing its columns stays correct. Unknown (``<NA>``)
    entries are skipped. VGG-16 224×224×3: params 138,357,544, activations 15,237,608.
    """
    return {col: int(df[col].sum()) for col in SUM_COLUMNS}


def format_layer_table(df: pd.DataFrame) -> str:
    """The table as aligned text with thousands separators and a final totals line."""
    import pandas as pd

    shown = df.reset_index(drop=True)
    shown["output_shape"] = [_format_shape(v) for v in shown["output_shape"]]
    for col in SUM_COLUMNS:
        shown[col] = ["?" if pd.isna(v) else f"{int(v):,}" for v in shown[col]]
    totals = layer_table_totals(df)
    total_row = {"layer": "TOTAL", "type": "", "output_shape": ""}
    total_row.update({col: f"{totals[col]:,}" for col in SUM_COLUMNS})
    shown.loc[len(shown)] = total_row
    header = list(shown.columns)
    cells = [header, *shown.astype(str).values.tolist()]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    numeric = {header.index(c) for c in SUM_COLUMNS}
    lines = []
    for k, row in enumerate(cells):
        parts = [
            str(v).rjust(widths[i]) if i in numeric else str(v).ljust(widths[i])
            for i, v in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
        if k == 0 or k == len(cells) - 2:
            lines.append("  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def _format_shape(shape: Any) -> str:
    """(224, 224, 64) → '224×224×64'; multi-output → '2, 3'; unknown dims → '?'."""
    if shape is None:
        return "?"
    if any(isinstance(d, tuple) for d in shape):
        return ", ".join(_format_shape(part) for part in shape)
    return "×".join("?" if d is None else str(d) for d in shape)
