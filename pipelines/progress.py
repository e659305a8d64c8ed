"""What a running `prepare` shows: one live progress line on the local runner, the job's console URL and
state on Dataflow.

The local line is driven by the completion markers the units write (`pipelines.workdir`), polled from a
thread of the driver, so it works the same with one in-process worker or several worker processes and
costs the workers nothing. It uses tqdm (rate, ETA, terminal width) and is off with `--quiet` or when
stderr is not a terminal.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from pipelines.workdir import WorkDir

POLL_SECONDS = 0.5


class Progress:
    """Files done/total (over all phases), documents read and kept, input MB/s and ETA."""

    def __init__(self, workdir: WorkDir, steps: list[str], tasks: int, enabled: bool) -> None:
        self._workdir = workdir
        self._steps = steps
        self._tasks = tasks
        self._enabled = enabled and tasks > 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, set[str]] = {step: set() for step in steps}
        self._read = self._kept = self._input_bytes = 0

    def __enter__(self) -> Progress:
        if self._enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self._tasks * len(self._steps),
                unit="file",
                desc="prepare",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=True,
            )
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._loop, name="llamaprep-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._update()
            self._bar.close()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._update()

    def _update(self) -> None:
        first, last = self._steps[0], self._steps[-1]
        for step in self._steps:
            for unit in set(self._workdir.markers(step)) - self._seen[step]:
                self._seen[step].add(unit)
                if step in (first, last):
                    marker = self._workdir.read_marker(step, unit) or {"outputs": [{}]}
                    counts = marker["outputs"][0].get("counts", {})
                    self._read += counts.get("read", 0)
                    self._input_bytes += counts.get("input_bytes", 0)
                    self._kept += counts.get("kept", 0)
        done = sum(len(units) for units in self._seen.values())
        current = next((i for i, s in enumerate(self._steps) if len(self._seen[s]) < self._tasks), len(self._steps) - 1)
        seconds = max(time.monotonic() - self._started, 1e-6)
        self._bar.set_description(f"prepare phase {current + 1}/{len(self._steps)}", refresh=False)
        self._bar.set_postfix_str(
            f"read {self._read:,} kept {self._kept:,} {self._input_bytes / seconds / 1e6:.1f} MB/s", refresh=False
        )
        self._bar.n = done
        self._bar.refresh()


def follow_dataflow(result: Any, options: Any, quiet: bool) -> None:
    """Print a Dataflow job's console URL, then its state changes until it ends."""
    job_id = getattr(result, "job_id", None)
    if job_id is None or not callable(job_id):
        return
    from apache_beam.options.pipeline_options import GoogleCloudOptions
    from apache_beam.runners.runner import PipelineState

    cloud = options.view_as(GoogleCloudOptions)
    print(
        f"Dataflow job {job_id()}: https://console.cloud.google.com/dataflow/jobs/{cloud.region}/{job_id()}"
        f"?project={cloud.project}",
        file=sys.stderr,
    )
    state = None
    while True:
        result.wait_until_finish(duration=30_000)
        if result.state != state and not quiet:
            state = result.state
            print(f"Dataflow job state: {state}", file=sys.stderr)
        if PipelineState.is_terminal(result.state):
            return
