"""The work directory of a `prepare` run: where its unit outputs, completion markers and lock live.

    OUT/.lock                        the running job's owner (host, pid, heartbeat): one run at a time
    OUT/.work/run.json               fingerprint of the inputs and config this work belongs to
    OUT/.work/tasks.jsonl            the run's tasks (input files sorted by path), one JSON line each
    OUT/.work/<step>/<kind>/<unit>.arrow   what a unit of a step wrote (documents, keys, decisions)
    OUT/.work/<step>/done/<unit>.json      its completion marker: written after every file it names
                                           was renamed into place, so a marker means finished work

A unit (a task of a phase, a partition of a dedup stage, a final shard) first looks for its marker and,
when present, returns what the marker recorded instead of working again: a run killed at any point
continues where it stopped, and since every unit is deterministic the final shards are byte-identical to
an uninterrupted run's. The manifest is written after the last unit, then `.work` is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from filters.options import ConfigError
from pipelines.arrow_files import delete, exists, is_local, join, read_bytes, write_bytes

WORK_DIR_NAME = ".work"
LOCK_NAME = ".lock"
RUN_NAME = "run.json"
TASKS_NAME = "tasks.jsonl"
DONE = "done"
LOCK_HEARTBEAT_SECONDS = 20
LOCK_STALE_SECONDS = 120  # a lock not refreshed for this long belongs to a run that is gone


class WorkDir:
    """Paths and markers of one run's work directory."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.root = join(output, WORK_DIR_NAME)

    def file(self, step: str, kind: str, unit: str) -> str:
        return join(self.root, step, kind, f"{unit}.arrow")

    def marker_path(self, step: str, unit: str) -> str:
        return join(self.root, step, DONE, f"{unit}.json")

    def read_marker(self, step: str, unit: str) -> dict[str, Any] | None:
        path = self.marker_path(step, unit)
        if not exists(path):
            return None
        return json.loads(read_bytes(path))

    def write_marker(self, step: str, unit: str, info: dict[str, Any]) -> None:
        write_bytes(self.marker_path(step, unit), json.dumps(info, sort_keys=True).encode("utf-8"))

    def markers(self, step: str) -> Iterator[str]:
        """Names of the finished units of a step (local work directories only: used for progress)."""
        folder = join(self.root, step, DONE)
        if is_local(folder) and os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.endswith(".json"):
                    yield name[: -len(".json")]

    @property
    def run_path(self) -> str:
        return join(self.root, RUN_NAME)

    @property
    def tasks_path(self) -> str:
        return join(self.root, TASKS_NAME)

    def read_run(self) -> dict[str, Any] | None:
        return json.loads(read_bytes(self.run_path)) if exists(self.run_path) else None

    def start(self, run: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
        """Record a new run: its tasks first, then run.json (which makes the directory resumable)."""
        write_bytes(self.tasks_path, "".join(json.dumps(t, sort_keys=True) + "\n" for t in tasks).encode("utf-8"))
        write_bytes(self.run_path, json.dumps(run, indent=2, sort_keys=True).encode("utf-8"))

    def remove(self) -> None:
        delete([self.root])


def unit_of_task(index: int) -> str:
    return f"t{index:07d}"


def fingerprint(parts: dict[str, Any]) -> str:
    """A stable hash of what determines a run's output (inputs with their sizes, config, options)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """`OUT/.lock`: refuses a second run into the same output while the first is alive.

    Created exclusively on local disks (O_EXCL). The owner refreshes it every LOCK_HEARTBEAT_SECONDS; a lock
    whose process is gone (same host) or that was not refreshed for LOCK_STALE_SECONDS (a lost machine) is
    taken over, and the new owner says so."""

    def __init__(self, output: str) -> None:
        self.path = join(output, LOCK_NAME)
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": utc_timestamp()}
        self.took_over: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        for _ in range(2):
            if self._create():
                self._thread = threading.Thread(target=self._heartbeat, name="llamaprep-lock", daemon=True)
                self._thread.start()
                return
            holder = self._holder()
            if holder is not None and not _stale(holder):
                raise ConfigError(
                    f"another prepare run (host {holder.get('host')}, pid {holder.get('pid')}, started "
                    f"{holder.get('started')}) is writing to {os.path.dirname(self.path) or '.'}; wait for it to "
                    f"finish or stop it (a lock not refreshed for {LOCK_STALE_SECONDS}s is taken over)"
                )
            self.took_over = holder
            delete([self.path])
        raise ConfigError(f"cannot take the lock {self.path}")

    def _record(self) -> bytes:
        return json.dumps({**self.owner, "heartbeat": time.time()}).encode("utf-8")

    def _create(self) -> bool:
        data = self._record()
        if is_local(self.path):
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        if exists(self.path):  # object stores have no exclusive create: best effort
            return False
        write_bytes(self.path, data)
        return True

    def _holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(read_bytes(self.path))
        except (OSError, ValueError):
            return None

    def _heartbeat(self) -> None:
        while not self._stop.wait(LOCK_HEARTBEAT_SECONDS):
            write_bytes(self.path, self._record())

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        holder = self._holder()
        if holder is not None and holder.get("pid") == self.owner["pid"] and holder.get("host") == self.owner["host"]:
            delete([self.path])


def _stale(holder: dict[str, Any]) -> bool:
    if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1))):
        return True
    return time.time() - float(holder.get("heartbeat", 0)) > LOCK_STALE_SECONDS


def utc_timestamp() -> str:
    """Now, in UTC, to the second (run, lock and manifest times)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class UnitRunner:
    """Base of everything that runs as resumable units (phase tasks, dedup partitions, final shards):
    `run` returns a finished unit's recorded outputs, or does the work and records them."""

    step: str

    def __init__(self, output: str, step: str) -> None:
        self.output = output
        self.step = step

    def setup(self) -> None:
        self.workdir = WorkDir(self.output)

    def unit_name(self, item: dict[str, Any]) -> str:
        return item["unit"]

    def run(self, item: dict[str, Any], gather: Any) -> list[dict[str, Any]]:
        name = self.unit_name(item)
        marker = self.workdir.read_marker(self.step, name)
        if marker is not None:
            return marker["outputs"]
        outputs = self.work(item, name, gather())
        self.workdir.write_marker(self.step, name, {"outputs": outputs})
        fault_injection.unit_finished()
        return outputs

    def work(self, item: dict[str, Any], name: str, rows: Any) -> list[dict[str, Any]]:
        raise NotImplementedError


class _FaultInjection:
    """A test hook: with LLAMAPREP_FAIL_AFTER_UNITS=N set, the N-th unit finished in a process raises
    after its marker is written, which kills the run at a known point (the resume tests use it)."""

    ENV = "LLAMAPREP_FAIL_AFTER_UNITS"

    def __init__(self) -> None:
        self.finished = 0

    def reset(self) -> None:
        self.finished = 0

    def unit_finished(self) -> None:
        limit = os.environ.get(self.ENV)
        if not limit:
            return
        self.finished += 1
        if self.finished >= int(limit):
            raise InjectedFault(f"{self.ENV}={limit}: stopping after {self.finished} units")


class InjectedFault(RuntimeError):
    """Raised by the fault-injection test hook."""


fault_injection = _FaultInjection()
