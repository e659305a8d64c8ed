"""Training metrics: one record per logged step to the console (with a progress bar when tqdm is installed
and the console is a terminal),
to OUTPUT/metrics.jsonl, and to TensorBoard (OUTPUT/tensorboard) when it is installed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

# Dense bf16 tensor-core peaks from NVIDIA's datasheets (half the "with sparsity" figures), FLOP/s, matched
# in this order against torch.cuda.get_device_name: the PCIe and NVL cards run slower than the SXM ones
# (H100 PCIe 1513/2, H100 NVL and H200 NVL 1671/2, H100 and H200 SXM 1979/2 TFLOP/s).
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H200 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("A100", 312e12),
)


def peak_flops(device: torch.device, override_tflops: float | None = None) -> float | None:
    """The device's dense bf16 peak, for model FLOPs utilization; None when unknown (CPUs)."""
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)


class MetricsLogger:
    def __init__(self, output: str | os.PathLike, enabled: bool, total_steps: int, start_step: int = 0) -> None:
        self.enabled = enabled
        self.output = Path(output)
        self._jsonl = None
        self._tensorboard = None
        self._bar = None
        if not enabled:
            return
        self.output.mkdir(parents=True, exist_ok=True)
        self._jsonl = (self.output / "metrics.jsonl").open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(self.output / "tensorboard"))
        except ImportError:
            self._tensorboard = None
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None and sys.stderr.isatty():
            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)

    def log(self, step: int, record: dict, console: bool = True) -> None:
        if not self.enabled:
            return
        record = {"step": step, **record}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self._tensorboard is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self._tensorboard.add_scalar(key, value, step)
        if console:
            self.write(format_record(record))

    def advance(self, steps: int = 1, postfix: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.update(steps)
            if postfix:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._jsonl is not None:
            self._jsonl.close()


def format_record(record: dict) -> str:
    parts = []
    for key, value in record.items():
        if isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
        elif not isinstance(value, dict):
            parts.append(f"{key} {value}")
    return " | ".join(parts)
