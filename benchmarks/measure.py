"""Running one benchmark side in its own process tree and measuring it: wall seconds, CPU seconds (user +
system of the whole tree, workers included), and peak RSS (of the largest process in the tree)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WEBMIX = REPO.parent / "shared" / "bench" / "webmix"


def webmix_shards(count: int | None = None, corpus: str | os.PathLike = WEBMIX) -> list[str]:
    shards = sorted(str(p) for p in Path(corpus).glob("*.jsonl.gz"))
    if not shards:
        raise SystemExit(f"no *.jsonl.gz under {corpus} (the webmix bench corpus, ../shared/bench/webmix)")
    return shards[:count]


def measure(command: list[str], env: dict[str, str] | None = None) -> dict:
    """Run `command` from the repository root; its last stdout line, if JSON, is returned as `summary`."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, stdout=subprocess.PIPE, text=True
    )
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    result = {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "returncode": os.waitstatus_to_exitcode(status),
    }
    lines = output.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result["summary"] = json.loads(lines[-1])
    return result


def prepare_command(inputs: list[str], output: str, *options: str) -> list[str]:
    import sys

    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "prepare",
        *inputs,
        "--output",
        output,
        "--quiet",
        "--print-summary-json",
        "--overwrite",
        *options,
    ]


def cpu_rate(work: Callable[[], int], size: int, seconds: float) -> tuple[float, int]:
    """(MB/s per core, what one pass of `work` returns) over as many passes of `size` input bytes as fit in
    `seconds` of this process's CPU time, after one untimed pass (imports, compiled patterns)."""
    result = work()
    passes, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        work()
        passes += 1
    return size * passes / (time.process_time() - start) / 1e6, result
