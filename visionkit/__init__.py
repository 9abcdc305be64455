"""visionkit: transfer-learning computer vision on TensorFlow/Keras.

Data flows one way: ``visionkit.data`` → ``visionkit.models`` → ``visionkit.train`` →
``visionkit.evaluate`` → ``visionkit.export`` → ``visionkit.predict``.
``visionkit.analysis`` holds the CNN arithmetic of the lecture material, and
``visionkit.api`` the command line's verbs as functions (``from visionkit import api as vk;
vk.train("classify", data="photos/")``).

``import visionkit`` stays light: TensorFlow is imported by the submodules that need it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
