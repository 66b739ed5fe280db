#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer over moe-lab's own code: builds build-asan/
# (moe and moe_tests instrumented; LibTorch itself is not), runs the test suite under it, then
# short bf16 and fp32 trainings of brown_pos top-2 (the configuration that once threw
# std::bad_alloc intermittently). Any sanitizer report fails the run. After setup.sh:
#   bash experiments/sanitize.sh [RUNS]      # RUNS trainings of each precision (default 3)
# About 15 minutes of build and 10 of runs on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
# The same LibTorch as the main build (setup.sh configured build/ against it).
torch_dir=$(sed -n 's/^Torch_DIR:PATH=//p' build/CMakeCache.txt 2>/dev/null)
[ -n "$torch_dir" ] || { echo "sanitize: build/ is not configured (run experiments/setup.sh first)" >&2; exit 1; }
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_BUILD_BENCH=OFF \
  -DTorch_DIR="$torch_dir" -DMOE_CUDA="${MOE_CUDA:-AUTO}" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-asan --target moe moe_tests

# LibTorch is not instrumented: its own leaks at exit and its allocator's patterns are not
# ours, so leak checking is off; every other report aborts with a non-zero status.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
# The suite without the end-to-end tests that spawn many CLI processes (slow under ASan).
ctest --test-dir build-asan -j2 --output-on-failure -E '^(SweepRun|PretrainSweep)\.' || status=1
for i in $(seq 1 "$runs"); do
  for precision in bf16 fp32; do
    echo "sanitize: brown_pos top-2, $precision, run $i of $runs"
    build-asan/moe train --config experiments/configs/brown_pos_top2.toml --device cpu --quiet \
      --set train.steps=30 --set "train.precision=\"$precision\"" --set train.eval_batches=5 \
      --set train.eval_every=15 || status=1
  done
done
echo "sanitize: $([ $status = 0 ] && echo "no sanitizer report, every run passed" || echo FAILED)"
exit $status
