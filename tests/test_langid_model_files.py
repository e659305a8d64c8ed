"""Model paths given as URLs are copied once to local disk through Beam FileSystems, so fastText and
KenLM (local files only) can load models kept in gs:// or s3:// on Dataflow and portable-runner workers.
A test-only Beam filesystem (`llamaprep-test://` over local files) stands in for object storage."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from apache_beam.io.localfilesystem import LocalFileSystem

from filters.document import Document
from filters.langid import LangIdConfig, LanguageIdentifier
from filters.model_files import local_model_path
from pipelines import model_staging
from pipelines.model_staging import fetch_to_local

SCHEME = "llamaprep-test"
MODEL_S = Path(__file__).resolve().parent / "data" / "langid" / "model_s.ftz"


class SchemeOverLocalFiles(LocalFileSystem):
    """Beam registers FileSystem subclasses by scheme; this one reads `llamaprep-test:///abs/path`."""

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    @staticmethod
    def _local(path: str) -> str:
        return path.removeprefix(f"{SCHEME}://")

    def exists(self, path: str) -> bool:
        return super().exists(self._local(path))

    def open(self, path, *args, **kwargs):
        return super().open(self._local(path), *args, **kwargs)


def test_url_model_is_fetched_once_and_used(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the default cache lives under it
    url = f"{SCHEME}://{MODEL_S}"
    first = fetch_to_local(url, str(tmp_path / "cache"))
    assert Path(first).read_bytes() == MODEL_S.read_bytes()
    os.utime(first, (1, 1))
    assert fetch_to_local(url, str(tmp_path / "cache")) == first
    assert os.stat(first).st_mtime == 1  # reused, not copied again

    model_staging.install()
    stage = LanguageIdentifier(LangIdConfig(model_path=url, min_score=0.0))
    stage.setup()
    doc = stage.process_batch([Document(id="a", text="这是一个简单的中文句子。", source="s")])[0]
    assert doc.language == "zh-hans"
    assert len(list((tmp_path / "llamaprep-models").iterdir())) == 1


def test_unreadable_urls_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        fetch_to_local(f"{SCHEME}://{tmp_path}/missing.bin", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="cannot read model"):
        local_model_path("nosuchscheme://bucket/model.bin")
