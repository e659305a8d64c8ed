"""The same `prepare` job on other runners: Beam's portable path (what Dataflow Runner v2, Flink and
Spark use), multi-process local workers, and a Dataflow job built offline with --dry_run."""

from __future__ import annotations

import tarfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2

from filters.prepared import read_manifest
from pipelines.config import load_prepare_config
from pipelines.exchange import ShuffleExchange
from pipelines.prepare import build_prepare
from tests.conftest import REPO, WEB

pytestmark = pytest.mark.slow


def shard_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((directory / "documents").iterdir())}


def test_portable_runner_writes_the_same_shards(prepared_sample, portable_runner_args, tmp_path, cli):
    out = tmp_path / "portable"
    assert cli("prepare", WEB, "--output", out, "--target-shard-mb", "1", *portable_runner_args) == 0
    assert shard_bytes(out) == shard_bytes(prepared_sample)
    ours, theirs = read_manifest(str(out))["counts"], read_manifest(str(prepared_sample))["counts"]
    assert ours == theirs  # metrics come back through the job service too


def test_multi_processing_workers_write_the_same_shards(prepared_sample, tmp_path, cli):
    out = tmp_path / "workers"
    assert cli("prepare", WEB, "--output", out, "--target-shard-mb", "1", "--workers", "2") == 0
    assert shard_bytes(out) == shard_bytes(prepared_sample)
    assert read_manifest(str(out))["counts"] == read_manifest(str(prepared_sample))["counts"]


def test_dataflow_job_builds_offline_with_dry_run(monkeypatch):
    """Build the Dataflow job for gs:// data without network: graph and staged package are checked."""
    monkeypatch.chdir(REPO)
    options = PipelineOptions(
        [
            "--runner=DataflowRunner",
            "--project=my-project",
            "--region=us-central1",
            "--temp_location=gs://my-bucket/tmp",
            "--setup_file=./setup.py",
            "--dry_run=True",
        ]
    )
    pipeline = beam.Pipeline(options=options)
    config = load_prepare_config(None)
    build_prepare(pipeline, "gs://my-bucket/out", config, True, ShuffleExchange())
    job = pipeline.run().job
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    # one phase per run of per-document stages, each dedup stage's keys through a GroupByKey, then the shards
    expected = ["ReadTasks", "p0/Run", "p1/Run", "p2/Run", "p3/Run", "Compose/Write", "Summary/Save"]
    expected += ["g1-exact_dedup/Shuffle", "g2-line_dedup/Shuffle", "g3-minhash_dedup/Shuffle"]
    expected += ["g3-minhash_dedup/Components", "g3-minhash_dedup-survivors/Shuffle", "p3/Shuffle"]
    for name in expected:
        assert name in names
    staged = {}
    for environment in job.proto_pipeline.components.environments.values():
        for dependency in environment.dependencies:
            role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dependency.role_payload)
            staged[role.staged_name] = beam_runner_api_pb2.ArtifactFilePayload.FromString(dependency.type_payload).path
    sdist = Path(staged["workflow.tar.gz"])
    assert sdist.name.startswith("llamaprep-")
    with tarfile.open(sdist) as archive:
        members = {Path(*Path(m).parts[1:]).as_posix() for m in archive.getnames()}
    for module in ("pipelines/prepare.py", "pipelines/dedup.py", "filters/models/lid.176.ftz", "setup.cfg"):
        assert module in members


SOURCES = REPO / "data" / "samples" / "sources"


@pytest.mark.parametrize(
    ("recipe", "inputs"),
    [
        ("llama-wikipedia", ["wikipedia/enwiki-sample-shared-pages-articles-multistream.xml.bz2"]),
        ("llama-stackexchange", ["stackexchange/conlang.meta.stackexchange.com.7z"]),
        ("llama-github", ["github/repos.tar.gz", "github/github_repos_contents.jsonl"]),
        ("llama-arxiv", ["arxiv/scipy-1.0.tar.gz", "arxiv/dnest4/ms.tex"]),
    ],
)
def test_source_recipes_write_the_same_shards_on_the_portable_runner(
    recipe, inputs, portable_runner_args, tmp_path, cli
):
    paths = [SOURCES / name for name in inputs]
    local, portable = tmp_path / "local", tmp_path / "portable"
    assert cli("prepare", "--recipe", recipe, *paths, "-o", local, "-q") == 0
    assert cli("prepare", "--recipe", recipe, *paths, "-o", portable, "-q", *portable_runner_args) == 0
    assert shard_bytes(portable) == shard_bytes(local)
    assert read_manifest(str(portable))["counts"] == read_manifest(str(local))["counts"]
    assert read_manifest(str(local))["counts"]["kept"] > 0
