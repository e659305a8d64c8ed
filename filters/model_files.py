"""Turning a model path given by the user into a local file that fastText or KenLM can open.

fastText and KenLM only read local files, but on Dataflow or a portable runner the model usually lives in
object storage (gs://, s3://). `filters/` stays engine-free, so remote paths are fetched by a function
that the pipelines layer registers (`pipelines.model_staging`, built on Beam FileSystems); it is imported
on first use of a URL, which also happens on workers because they run pipeline code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

RemoteFetcher = Callable[[str], str]
_fetcher: RemoteFetcher | None = None


def register_remote_fetcher(fetcher: RemoteFetcher) -> None:
    """Install the function that copies a URL to a local file and returns the local path."""
    global _fetcher
    _fetcher = fetcher


def is_url(path: str) -> bool:
    return "://" in path


def local_model_path(path: str) -> str:
    """`path` itself when local; for a URL, a local copy made by the registered fetcher."""
    if not is_url(path):
        return path
    if _fetcher is None:
        try:
            importlib.import_module("pipelines.model_staging")
        except ImportError as error:
            raise FileNotFoundError(f"cannot fetch {path}: remote model paths need llamaprep's pipelines") from error
    assert _fetcher is not None, "pipelines.model_staging registers a fetcher on import"
    return _fetcher(path)
