"""Errors raised while building or loading models."""


class ModelError(ValueError):
    """A model cannot be built or loaded as asked; the message says what to change."""
