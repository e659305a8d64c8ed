"""What a kill costs: CPU time of `prepare` resumed after a kill at ~80% of a full run, against the full run.

1. a full run (default stages, one in-process worker) on the first N webmix shards: its CPU seconds T
   (the baseline, measured in the same run);
2. the same command again into a fresh output, killed with SIGKILL once its CPU time reaches
   `--kill-at` x T (0.8 by default);
3. the same command once more: it resumes from the completion markers. Its CPU seconds over T is the
   figure (goal: at most 0.35), and its shards must be byte-identical to the full run's.

    python benchmarks/resume.py [--shards 6] [--kill-at 0.8]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from measure import REPO, measure, prepare_command, webmix_shards  # benchmarks/measure.py

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (the in-process runner does all work in one process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def kill_at(command: list[str], seconds: float) -> float:
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    used = 0.0
    while process.poll() is None:
        used = cpu_seconds(process.pid)
        if used >= seconds:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return used
        time.sleep(0.05)
    raise SystemExit("the run finished before it could be killed; lower --kill-at")


def shard_bytes(directory: str) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(Path(directory).rglob("part-*.arrow"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--kill-at", type=float, default=0.8, help="share of the full run's CPU time")
    args = parser.parse_args()
    inputs = webmix_shards(args.shards)
    with tempfile.TemporaryDirectory() as tmp:
        full = measure(prepare_command(inputs, f"{tmp}/full", "--keep-rejected"))
        command = prepare_command(inputs, f"{tmp}/killed", "--keep-rejected")
        command.remove("--overwrite")  # the resumed run must find the killed run's work
        killed_at = kill_at(command, args.kill_at * full["cpu_s"])
        resumed = measure(command)
        same = shard_bytes(f"{tmp}/full") == shard_bytes(f"{tmp}/killed")
    if full["returncode"] or resumed["returncode"]:
        raise SystemExit("a prepare run failed")
    print(f"prepare, default stages, {len(inputs)} webmix shards ({full['summary']['read']:,} documents)")
    print(f"  full run (baseline):           {full['cpu_s']:7.1f} CPU s  {full['wall_s']:7.1f} s wall")
    print(f"  killed at:                     {killed_at:7.1f} CPU s  ({killed_at / full['cpu_s']:.0%} of the full run)")
    print(f"  resumed run:                   {resumed['cpu_s']:7.1f} CPU s  {resumed['wall_s']:7.1f} s wall")
    print(
        f"resumed / full CPU: {resumed['cpu_s'] / full['cpu_s']:.2f} (goal <= 0.35); "
        f"shards byte-identical to the full run: {same}"
    )


if __name__ == "__main__":
    main()
