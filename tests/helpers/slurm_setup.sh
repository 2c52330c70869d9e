#!/bin/bash
# Used by tests/e2e/test_compare.py (the real-SLURM test); needs root, slurm-wlm and munge (Debian packages).
# A single-node SLURM on localhost (munge + slurmctld + slurmd), for the launcher test.
set -e
D=${1:-/tmp/slurm}
mkdir -p $D/state $D/spool $D/log /etc/munge /run/munge /var/log/munge /var/lib/munge
[ -f /etc/munge/munge.key ] || (dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null)
chmod 400 /etc/munge/munge.key; chown -R root:root /etc/munge /run/munge /var/log/munge /var/lib/munge
pgrep munged >/dev/null || munged --force
CPUS=$(nproc); MEM=$(( $(free -m | awk '/Mem:/{print $2}') - 1024 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$(hostname)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$(hostname) CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$(hostname) Default=YES MaxTime=INFINITE State=UP
CONF
pgrep slurmctld >/dev/null || slurmctld
pgrep slurmd >/dev/null || slurmd
for i in $(seq 1 30); do sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix" && exit 0; sleep 1; done
echo "slurm did not come up" >&2; exit 1
