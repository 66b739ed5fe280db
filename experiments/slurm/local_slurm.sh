#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, from Debian's packages (slurm-wlm 22.05,
# munge), for testing experiments/slurm_array.sh for real. Needs root (the daemons run as
# root); touches nothing outside its directory but munge's /run/munge.
#
#   experiments/slurm/local_slurm.sh start [DIR]   # writes DIR/slurm.conf, starts munged,
#                                                  # slurmctld, slurmd; prints the export
#   export SLURM_CONF=DIR/slurm.conf               # then sbatch / squeue / scontrol work
#   experiments/slurm/local_slurm.sh stop [DIR]
#
# Exit status 3 (with the reason on stderr) when the daemons cannot be started here: not
# root, the packages are absent (apt-get install slurm-wlm munge), or a daemon does not
# come up (its log is printed). DIR defaults to /tmp/moe-slurm.
set -euo pipefail
cmd=${1:?usage: local_slurm.sh start|stop [DIR]}
dir=${2:-/tmp/moe-slurm}
host=$(hostname -s)
cannot() {
  echo "local_slurm: cannot start a local Slurm: $*" >&2
  exit 3
}

stop() {
  for d in slurmd slurmctld; do
    if [ -f "$dir/$d.pid" ]; then kill "$(cat "$dir/$d.pid")" 2>/dev/null || true; fi
  done
  sleep 1
  pkill -f "slurmd -f $dir/slurm.conf" 2>/dev/null || true
  pkill -f "slurmctld -f $dir/slurm.conf" 2>/dev/null || true
}

case "$cmd" in
  stop)
    stop
    exit 0
    ;;
  start) ;;
  *) cannot "unknown command '$cmd' (start | stop)" ;;
esac

[ "$(id -u)" = 0 ] || cannot "needs root (the daemons run as root)"
for b in munged slurmctld slurmd sbatch; do
  command -v "$b" >/dev/null || cannot "'$b' not found: apt-get install slurm-wlm munge"
done
stop
mkdir -p "$dir/state" "$dir/spool"
mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
cat >"$dir/slurm.conf" <<EOF
ClusterName=moelab
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=$((6817 + 10))
SlurmdPort=$((6818 + 10))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# Slurm's defaults: SIGTERM at the time limit or on scancel, SIGKILL KillWait s later.
KillWait=30
OverTimeLimit=0
# MOE_SLURM_CPUS: CPUs to offer (more than the machine has oversubscribes it: tests).
SlurmdParameters=config_overrides
NodeName=$host CPUs=${MOE_SLURM_CPUS:-$(nproc)} RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# munge: Debian's package made /etc/munge/munge.key; the daemon's socket is in /run/munge.
if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- munged || cannot "munged did not start"
  else
    munged --force || cannot "munged did not start"
  fi
fi
slurmctld -f "$dir/slurm.conf" || cannot "slurmctld did not start: $(tail -5 "$dir/slurmctld.log" 2>/dev/null)"
slurmd -f "$dir/slurm.conf" || cannot "slurmd did not start: $(tail -5 "$dir/slurmd.log" 2>/dev/null)"
export SLURM_CONF="$dir/slurm.conf"
for _ in $(seq 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "export SLURM_CONF=$dir/slurm.conf"
    exit 0
  fi
  sleep 1
done
cannot "the node did not come up: $(sinfo 2>&1 | tail -3); $(tail -5 "$dir/slurmd.log" 2>/dev/null)"
