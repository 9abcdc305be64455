"""Errors raised by the data layer.

:class:`DataError` is for structural impossibilities (a path that does not exist, no images
at all, an annotation file that cannot be parsed as a whole, a required column missing).
Its message names the file (and line or key) and says what to do. Problems confined to one
line or object of an annotation file are not errors: they become
:class:`visionkit.data.types.Fault` records on the dataset.
"""

from __future__ import annotations


class DataError(ValueError):
    """A dataset cannot be read at all; the message names the file and what to do."""
