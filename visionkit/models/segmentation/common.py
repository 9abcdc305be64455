"""Pieces every segmentation model shares: input checks and the float32 per-pixel head.

Output convention (all segmentation models): per-pixel class probabilities, float32 even
under mixed precision. ``num_classes >= 2`` gives a softmax over the last axis,
(B, H, W, C); ``num_classes=1`` gives a sigmoid foreground probability, (B, H, W, 1).
Binary tasks use the 2-class softmax by default; ``num_classes=1`` is the opt-in
single-channel sigmoid form (the losses in ``visionkit.train.losses_segmentation``
accept both). Decoder and head layers are named ``seg_*`` (fine-tuning head prefix).
"""

from __future__ import annotations

from keras import layers

from visionkit.models.errors import ModelError

SEG_PREFIX = "seg_"


def check_divisible(input_shape, factor: int, model: str) -> tuple[int, int, int]:
    """Static (H, W, C) with H and W multiples of ``factor``; ModelError otherwise."""
    shape = tuple(input_shape)
    if len(shape) != 3 or any(d is None for d in shape):
        raise ModelError(f"{model} needs a static input_shape (H, W, C), got {shape!r}")
    h, w, _ = shape
    if h % factor or w % factor:
        near = lambda n: max(factor, round(n / factor) * factor)  # noqa: E731
        raise ModelError(
            f"{model} needs height and width divisible by {factor} (its down- and up-sampling "
            f"must meet again), got {h}×{w}; try {near(h)}×{near(w)}"
        )
    return int(h), int(w), int(shape[2])


def probability_head(x, num_classes: int, *, upsample: int = 1, name: str = "seg"):
    """1×1 conv to ``num_classes`` logits, optional bilinear ×``upsample``, softmax/sigmoid.

    All layers are float32 (``dtype="float32"``) so the probabilities stay exact under a
    mixed_float16 policy. Layer names: ``{name}_logits``, ``{name}_upsample``, ``{name}_probs``.
    """
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1, got {num_classes}")
    x = layers.Conv2D(num_classes, 1, dtype="float32", name=f"{name}_logits")(x)
    if upsample > 1:
        x = layers.UpSampling2D(
            upsample, interpolation="bilinear", dtype="float32", name=f"{name}_upsample"
        )(x)
    activation = "sigmoid" if num_classes == 1 else "softmax"
    return layers.Activation(activation, dtype="float32", name=f"{name}_probs")(x)


def register_encoder_variants(
    variants: dict,
    build,
    *,
    family: str,
    paper: str,
    doc: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    namespace: dict,
) -> None:
    """Register one model per ``variants`` entry ``name: (backbone, title, params,
    preprocessing, offline note)`` as ``build(backbone, num_classes=, input_shape=, name=, **kw)``,
    with its docstring from ``doc`` and the backbone recorded in the registry; the builders
    are also put in ``namespace`` (the module's globals) under their names."""
    from visionkit.models.registry import register_model

    defaults = {"num_classes": num_classes, "input_shape": input_shape}

    def builder_for(name: str, backbone: str):
        def builder(**kwargs):
            return build(backbone, name=name, **{**defaults, **kwargs})

        return builder

    for name, (backbone, title, params, preprocessing, offline) in variants.items():
        builder = builder_for(name, backbone)
        builder.__name__ = builder.__qualname__ = name
        builder.__doc__ = doc.format(
            title=title,
            backbone=backbone,
            params=params,
            preprocessing=preprocessing,
            offline=offline,
        )
        namespace[name] = register_model(
            task="segment",
            family=family,
            paper=paper,
            input_shape=input_shape,
            num_classes=num_classes,
            preprocessing=preprocessing,
            params=params,
            min_input_size=32,
            backbone=backbone,
        )(builder)
