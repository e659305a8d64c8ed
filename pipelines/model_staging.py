"""Copies model files given as URLs (gs://, s3://, anything Beam FileSystems reads) to local disk.

fastText and KenLM open local files only. Each worker copies a model once into a per-URL cache file under
the temp directory (written to a temporary name, then renamed, so concurrent workers never read a partial
copy) and every later load on that machine reuses it. `install` gives the fetcher to `filters.model_files`;
every pipeline that sets up stages calls it first.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tempfile

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from filters.model_files import register_remote_fetcher

CACHE_DIR_NAME = "llamaprep-models"
UNCOMPRESSED = CompressionTypes.UNCOMPRESSED


def fetch_to_local(url: str, cache_dir: str | None = None) -> str:
    """A local copy of the file at `url`, made once per machine."""
    cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), CACHE_DIR_NAME)
    os.makedirs(cache_dir, exist_ok=True)
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    local = os.path.join(cache_dir, f"{digest}-{posixpath.basename(url.rstrip('/'))}")
    if os.path.exists(local):
        return local
    try:
        found = FileSystems.exists(url)
    except ValueError as error:  # no Beam filesystem for the scheme (e.g. gs:// without apache-beam[gcp])
        raise FileNotFoundError(f"cannot read model {url}: {error}") from None
    if not found:
        raise FileNotFoundError(f"model file not found: {url}")
    handle, partial = tempfile.mkstemp(dir=cache_dir, prefix=".partial-")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            FileSystems.open(url, compression_type=CompressionTypes.UNCOMPRESSED) as src,
        ):
            shutil.copyfileobj(src, out, length=1 << 20)
        os.replace(partial, local)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return local


def install() -> None:
    """Let stages load models from URLs (called in each worker's setup, before the stages' own)."""
    register_remote_fetcher(fetch_to_local)
