"""Time each heuristic stage on one huge single-line document, at two sizes, to show linear scaling.

Baseline, measured in the same run on the same text: `str.split()` (merely tokenizing). Printed per stage:
seconds at SIZE/10 and SIZE, the growth factor (about 10 for linear cost; 100 would be quadratic) and the
ratio to the baseline at SIZE. Two texts: real CCNet sentences repeated (repetitive) and the same words
shuffled (varied: every repetition rule runs).

    python benchmarks/heuristics_huge_document.py [--mb 50]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from filters.c4 import C4Config, c4_clean
from filters.gopher import (
    GopherQualityConfig,
    GopherRepetitionConfig,
    gopher_quality_reason,
    gopher_repetition_reason,
)
from filters.normalize import clean_text

SAMPLES = Path(__file__).resolve().parent.parent / "tests/data/heuristics/web_samples.jsonl"

STAGES: dict[str, Callable[[str], object]] = {
    "normalize": clean_text,
    "c4": lambda text: c4_clean(text, C4Config()).reason,
    "gopher_quality": lambda text: gopher_quality_reason(text, GopherQualityConfig()),
    "gopher_repetition": lambda text: gopher_repetition_reason(text, GopherRepetitionConfig()),
}


def timed(function: Callable[[str], object], text: str) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(text)
    return time.perf_counter() - start, result


def texts(size: int) -> dict[str, str]:
    samples = [json.loads(line) for line in SAMPLES.open(encoding="utf-8")]
    words = " ".join(s["text"] for s in samples if s["source"] == "ccnet-head").split()
    repeated = " ".join(words)
    random.seed(0)
    shuffled = " ".join(random.choices(words, k=size // 6))
    return {
        "repeated": ((repeated + " ") * (size // len(repeated) + 1))[:size],
        "shuffled": (shuffled + " ") * (size // len(shuffled)) + shuffled[: size % len(shuffled)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=50.0, help="size of the large document in MB (default 50)")
    args = parser.parse_args()
    large = int(args.mb * 1_000_000)
    for kind in ("repeated", "shuffled"):
        big, small = texts(large)[kind], texts(large // 10)[kind]
        base_small, _ = timed(str.split, small)
        base_big, _ = timed(str.split, big)
        print(f"{kind}: {len(big) / 1e6:.0f} MB single line; baseline str.split {base_small:.2f}s -> {base_big:.2f}s")
        for name, function in STAGES.items():
            t_small, _ = timed(function, small)
            t_big, result = timed(function, big)
            outcome = result if not isinstance(result, str) or len(result) < 40 else "(text)"
            print(
                f"  {name:18s} {t_small:6.2f}s -> {t_big:6.2f}s  growth x{t_big / max(t_small, 1e-9):5.1f}  "
                f"vs baseline x{t_big / base_big:5.2f}  result={outcome}"
            )


if __name__ == "__main__":
    main()
