#!/usr/bin/env bash
# The top_p layer against the Dynamic_MoE repository's Python SwitchMLP at that repository's
# shape (T 4096, d 256, 8 SwiGLU experts of width 1024, threshold 0.4, untrained router,
# forward + backward), alternating the two, ROUNDS times each; prints every run and the
# medians' ratio (> 1: moe-lab faster).
#
#   tests/bench/dynamic_moe_compare.sh DYNAMIC_MOE_CHECKOUT [ROUNDS=6]
#
# Needs build/moe_bench (cmake -DMOE_BUILD_BENCH=ON) and a Python with torch and
# transformers (MOE_COMPARE_PYTHON, default .venv/bin/python; e.g.
# `pip install --target /tmp/tf transformers` and PYTHONPATH=/tmp/tf).
set -euo pipefail
repo=${1:?usage: $0 DYNAMIC_MOE_CHECKOUT [ROUNDS]}
rounds=${2:-6}
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${MOE_COMPARE_PYTHON:-$root/.venv/bin/python}
bench=$root/build/moe_bench
threads=$(nproc)  # moe_bench uses every core; the reference gets as many threads
[[ -f $repo/modeling/modeling_moe.py ]] || { echo "$0: $repo/modeling/modeling_moe.py not found (a Dynamic_MoE checkout?)" >&2; exit 2; }
[[ -x $bench ]] || { echo "$0: $bench not built (configure with -DMOE_BUILD_BENCH=ON)" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
ours=() theirs=()
for ((i = 1; i <= rounds; i++)); do
  "$bench" --benchmark_filter='^BM_TopPDynamicMoEShape$' --benchmark_min_time=3 \
    --benchmark_out="$out" --benchmark_out_format=json >/dev/null
  ms=$("$python" -c 'import json,sys; b=json.load(open(sys.argv[1]))["benchmarks"][0]; print("%.1f %.3f" % (b["real_time"], b["k"]))' "$out")
  echo "round $i moe-lab top_p: ${ms% *} ms/pass k ${ms#* }"
  ours+=("${ms% *}")
  line=$("$python" "$root/tests/bench/dynamic_moe_reference.py" --repo "$repo" --threads "$threads" 2>/dev/null)
  echo "round $i $line"
  theirs+=("$(awk '{print $2}' <<<"$line")")
done
"$python" - "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
ours = [float(v) for v in sys.argv[1].split()]
theirs = [float(v) for v in sys.argv[2].split()]
mo, mt = statistics.median(ours), statistics.median(theirs)
print(f"median: moe-lab {mo:.1f} ms, SwitchMLP {mt:.1f} ms; moe-lab tokens/s = {mt / mo:.2f}x SwitchMLP's")
PY
