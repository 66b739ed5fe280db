#!/usr/bin/env bash
# The GPU check in one call (../shared/gpu/README.md). On a machine with CUDA, CMake,
# ninja and Python's PyTorch (whose wheel holds LibTorch) but none of Debian's dev
# packages, with the folder from experiments/gpu/pack_deps.sh carried along:
#   bash experiments/gpu/device_check.sh [--device cuda|cpu] [--deps gpu_deps] [--out DIR]
# It configures against the wheel's LibTorch (the GPU machine's python3 has torch 2.11; the
# CPU dry run takes setup's .venv, or MOE_TORCH_PYTHON), builds with every core, runs the whole test suite (_CUDA tests included), the
# quick sweep on the device, the MoE layer benchmark on the device in fp32 and bf16, and a
# GPT-2-small-sized MoE training run of a fixed number of steps in bf16 (tokens/s, MFU).
# Every step is timed and logged; one summary file, DIR/summary.md (default $OUT or
# device_check/), collects the figures. A failing step is recorded and the next one runs;
# the exit status is the number of failed steps. --device cpu is the dry run: the same
# steps at toy sizes.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
device=cuda
deps=gpu_deps
out="${OUT:-$root/device_check}"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --deps) deps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "device_check: unknown option '$1' (known: --device cuda|cpu, --deps DIR, --out DIR)" >&2; exit 2 ;;
  esac
done
case "$device" in cuda|cpu) ;; *) echo "device_check: --device expected cuda or cpu, got '$device'" >&2; exit 2 ;; esac
mkdir -p "$out"
deps=$(cd "$deps" 2>/dev/null && pwd) || { echo "device_check: no deps folder (run experiments/gpu/pack_deps.sh)" >&2; exit 2; }
build="$root/build-check"
summary="$out/summary.md"
failed=0
arch=x86_64-linux-gnu
export LD_LIBRARY_PATH="$deps/lib/$arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
jobs=$(nproc)

