"""Turning a model path given by the user into a local file that fastText or KenLM can open.

fastText and KenLM only read local files, but on Dataflow or a portable runner the model usually lives in
object storage (gs://, s3://). `filters/` stays engine-free and imports nothing from the layers above it,
so remote paths are fetched by a function the pipelines layer injects (`pipelines.model_staging.install`,
built on Beam FileSystems) in each worker's setup, before any stage loads its model.
"""

from __future__ import annotations

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
        raise FileNotFoundError(
            f"cannot read model {path}: remote model files are fetched by llamaprep's pipelines "
            "(pipelines.model_staging.install); give a local path here"
        )
    return _fetcher(path)
