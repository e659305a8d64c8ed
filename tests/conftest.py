"""Shared fixtures: paths to the bundled real samples, a CLI runner, and a local portable-runner service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.cli import main

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"
WEB = SAMPLES / "web"
CC_JSONL = WEB / "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
WARC_0 = WEB / "sample-0000.warc.gz"
WARC_1 = WEB / "sample-0001.warc.gz"
WET = WEB / "whirlwind.warc.wet.gz"


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def cli():
    return run_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port}")


@pytest.fixture(scope="session")
def portable_runner_args() -> Iterator[list[str]]:
    """Beam's local job service plus an external worker pool: the portable path Dataflow Runner v2,
    Flink and Spark use. The worker pool starts `python` from PATH, so PATH leads to this interpreter."""
    job_port, pool_port = _free_port(), _free_port()
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    commands = [
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port", str(job_port)],
        [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", "--service_port", str(pool_port)],
    ]
    processes = [
        subprocess.Popen(c, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands
    ]
    try:
        _wait_for_port(job_port)
        _wait_for_port(pool_port)
        yield [
            "--runner",
            "PortableRunner",
            f"--job_endpoint=localhost:{job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{pool_port}",
        ]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory) -> Path:
    """The bundled web samples through the default `prepare` stages, rejected documents kept."""
    out = tmp_path_factory.mktemp("prepared") / "sample"
    assert run_cli("prepare", WEB, "--output", out, "--keep-rejected", "--target-shard-mb", "1") == 0
    return out