step() {  # step NAME COMMAND...: runs it, logs to $out/NAME.log, records time and status
  local name="$1"; shift
  local start end rc
  start=$(date +%s.%N)
  "$@" > "$out/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  printf '| %s | %s | %.1f s |\n' "$name" "$([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)")" \
    "$(echo "$end - $start" | bc)" >> "$summary.steps"
  [ $rc -eq 0 ] || { failed=$((failed + 1)); tail -40 "$out/$name.log" > "$out/$name.tail"; }
  return $rc
}

# The Python whose PyTorch holds LibTorch: MOE_TORCH_PYTHON, else python3 (the GPU
# machine's), else setup's .venv (the CPU dry run on the Debian machine).
py=${MOE_TORCH_PYTHON:-python3}
if ! "$py" -c 'import torch' 2>/dev/null && [ -x "$root/.venv/bin/python" ]; then
  py="$root/.venv/bin/python"
fi

{
  echo "# moe-lab device check ($device), $(date -u +%FT%TZ)"
  echo
  echo '```'
  uname -srm
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$py" -W ignore -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || echo "python torch: none ($py)"
  cmake --version | head -1
  echo "cores: $jobs"
  echo '```'
} > "$summary"
: > "$summary.steps"

# 1. Configure against the wheel's LibTorch and the packed libraries: a CUDA build where the
# machine has a CUDA toolkit (MOE_CUDA=AUTO), which the GPU machine does.
prefix="$deps;$deps/lib/$arch/cmake;$deps/share/cmake"
torch_prefix=$("$py" -W ignore -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
[ -n "$torch_prefix" ] && prefix="$torch_prefix;$prefix"
step configure cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DBoost_NO_SYSTEM_PATHS=ON \
  -DSQLite3_INCLUDE_DIR="$deps/include" -DSQLite3_LIBRARY="$deps/lib/$arch/libsqlite3.so" \
  -DMOE_BUILD_TESTS=ON -DMOE_BUILD_BENCH=ON
# 2. Build everything with all cores (nothing else can run without it).
built=0
[ -f "$build/build.ninja" ] && step build cmake --build "$build" -j "$jobs" && built=1
# The Brown corpus the tests and sweeps read.
[ -d data/brown ] || { mkdir -p data && cp -r "$deps/data/brown" data/; }

if [ "$built" = 1 ]; then
# 3. The whole test suite (_CUDA tests run where CUDA is).
step tests ctest --test-dir "$build" -j 4 --output-on-failure
grep -E "tests passed|tests failed|Skipped|Failed" "$out/tests.log" | head -20 > "$out/tests.summary"
# Host syncs per training step (CUDA's sync debug mode), dense and MoE.
step host_syncs "$build/moe_tests" --gtest_filter='Device.TrainingStepsDoNotWaitForTheGpu_CUDA'

# 4. The quick sweep on the device.
rm -f "$out/quick.sqlite"*
step quick_sweep "$build/moe" sweep run experiments/sweeps/quick.toml --db "$out/quick.sqlite" \
  --workers 1 --devices "$device"
step quick_compare "$build/moe" compare --db "$out/quick.sqlite" --sweep quick --baseline dense

# 5. The MoE layer against the dense FFN of equal active FLOPs, fp32 and bf16.
if [ "$device" = cuda ]; then sizes=full; else sizes=toy; fi
for dtype in fp32 bf16; do
  MOE_BENCH_DEVICE=$device MOE_BENCH_DTYPE=$dtype MOE_BENCH_SIZES=$sizes \
    step "bench_$dtype" "$build/moe_bench" --benchmark_filter='BM_Device' \
    --benchmark_format=console --benchmark_color=false --benchmark_counters_tabular=true
done

# 6. A GPT-2-small-sized MoE (12 layers, d 768, 12 heads, 8 experts top-2 in every other
# layer, seq 1024, bf16) for a fixed number of steps: tokens/s and MFU.
if [ "$device" = cuda ]; then
  gpt_sets=()
else  # the dry run: the same model family at toy size
  gpt_sets=(--set model.layers=2 --set model.d_model=64 --set model.heads=4
            --set task.seq_len=64 --set train.batch_size=4 --set train.steps=4
            --set moe.experts.hidden=256 --set train.eval_batch_size=256)
fi
# Its data: Brown as text, SentencePiece BPE with 8192 pieces, token files (moe tokenize).
step tokenize bash -c "bash experiments/brown_text.sh && '$build/moe' tokenize --out data/brown_bpe8k \
  --vocab-size 8192 --train data/brown_text/train.txt --valid data/brown_text/valid.txt \
  --test data/brown_text/test.txt"
step gpt2_moe "$build/moe" train --config experiments/gpu/gpt2_small_moe.toml --device "$device" \
  --quiet --summary "$out/gpt2_moe.json" "${gpt_sets[@]}"

else
  echo "| the rest | skipped: the build failed |  |" >> "$summary.steps"
fi

{
  echo
  echo "## Steps"
  echo
  echo "| step | status | wall |"
  echo "| --- | --- | --- |"
  cat "$summary.steps"
  echo
  echo "## Build"
  echo '```'
  grep -E '^-- LibTorch' "$out/configure.log" 2>/dev/null
  "$build/moe" --version 2>&1
  echo '```'
  echo
  echo "## Tests"
  echo '```'; cat "$out/tests.summary" 2>/dev/null; echo '```'
  echo
  echo "## Host syncs in the training step"
  echo '```'; grep -E "syncs|SKIPPED|OK|FAILED" "$out/host_syncs.log" 2>/dev/null; echo '```'
  echo
  echo "## Quick sweep (moe compare)"
  echo '```'; tail -30 "$out/quick_compare.log" 2>/dev/null; echo '```'
  for dtype in fp32 bf16; do
    echo
    echo "## MoE layer vs dense FFN, $dtype"
    # (escape codes stripped: the benchmark colours its console output whatever the flag)
    echo '```'
    grep -E "BM_|Benchmark|ratio" "$out/bench_$dtype.log" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g'
    echo '```'
  done
  echo
  echo "## GPT-2-small MoE ($device)"
  echo '```'
  python3 - "$out/gpt2_moe.json" <<'PY' 2>/dev/null || grep -E "tokens/s|mfu|MFU|loss" "$out/gpt2_moe.log"
import json, sys
s = json.load(open(sys.argv[1]))
for k in ("train_tokens_per_s", "model_flops_per_s", "mfu", "peak_flops_per_s", "train_seconds",
          "test_loss", "peak_rss_mb", "cuda_max_allocated_mb"):
    if k in s: print(f"{k:24s} {s[k]}")
PY
  echo '```'
  for f in "$out"/*.tail; do
    [ -e "$f" ] || continue
    echo; echo "## Failed: $(basename "$f" .tail) (last lines)"; echo '```'; cat "$f"; echo '```'
  done
} >> "$summary"
rm -f "$summary.steps"
echo "device_check: $failed step(s) failed; summary in $summary"
exit "$failed"
