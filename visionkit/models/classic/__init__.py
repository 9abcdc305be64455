"""The classic CNN zoo of the lecture material, LeNet-5 to ResNet, built from scratch.

Importing this package registers every architecture in ``visionkit.models``.
"""

from visionkit.models.classic import (  # noqa: F401
    alexnet,
    cifar_resnet,
    googlenet,
    lenet,
    mlp,
    nin,
    resnet,
    vgg,
)
