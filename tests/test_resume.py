"""A killed `prepare` continues where it stopped and ends with the same bytes; two runs never share an
output; a half-written file is never taken for a finished one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from filters.document import DOCUMENT_SCHEMA
from filters.prepared import read_manifest, shard_paths
from pipelines.arrow_files import AtomicArrowWriter
from pipelines.workdir import WorkDir
from tests.conftest import REPO, WEB

ARGS = ["--keep-rejected", "--target-shard-mb", "0.5"]


def output_bytes(directory: Path) -> dict[str, bytes]:
    paths = shard_paths(str(directory)) + shard_paths(str(directory), "rejected")
    return {str(Path(p).relative_to(directory)): Path(p).read_bytes() for p in paths}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("resume") / "uninterrupted"
    assert run_cli("prepare", WEB, "--output", out, *ARGS) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fail_after", [3, 9, 17])
def test_a_run_failing_after_n_units_resumes_to_identical_shards(
    fail_after, uninterrupted, tmp_path, cli, monkeypatch, capsys
):
    out = tmp_path / "out"
    monkeypatch.setenv("LLAMAPREP_FAIL_AFTER_UNITS", str(fail_after))
    with pytest.raises(Exception, match="LLAMAPREP_FAIL_AFTER_UNITS"):
        cli("prepare", WEB, "--output", out, *ARGS)
    assert not (out / "manifest.json").exists() and not (out / ".lock").exists()
    done = sum(len(list((step / "done").iterdir())) for step in (out / ".work").iterdir() if (step / "done").is_dir())
    assert done == fail_after  # every finished unit left its marker, nothing else did
    monkeypatch.delenv("LLAMAPREP_FAIL_AFTER_UNITS")
    capsys.readouterr()
    assert cli("prepare", WEB, "--output", out, *ARGS) == 0
    assert "resuming the unfinished run" in capsys.readouterr().err
    assert output_bytes(out) == output_bytes(uninterrupted)
    ours, theirs = read_manifest(str(out)), read_manifest(str(uninterrupted))
    assert ours["counts"] == theirs["counts"] and ours["metrics"] == theirs["metrics"]
    assert ours["resumed"] and not theirs["resumed"]
    assert not (out / ".work").exists()


def test_an_unfinished_run_of_other_settings_is_refused_then_overwritten(tmp_path, cli, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setenv("LLAMAPREP_FAIL_AFTER_UNITS", "2")
    with pytest.raises(Exception, match="LLAMAPREP_FAIL_AFTER_UNITS"):
        cli("prepare", WEB, "--output", out, *ARGS)
    monkeypatch.delenv("LLAMAPREP_FAIL_AFTER_UNITS")
    assert cli("prepare", WEB, "--output", out, *ARGS, "--stages", "normalize") == 2
    message = capsys.readouterr().err
    assert "unfinished run of other inputs or settings" in message and "--overwrite" in message
    assert cli("prepare", WEB, "--output", out, *ARGS, "--stages", "normalize", "--overwrite") == 0
    assert read_manifest(str(out))["config"]["stages"] == ["normalize"]


def test_a_second_run_into_the_same_output_is_refused_while_the_first_lives(tmp_path, cli, capsys):
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"host": socket.gethostname(), "pid": sleeper.pid, "started": "now", "heartbeat": time.time()}
        (out / ".lock").write_text(json.dumps(lock))
        assert cli("prepare", WEB, "--output", out) == 2
        assert f"pid {sleeper.pid}" in capsys.readouterr().err
        assert not (out / "documents").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert cli("prepare", WEB, "--output", out, "--stages", "normalize") == 0  # the owner is gone: taken over
    assert "taking over the lock" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_in_the_middle_then_the_same_command_finishes_identically(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "pipelines.cli", "prepare", str(WEB), "--output", str(out), *ARGS, "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    marker_dir = WorkDir(str(out)).marker_path("p2", "x").rsplit("/", 1)[0]
    deadline = time.time() + 120
    while not (os.path.isdir(marker_dir) and os.listdir(marker_dir)) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists()
    assert subprocess.run(command, cwd=REPO, env=env).returncode == 0
    assert output_bytes(out) == output_bytes(uninterrupted)


def test_a_writer_killed_mid_file_leaves_only_a_hidden_temporary(tmp_path):
    path = tmp_path / "documents" / "part-00000-of-00001.arrow"
    writer = AtomicArrowWriter(str(path), DOCUMENT_SCHEMA, "zstd")
    writer.write_table(pa.Table.from_pylist([{"id": "1", "text": "x", "source": "s"}] * 3000, schema=DOCUMENT_SCHEMA))
    # (the process dies here: close() never runs)
    assert not path.exists()
    assert [p.name.startswith(".") for p in path.parent.iterdir()] == [True]
    with pytest.raises(FileNotFoundError, match=r"no manifest\.json"):
        shard_paths(str(tmp_path))  # readers take shards from a manifest only, and there is none


def test_progress_line_counts_files_documents_and_phases(tmp_path, capsys):
    from pipelines.progress import Progress

    workdir = WorkDir(str(tmp_path))
    with Progress(workdir, ["p0", "p1"], tasks=2, enabled=True):
        workdir.write_marker("p0", "t0000000", {"outputs": [{"counts": {"read": 10, "input_bytes": 5_000_000}}]})
        workdir.write_marker("p0", "t0000001", {"outputs": [{"counts": {"read": 7, "input_bytes": 1}}]})
        workdir.write_marker("p1", "t0000000", {"outputs": [{"counts": {"kept": 4}}]})
    line = capsys.readouterr().err.strip().splitlines()[-1].split("\r")[-1]
    assert "prepare phase 2/2" in line and "3/4" in line and "read 17 kept 4" in line and "MB/s" in line
    with Progress(workdir, ["p0", "p1"], tasks=2, enabled=False):
        pass
    assert capsys.readouterr().err == ""


def test_dataflow_jobs_print_their_console_url_and_states(capsys):
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.progress import follow_dataflow

    class FakeJob:
        states = iter(["RUNNING", "RUNNING", "DONE"])
        state = "PENDING"

        def job_id(self) -> str:
            return "2026-11-30_job"

        def wait_until_finish(self, duration: int) -> None:
            self.state = next(self.states)

    options = PipelineOptions(["--project=my-project", "--region=europe-west4"])
    follow_dataflow(FakeJob(), options, quiet=False)
    err = capsys.readouterr().err
    assert "https://console.cloud.google.com/dataflow/jobs/europe-west4/2026-11-30_job?project=my-project" in err
    assert err.count("Dataflow job state") == 2 and "DONE" in err
