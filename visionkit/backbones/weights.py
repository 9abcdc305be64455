"""Backbone weights: ImageNet files through the Keras cache (never waiting on the network),
and weights copied in from a local ``.weights.h5`` file or ``.keras`` model.

ImageNet weights of the ``keras.applications`` families are the files Keras itself
downloads (``…_notop.h5``), cached in ``$KERAS_HOME/models`` (``~/.keras/models`` when
``KERAS_HOME`` is unset; ``/tmp/.keras/models`` when the home folder is not writable).
While a backbone is built with ``weights="imagenet"``, :func:`imagenet_download_guard`
stands in for ``keras.utils.get_file``, so the file name, URL and hash are always the ones
Keras asks for (no copied table to drift out of date):

1. the file is in the cache (and its hash matches): it is used, no network;
2. it is absent: a TCP probe of the download host (2 s timeout) decides; when the host
   answers, Keras downloads the file into the cache as usual;
3. offline: :class:`WeightsNotFoundError` at once, naming the file, the folder to put it
   in and the URL to fetch it from (on a machine with network access).

Keras' own ``get_file`` would instead try the network and hang or retry when offline.
``KERAS_HOME`` is read when the weights are resolved, so tests can point it at an empty
temporary folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from visionkit.models.errors import WeightsNotFoundError
from visionkit.models.saving import load_weights_from_path  # noqa: F401  (re-exported)

PROBE_TIMEOUT_S = 2.0


def keras_cache_dir() -> Path:
    """The folder Keras caches downloaded files in: ``$KERAS_HOME`` or ``~/.keras``."""
    base = os.environ.get("KERAS_HOME")
    if not base:
        home = os.path.expanduser("~")
        base = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    base = os.path.expanduser(base)
    if os.path.isdir(base) and not os.access(base, os.W_OK):
        base = os.path.join("/tmp", ".keras")
    return Path(base)


def network_available(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to the host of ``url`` opens within ``timeout`` seconds."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``"md5"`` or ``"sha256"``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_matches(path: Path, expected: str | None) -> bool:
    if not expected:
        return True
    algorithm = "sha256" if len(expected) == 64 else "md5"
    return file_hash(path, algorithm) == expected.lower()


def missing_weights_message(fname: str, folder: Path, origin: str, *, corrupt: bool = False) -> str:
    """The error text for an ImageNet weights file that is not in the cache."""
    what = "is damaged (its hash does not match)" if corrupt else "is not in the Keras cache"
    return (
        f"ImageNet weights file {fname!r} {what} and the download host cannot be reached "
        f"(offline?). Download it on a machine with network access from\n  {origin}\n"
        f"and place it at\n  {folder / fname}\n(folder {folder}; set KERAS_HOME to use another "
        "cache folder), or build with weights=None or a local weights path."
    )


def _guarded_get_file(real_get_file: Any, probe: Any):
    """A stand-in for ``keras.utils.get_file`` that uses the cache or fails fast offline."""

    def get_file(fname=None, origin=None, *args: Any, **kwargs: Any) -> str:
        cache_subdir = kwargs.get("cache_subdir", "datasets")
        expected = kwargs.get("file_hash") or kwargs.get("md5_hash")
        name = fname or os.path.basename(urllib.parse.urlsplit(origin).path)
        cache = Path(kwargs.get("cache_dir") or keras_cache_dir())
        folder = cache / cache_subdir
        target = folder / name
        if target.is_file():
            if _hash_matches(target, expected):
                return str(target)
            if not probe(origin):
                raise WeightsNotFoundError(
                    missing_weights_message(name, folder, origin, corrupt=True)
                )
        elif not probe(origin):
            raise WeightsNotFoundError(missing_weights_message(name, folder, origin))
        kwargs["cache_dir"] = str(cache)
        return real_get_file(name, origin, *args, **kwargs)

    return get_file


@contextlib.contextmanager
def imagenet_download_guard() -> Iterator[None]:
    """Within this block, Keras application builders resolve weights via the guarded get_file.

    Keras' application modules call ``keras.src.utils.file_utils.get_file`` through the
    module attribute, so replacing that attribute for the duration of the build covers
    every family. Not thread-safe: build backbones with ImageNet weights from one thread.
    """
    from keras.src.utils import file_utils

    real = file_utils.get_file
    file_utils.get_file = _guarded_get_file(real, lambda url: network_available(url))
    try:
        yield
    finally:
        file_utils.get_file = real
