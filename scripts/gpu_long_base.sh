#!/usr/bin/env bash
# One GPU session (device time is scarce): train the long-answer base with trafl sft (presets side by
# side inside a wall-clock budget), then measure every sampler variant's speed and accuracy on it at
# L = 256 and 512 (benchmarks/run.py --sections long --device cuda). Everything it keeps goes to $OUT
# (default runs/gpu_long_base): one tarball per preset (model + metrics), the benchmark records, the log.
set -uo pipefail
OUT=${OUT:-runs/gpu_long_base}
PRESETS=${PRESETS:-mini,tiny}
BUDGET=${BUDGET:-240}
PROMPTS=${PROMPTS:-104}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-256}
LENGTHS=${LENGTHS:-256,512}
INIT=${INIT:-}                      # continue this model directory instead of a fresh preset
LR=${LR:-0.002}
SEMI_AR=${SEMI_AR:-32}              # SFT semi_ar_block_length (0: plain masking)
VARIANTS=${VARIANTS:-trafl,prefix,dual,dual+thr0.9}
SINGLE=${SINGLE:-3}
export PYTHONPATH=$PWD/src:$PWD PYTHONUNBUFFERED=1
mkdir -p "$OUT"
work=runs/long_base_gpu
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  python scripts/train_long_base.py --presets "$PRESETS" --budget-s "$BUDGET" --hard-limit-s $((BUDGET + 60)) \
    --device "$DEVICE" --dtype bfloat16 --batch-size "$BATCH" --min-steps 3 --out "$work" \
    --learning-rate "$LR" --semi-ar-block-length "$SEMI_AR" ${INIT:+--init "$INIT"}
  pids=()
  for p in ${PRESETS//,/ }; do
    m="$work/$p/model"
    [ -f "$m/config.json" ] || m=$(ls -d "$work/$p"/checkpoint-*/model 2>/dev/null | sort -V | tail -1)
    [ -n "$m" ] || { echo "$p: no model"; continue; }
    realpath "$m" > "$work/$p/benchmarked_model.txt"
    timeout 180 python benchmarks/run.py --sections long --long-model "$m" --device "$DEVICE" --long-prompts "$PROMPTS" --long-lengths "$LENGTHS" \
      --long-variants "$VARIANTS" --long-single "$SINGLE" \
      --threads 2 --out "$OUT/results_$p.jsonl" > "$work/$p/bench.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  for p in ${PRESETS//,/ }; do
    echo "== $p"; grep -v "shards" "$work/$p/bench.log" | tail -14
    m=$(cat "$work/$p/benchmarked_model.txt" 2>/dev/null) || continue
    tar -cf "$OUT/$p.tar" -C "$work/$p" --exclude='./checkpoint-*' --exclude=./model . -C "$(dirname "$m")" model
  done
  cat "$work/train_summary.json"
} 2>&1 | tee "$OUT/log.txt"
