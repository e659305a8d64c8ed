#!/usr/bin/env bash
# Is a resumed GPU run the uninterrupted one, bit for bit? Trains the 125M shape 200 steps through torchrun
# with sharded checkpoints every 100 steps, once with the default kernels and once with --deterministic, and
# resumes each from its step-100 checkpoint in a new output; prints the largest loss difference of each.
#   TOKENS=gpu-data/tokens OUT=gpu-out bash benchmarks/gpu_resume_check.sh
set -uo pipefail
TOKENS=${TOKENS:-gpu-data/tokens}
OUT=${OUT:-gpu-out}
RUN=${RUN:-/tmp/llamaprep-gpu-resume}
mkdir -p "$OUT" "$RUN"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
status=0
common=(--data "$TOKENS" --config 125M --seq-len 1024 --micro-batch-size 32 --lr 1e-3 --warmup-steps 20
    --steps 200 --save-every 100 --eval-every 100 --eval-batches 4 --log-every 10 --checkpoint-format sharded)
for mode in default deterministic; do
    flags=()
    [ "$mode" = deterministic ] && flags=(--deterministic)
    start=$(date +%s)
    torchrun --standalone --nproc-per-node 1 -m model.cli train "${common[@]}" "${flags[@]}" \
        --output "$RUN/$mode-full" > "$OUT/resume-$mode-full.log" 2>&1 || status=1
    torchrun --standalone --nproc-per-node 1 -m model.cli train "${common[@]}" "${flags[@]}" \
        --output "$RUN/$mode-resumed" --resume "$RUN/$mode-full/checkpoints/step-0000100" \
        > "$OUT/resume-$mode-resumed.log" 2>&1 || status=1
    echo "$mode: $(($(date +%s) - start)) s for both runs"
    python3 - "$mode" "$RUN/$mode-full/metrics.jsonl" "$RUN/$mode-resumed/metrics.jsonl" <<'PY'
import json, sys
def losses(path):
    return {r["step"]: r["loss"] for r in map(json.loads, open(path)) if "loss" in r}
mode, first, second = sys.argv[1], losses(sys.argv[2]), losses(sys.argv[3])
steps = sorted(set(first) & set(second))
diff = max((abs(first[s] - second[s]) for s in steps), default=None)
print(f"{mode}: {len(steps)} logged steps after the resume compared, largest loss difference {diff!r}, "
      f"identical: {all(first[s] == second[s] for s in steps)}")
PY
done
exit $status
