#!/usr/bin/env bash
# End-to-end test of experiments/slurm_array.sh on a single-node Slurm (local_slurm.sh):
#   1. a 4-trial sweep submitted exactly as the README says (sbatch --array=0-1
#      experiments/slurm_array.sh SWEEP), one task requeued mid-trial (`scontrol requeue`:
#      SIGTERM, then pending again); the merged shards must equal a single-machine run
#      of the same sweep (same run keys, same final metrics to 17 digits), with at least one
#      trial continued from its checkpoint and no row twice;
#   2. a task that hits its time limit (--time=1) mid-trial, then requeued: it continues
#      from the checkpoint written at the SIGTERM, and every training row is there once.
# Usage: experiments/slurm/test_slurm.sh [BUILD_DIR]   (run from the repository root)
# Exit 0 = passed, 1 = failed, 77 = skipped (no Slurm here: the reason is printed).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
moe="$build/moe"
work=$(mktemp -d /tmp/moe-slurm-test.XXXXXX)
slurm_dir="$work/slurm"
cleanup() {
  "$repo/experiments/slurm/local_slurm.sh" stop "$slurm_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "test_slurm: FAILED: $*" >&2
  for f in "$work"/run/results/slurm-*.out "$work"/run/lim/results/slurm-*.out; do [ -f "$f" ] && { echo "== $f"; tail -20 "$f"; }; done >&2
  exit 1
}
started=$(date +%s)
# 3 CPUs on any machine: the time-limit task runs beside the two array tasks.
if ! out=$(MOE_SLURM_CPUS=3 "$repo/experiments/slurm/local_slurm.sh" start "$slurm_dir" 2>&1); then
  echo "test_slurm: SKIPPED: ${out##*cannot start a local Slurm: }"
  exit 77
fi
export SLURM_CONF="$slurm_dir/slurm.conf"
q() { "$moe" query --db "$1" --csv "$2" | tail -n +2; }
# The submit directory, as a user's checkout: build/ and experiments/ of this one.
mkdir -p "$work/run/results"  # a checkout has results/ (the output files go there)
cd "$work/run"
ln -s "$build" build
ln -s "$repo/experiments" experiments
sweep() { # name steps checkpoint_every seeds methods
  cat >"$1.toml" <<EOF
name = "$1"
seeds = $4
[base]
device = "cpu"
task = { name = "mod_sum", seq_len = 8, modulus = 3, max_depth = 2, eval_sequences = 8 }
model = { d_model = 16, layers = 1, heads = 2, ffn_hidden = 16 }
moe = { num_experts = 4, experts = { name = "ffn", hidden = 16 } }
train = { steps = $2, batch_size = 8, warmup = 10, log_every = 50, eval_every = 500, eval_batch_size = 8, checkpoint_every = $3 }
[presets.dense]
"model.moe_every" = 0
[presets.switch]
"moe.router" = { name = "top_k", k = 1 }
[grid]
method = $5
EOF
}
# Every final metric but the wall-clock ones, by run key.
finals() {
  q "$1" "SELECT r.run_key, m.name, printf('%.17g', m.value) AS v FROM metrics m JOIN runs r ON
    r.id = m.run_id AND m.attempt = r.attempts WHERE m.split = 'final' AND m.name NOT LIKE
    '%seconds%' AND m.name NOT LIKE '%per_s%' AND m.name NOT IN ('mfu', 'peak_rss_mb')
    ORDER BY 1, 2"
}
no_duplicates() {
  local d
  d=$(q "$1" "SELECT count(*) - count(DISTINCT run_id || '/' || step || '/' || split || '/' ||
        name || '/' || coalesce(item, '') || '/' || coalesce(level, '') || '/' ||
        coalesce(option_value, '')) AS d FROM metrics")
  [ "$d" = 0 ] || fail "$1: $d duplicated metric rows"
  d=$(q "$1" "SELECT count(*) AS d FROM metrics m JOIN runs r ON r.id = m.run_id WHERE
        m.attempt != r.attempts")
  [ "$d" = 0 ] || fail "$1: $d rows of an earlier attempt"
}
# scontrol requeue, then let the task start at once: Slurm holds a requeued job for about
# two minutes (reason BeginTime), which only slows the test down.
requeue() {
  scontrol requeue "$1" || fail "scontrol requeue $1"
  for _ in $(seq 120); do
    case "$(squeue -h -j "$1" -o '%T %r' 2>/dev/null)" in
      "PENDING BeginTime") scontrol update JobId="$1" StartTime=now && return 0 ;;
      RUNNING* | "") return 0 ;;
    esac
    sleep 0.5
  done
}
wait_jobs() { # job id, timeout s: until every task of the job is in a final state
  local states
  for _ in $(seq "$2"); do
    states=$(scontrol -o show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | sort -u)
    if [ -n "$states" ] &&
      ! grep -qvE 'JobState=(COMPLETED|FAILED|TIMEOUT|CANCELLED|OUT_OF_MEMORY|NODE_FAIL)' \
        <<<"$states"; then
      return 0
    fi
    sleep 1
  done
  fail "job $1 still in the queue after $2 s: $(squeue -j "$1")"
}
# Waits until a checkpoint newer than the marker file appears (a trial is mid-training).
wait_checkpoint() {
  for _ in $(seq "$1"); do
    if [ -n "$(find results/shards/checkpoints -name '*.pt' -newer "$2" 2>/dev/null)" ]; then
      return 0
    fi
    sleep 0.5
  done
  fail "no checkpoint appeared: $(cat results/slurm-*.out 2>/dev/null | tail -5)"
}

