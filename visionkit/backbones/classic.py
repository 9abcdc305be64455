"""Backbones from visionkit's classic zoo (``visionkit.models.classic``), built from scratch.

Their stage outputs are identity layers named ``stage1_out``, ``stage2_out``, …; the taps
below name the stage that reaches each stride (checked by the tests). Preprocessing is the
zoo's own: x / 255 inside the model. There are no published ImageNet weights for these:
``weights="imagenet"`` raises a clear error; pass ``None`` or a path.

Names: ``resnet18``, ``resnet34``, ``vgg11``, ``vgg13``, ``alexnet`` (P3–P5; 'valid'
11×11/4 stem, minimum input 67), ``googlenet`` (P2–P5), and ``zoo_resnet50/101/152``,
``zoo_vgg16/19`` for the zoo versions of the names that ``keras.applications`` owns
(those win the plain names because they have ImageNet weights). LeNet, NiN, the MLP and
the CIFAR ResNets are left out: none reaches stride 32 with sensible maps.
"""

from __future__ import annotations

from visionkit.backbones.registry import register_backbone

_UNIT = "x / 255 (uint8 pixels to [0, 1]), inside the model"


def _zoo_builder(model_name: str, *, has_include_top: bool):
    """Build the zoo model ``model_name``: without its head where the builder allows it,
    else the full model (one class), which ``create_backbone`` cuts at the stage outputs."""

    def build(*, input_shape, weights: str | None):
        from visionkit.models import create_model

        if has_include_top:
            return create_model(model_name, input_shape=input_shape, include_top=False)
        return create_model(model_name, input_shape=input_shape, num_classes=1)

    build.__name__ = build.__qualname__ = f"build_zoo_{model_name}"
    return build


def _register(
    name: str,
    model_name: str,
    *,
    family: str,
    paper: str,
    stages: dict[str, int],
    blocks: tuple[str, ...],
    has_include_top: bool,
    size: int = 224,
    min_input_size: int = 32,
    notes: str = "",
) -> None:
    register_backbone(
        name,
        _zoo_builder(model_name, has_include_top=has_include_top),
        family=family,
        paper=paper,
        input_size=(size, size, 3),
        preprocessing=_UNIT,
        preprocess_mode="unit",
        has_imagenet=False,
        taps={level: f"stage{stage}_out" for level, stage in stages.items()},
        blocks=blocks,
        min_input_size=min_input_size,
        source=f"visionkit.models.{model_name}",
        notes=notes,
        tags=("zoo",),
    )


_RESNET_PAPER = "He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR)"
_RESNET_STAGES = {"P2": 1, "P3": 2, "P4": 3, "P5": 4}
_RESNET_BLOCKS = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
    "resnet152": (3, 8, 36, 3),
}
for _model, _counts in _RESNET_BLOCKS.items():
    _register(
        _model if _model in ("resnet18", "resnet34") else f"zoo_{_model}",
        _model,
        family="zoo_resnet",
        paper=_RESNET_PAPER,
        stages=_RESNET_STAGES,
        blocks=(
            "stem",
            *(
                f"stage{s}_block{b}"
                for s, n in enumerate(_counts, start=1)
                for b in range(1, n + 1)
            ),
        ),
        has_include_top=True,
    )

_VGG_PAPER = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks (ICLR)"
for _model in ("vgg11", "vgg13", "vgg16", "vgg19"):
    _register(
        _model if _model in ("vgg11", "vgg13") else f"zoo_{_model}",
        _model,
        family="zoo_vgg",
        paper=_VGG_PAPER,
        stages={"P2": 2, "P3": 3, "P4": 4, "P5": 5},
        blocks=tuple(f"block{i}" for i in range(1, 6)),
        has_include_top=True,
    )

_register(
    "alexnet",
    "alexnet",
    family="zoo_alexnet",
    paper="Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep CNNs",
    stages={"P3": 1, "P4": 2, "P5": 3},
    blocks=("conv1", "conv2", "conv3", "conv4", "conv5"),
    has_include_top=False,
    size=227,
    min_input_size=67,
    notes="'valid' 11×11/4 stem and 3×3/2 pools: 227 → 27, 13, 6 for P3–P5; no P2.",
)

_register(
    "googlenet",
    "googlenet",
    family="zoo_googlenet",
    paper="Szegedy et al. 2015, Going Deeper with Convolutions (CVPR)",
    stages={"P2": 2, "P3": 3, "P4": 4, "P5": 5},
    blocks=(
        "conv1",
        "conv2",
        *(f"inception_{k}" for k in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")),
    ),
    has_include_top=False,
)
