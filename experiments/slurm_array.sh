#!/usr/bin/env bash
# Example Slurm job array for a moe-lab sweep: each array task runs one shard into its own
# database on node-local disk, copies it back, and a final step merges them.
#
#   sbatch --array=0-7 experiments/slurm_array.sh experiments/sweeps/quick.toml
#   # when all tasks are done:
#   build/moe merge results/moe.sqlite results/shards/*.sqlite
#
# Nodes need no internet: build moe-lab and run experiments/fetch_data.sh once on a
# machine that has it, and put the data directory on shared storage (data_dir in the
# sweep's [base], or the default ./data next to the checkout).
#SBATCH --job-name=moe-sweep
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=results/slurm-%A_%a.out
set -euo pipefail
SWEEP=${1:?usage: sbatch --array=0-N slurm_array.sh SWEEP.toml}
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
mkdir -p results/shards
local_db="${TMPDIR:-/tmp}/moe-${SLURM_ARRAY_JOB_ID}-${SLURM_ARRAY_TASK_ID}.sqlite"
# One GPU per task if Slurm gave us one (--gres=gpu:1), else the CPU cores of the task.
devices=()
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then devices=(--devices cuda:0); fi
status=0
build/moe sweep run "$SWEEP" --db "$local_db" \
  --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" "${devices[@]}" || status=$?
# Copy back whatever was written, failed trials included (merge keeps completed ones).
sqlite3 "$local_db" ".backup results/shards/shard-${SLURM_ARRAY_TASK_ID}.sqlite"
exit $status