# --- 2 starts first (it waits for its time limit while 1 runs) ----------------------------
# A trial of ~150 s of training under a 1-minute limit (Slurm enforces it 0-30 s late): its
# steps are sized from a 2000-step run on one core here, so the limit lands mid-trial on a
# fast machine too (a fixed 40000 steps, ~75 s on one machine, finished inside the limit).
sweep cal 2000 1000 "[0]" '["switch"]'
taskset -c "$(taskset -pc $$ | sed 's/.*: //; s/[,-].*//')" "$moe" sweep run cal.toml \
  --db cal.sqlite >cal.log 2>&1 || fail "timing run: $(tail -3 cal.log)"
cal_s=$(q cal.sqlite "SELECT value FROM metrics WHERE split = 'final' AND name = 'train_seconds'")
lim_steps=$(awk -v t="$cal_s" 'BEGIN { n = int(150 * 2000 / t / 2000) * 2000;
  print (n < 40000 ? 40000 : n) }')
sweep lim "$lim_steps" 2000 "[0]" '["switch"]'
mkdir -p lim/results
ln -s "$build" lim/build
ln -s "$repo/experiments" lim/experiments
cp lim.toml lim/
lim_job=$(cd lim && sbatch --parsable --array=0 --time=1 --cpus-per-task=1 \
  experiments/slurm_array.sh lim.toml)
echo "test_slurm: submitted job $lim_job with --time=1"

# --- 1. the README's submission, one task requeued mid-trial ------------------------------
sweep arr 1500 100 "[0, 1]" '["dense", "switch"]'
# Two workers: one thread each, as each array task below (--cpus-per-task=1) has; the
# same thread count gives the same numbers.
"$moe" sweep run arr.toml --db single.sqlite --workers 2 >single.log 2>&1 ||
  fail "single-machine run"
touch mark1
job=$(sbatch --parsable --array=0-1 --cpus-per-task=1 experiments/slurm_array.sh arr.toml)
echo "test_slurm: submitted array job $job"
wait_checkpoint 240 mark1
sleep 0.$((RANDOM % 9))
requeue "${job}_0"
echo "test_slurm: requeued ${job}_0 mid-trial"
wait_jobs "$job" 600
"$moe" merge merged.sqlite results/shards/shard-0.sqlite results/shards/shard-1.sqlite \
  >/dev/null || fail "moe merge"
[ "$(q merged.sqlite "SELECT count(*) FROM runs WHERE status = 'completed'")" = 4 ] ||
  fail "merged: $(q merged.sqlite "SELECT run_key, status, error FROM runs")"
[ "$(finals merged.sqlite)" = "$(finals single.sqlite)" ] ||
  fail "merged final metrics differ from the single-machine run's: $(diff <(finals merged.sqlite) <(finals single.sqlite) | head -5)"
continued=$(q merged.sqlite "SELECT count(*) FROM metrics WHERE split = 'resume'")
[ "$continued" -ge 1 ] || fail "the requeued task did not continue from a checkpoint"
grep -q "restart 1" results/slurm-"${job}"_0.out || fail "task 0 did not run again"
no_duplicates merged.sqlite
echo "test_slurm: array + requeue: 4/4 completed, final metrics equal the single-machine run," \
  "$continued continuation(s) from checkpoints ($(q merged.sqlite "SELECT group_concat(CAST(value AS INTEGER)) FROM metrics WHERE split = 'resume'") steps not retrained)"

# --- 2. a task hitting its time limit, then requeued --------------------------------------
# (continuing equals not stopping: part 1 and the unit tests; here, that nothing is lost)
cd lim
job=$lim_job
wait_jobs "$job" 300
state=$(scontrol show job "${job}_0" 2>/dev/null | grep -o 'JobState=[A-Z]*' | head -1)
[ "$state" = "JobState=TIMEOUT" ] || fail "expected the task to time out, got '$state'"
[ "$(q results/shards/shard-0.sqlite "SELECT status FROM runs")" = interrupted ] ||
  fail "after the time limit: $(q results/shards/shard-0.sqlite "SELECT status, error FROM runs")"
# The requeued task keeps its 1-minute limit: requeue until it completes.
for _ in $(seq 8); do
  requeue "${job}_0"
  wait_jobs "$job" 300
  [ "$(q results/shards/shard-0.sqlite "SELECT status FROM runs")" = completed ] && break
done
[ "$(q results/shards/shard-0.sqlite "SELECT status FROM runs")" = completed ] ||
  fail "the timed-out trial did not complete after requeueing"
from=$(q results/shards/shard-0.sqlite "SELECT group_concat(CAST(value AS INTEGER)) FROM metrics
  WHERE split = 'resume'")
[ -n "$from" ] || fail "the requeued task did not continue from a checkpoint"
# Every logged step once, from 50 to the end, and the final evaluation.
[ "$(q results/shards/shard-0.sqlite "SELECT count(DISTINCT step) || '/' || min(step) || '/' ||
  max(step) AS s FROM metrics WHERE split = 'train' AND name = 'loss'")" = \
  "$((lim_steps / 50))/50/$lim_steps" ] ||
  fail "training rows lost: $(q results/shards/shard-0.sqlite "SELECT count(*), min(step), max(step) FROM metrics WHERE split = 'train' AND name = 'loss'")"
[ -n "$(finals results/shards/shard-0.sqlite)" ] || fail "no final metrics"
no_duplicates results/shards/shard-0.sqlite
echo "test_slurm: time limit + requeue: timed out mid-trial, completed after requeueing," \
  "continued from step(s) $from of $lim_steps, every training row once"
echo "test_slurm: passed in $(($(date +%s) - started)) s"
