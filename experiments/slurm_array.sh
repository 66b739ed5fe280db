#!/usr/bin/env bash
# Slurm job array for a moe-lab sweep: array task I runs shard I/N of the sweep into its
# own database, then `moe merge` joins the shards.
#
#   sbatch --array=0-7 experiments/slurm_array.sh experiments/sweeps/quick.toml
#   # GPU clusters: one GPU per task (each task's workers share it)
#   sbatch --array=0-7 --gres=gpu:1 experiments/slurm_array.sh SWEEP.toml
#   # when all tasks are done:
#   build/moe merge results/moe.sqlite results/shards/*.sqlite
#
# Preemption, time limits, scancel: Slurm sends SIGTERM to every process of the task, then
# SIGKILL KillWait seconds later (30 by default). The workers checkpoint their trials at
# the next step boundary and stop; this script copies the shard's database to shared
# storage and exits. The database itself lives on node-local disk while the task runs
# (SQLite's WAL mode needs a local file system), copied back at the end, killed or not;
# the checkpoints are written straight to shared storage (results/shards/checkpoints), so
# after SIGKILL or a lost node the last periodic one is there. Requeue the task
# (`scontrol requeue JOBID_I`: works on running, preempted, cancelled and timed-out
# tasks; `--requeue` lets preemption do it) and it continues: completed trials are kept,
# interrupted ones go on from their checkpoints (Slurm holds a requeued task about two
# minutes, reason BeginTime; `scontrol update JobId=JOBID_I StartTime=now` skips that).
# Submitting again (a new job) does the
# same as long as N is unchanged (set MOE_SHARDS=N when resubmitting a subset of the
# array, e.g. `sbatch --array=3 --export=ALL,MOE_SHARDS=8 ...`). Models large enough that a
# checkpoint takes longer than KillWait need an earlier signal: `--signal=TERM@120`.
#
# Nodes need no internet: build moe-lab and run experiments/fetch_data.sh once on a
# machine that has it, and put the data directory on shared storage (data_dir in the
# sweep's [base], or the default ./data next to the checkout). Tested on a single-node
# Slurm 22.05 (experiments/slurm/test_slurm.sh).
#SBATCH --job-name=moe-sweep
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=results/slurm-%A_%a.out
#SBATCH --requeue
set -uo pipefail
SWEEP=${1:?usage: sbatch --array=0-N slurm_array.sh SWEEP.toml}
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
task=${SLURM_ARRAY_TASK_ID:?not an array task: sbatch --array=0-N ...}
shards=${MOE_SHARDS:-${SLURM_ARRAY_TASK_COUNT}}
mkdir -p results/shards/checkpoints
shared_db="results/shards/shard-${task}.sqlite"
local_db="${TMPDIR:-/tmp}/moe-${SLURM_ARRAY_JOB_ID}-${task}-${SLURM_RESTART_COUNT:-0}.sqlite"
rm -f "$local_db" "$local_db-wal" "$local_db-shm"
# A requeued or resubmitted task starts from what the shard has done so far.
if [ -f "$shared_db" ]; then cp "$shared_db" "$local_db"; fi
# One GPU per task if Slurm gave us one (--gres=gpu:1), else the CPU cores of the task.
devices=()
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then devices=(--devices cuda:0); fi
echo "moe-lab: shard ${task}/${shards} of $SWEEP on $(hostname), restart ${SLURM_RESTART_COUNT:-0}"
build/moe sweep run "$SWEEP" --db "$local_db" --shard "${task}/${shards}" \
  --checkpoint-dir results/shards/checkpoints "${devices[@]}" &
pid=$!
# Slurm signals every process of the task; the runner and its workers checkpoint and stop.
# This shell only waits for them (a trapped signal ends `wait` early: wait again).
trap 'echo "moe-lab: signal received, waiting for the trials to checkpoint"' TERM INT
status=0
wait "$pid" || status=$?
while kill -0 "$pid" 2>/dev/null; do
  status=0
  wait "$pid" || status=$?
done
# Copy back whatever was written, failed and interrupted trials included (merge keeps the
# completed ones; a requeued task continues the rest).
sqlite3 "$local_db" ".backup '${shared_db}.tmp'" && mv "${shared_db}.tmp" "$shared_db"
rm -f "$local_db" "$local_db-wal" "$local_db-shm"
echo "moe-lab: shard ${task} exited with status $status"
exit $status
