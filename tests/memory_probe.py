"""How many bytes a computation leaves allocated on the CPU, from the profiler's allocation records: after a
forward pass, that is what autograd keeps for backward (including what selective checkpointing caches out
of sight of saved-tensor hooks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.profiler import ProfilerActivity, profile


def bytes_left_allocated(compute: Callable[[], Any]) -> tuple[int, Any]:
    """Net CPU bytes allocated by `compute()` and still alive when it returns, and its result (kept alive)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = compute()
    return sum(event.self_cpu_memory_usage for event in prof.events()), result
