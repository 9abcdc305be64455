"""Errors raised while building or loading models."""


class ModelError(ValueError):
    """A model cannot be built or loaded as asked; the message says what to change."""


class WeightsNotFoundError(FileNotFoundError):
    """A weights file is not on this machine (and could not be downloaded); says where to put it."""
