#!/usr/bin/env bash
# The GPU figures of the README, in one run (about 8 minutes on one H200): run from the repository root on a
# CUDA machine whose python3 has torch, numpy and pyarrow. TOKENS is a token directory (`llamaprep tokenize`
# output); OUT receives the logs and JSON results.
#
#   TOKENS=gpu-data/tokens DEMO_TOKENS=demo-out/tokens OUT=gpu-out bash benchmarks/gpu_figures.sh
#
# 1. throughput: the ~1B config at seq 2048, bf16, torch.compile per block, 20 steps (5 warm-up + 3 rounds of 5
#    timed), with and without the chunked loss: tokens/s, MFU against the device's dense bf16 peak, peak memory;
# 2. a 2-minute training run (125M shape, the tokens above) through torchrun + FSDP2 with sharded,
#    asynchronous checkpoints, validation loss per source every 100 steps; then a resume of that run;
# 2c. the demo's own training command on the demo's tokens; 2d. benchmarks/gpu_resume_check.sh;
# 3. float16 with loss scaling on the GPU (a few steps of the tiny shape).
set -uo pipefail
TOKENS=${TOKENS:-gpu-data/tokens}
OUT=${OUT:-gpu-out}
RUN=${RUN:-/tmp/llamaprep-gpu}
mkdir -p "$OUT" "$RUN"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"

echo "== 1. throughput, 1B, seq 2048, bf16, compile"
python3 benchmarks/train_throughput.py --config 1B --seq-len 2048 --batch-size 8 --compile --no-hf \
    --warmup 5 --steps 5 --rounds 3 --loss-chunk-tokens 4096 --json "$OUT/throughput_1b.json" \
    > "$OUT/throughput_1b.log" 2>&1 || status=1
tail -40 "$OUT/throughput_1b.log"

echo "== 2. two minutes of training on $TOKENS (torchrun, FSDP2, sharded async checkpoints)"
common=(--data "$TOKENS" --config 125M --seq-len 1024 --micro-batch-size 32 --lr 1e-3 --warmup-steps 100
    --eval-every 100 --eval-batches 8 --log-every 50 --compile --checkpoint-format sharded --async-save)
start=$(date +%s)
torchrun --standalone --nproc-per-node 1 -m model.cli train "${common[@]}" --steps 1200 --save-every 600 \
    --output "$RUN/train" > "$OUT/train.log" 2>&1 || status=1
echo "train wall seconds: $(($(date +%s) - start))" | tee -a "$OUT/train.log"
grep -E "val_loss|checkpoint|model 125M|error|Error" "$OUT/train.log" | tail -30
cp "$RUN/train/metrics.jsonl" "$OUT/train_metrics.jsonl" 2>/dev/null
ls -la "$RUN"/train/checkpoints/*/shards 2>/dev/null | head -12

echo "== 2b. resume the sharded checkpoint of step 600 in a new output (losses should equal the first run's)"
torchrun --standalone --nproc-per-node 1 -m model.cli train "${common[@]}" --steps 1200 --save-every 600 \
    --output "$RUN/resumed" --resume "$RUN/train/checkpoints/step-0000600" > "$OUT/resume.log" 2>&1 || status=1
python3 - "$RUN/train/metrics.jsonl" "$RUN/resumed/metrics.jsonl" <<'EOF' | tee -a "$OUT/resume.log"
import json, sys
def losses(path):
    out = {}
    for line in open(path):
        record = json.loads(line)
        if "loss" in record:
            out[record["step"]] = record["loss"]
    return out
first, second = losses(sys.argv[1]), losses(sys.argv[2])
common = sorted(set(first) & set(second))
print("resumed steps compared:", common[:3], "...", common[-3:] if common else [])
print("max |loss difference| after resume:", max((abs(first[s] - second[s]) for s in common), default=None))
EOF

echo "== 2d. resume with default and with deterministic kernels, compared bit for bit"
TOKENS="$TOKENS" OUT="$OUT" bash benchmarks/gpu_resume_check.sh || status=1

echo "== 2c. the demo's training command on the demo's tokens (DEMO_TOKENS), on the GPU"
if [ -d "${DEMO_TOKENS:-}" ]; then
    python3 -m model.cli train --data "$DEMO_TOKENS" --mixture llama --config tiny --seq-len 128 \
        --micro-batch-size 16 --steps 300 --lr 3e-3 --warmup-steps 30 --eval-every 50 --eval-batches 8 \
        --output "$RUN/demo" > "$OUT/demo.log" 2>&1 || status=1
    grep -E "val_loss|tokens_per_s" "$OUT/demo.log" | tail -8
fi

echo "== 3. float16 with loss scaling"
python3 -m model.cli train --data "$TOKENS" --config tiny --seq-len 128 --micro-batch-size 8 --steps 30 \
    --log-every 10 --eval-every 30 --eval-batches 2 --dtype float16 --output "$RUN/fp16" > "$OUT/fp16.log" 2>&1 || status=1
tail -6 "$OUT/fp16.log"
exit $status
