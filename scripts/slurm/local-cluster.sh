#!/bin/bash
# A one-machine SLURM "cluster" for running scripts/slurm/*.sbatch for real (Debian/Ubuntu, as root):
# installs slurm-wlm + munge, writes /etc/slurm/slurm.conf for this host (all its CPUs, requeue allowed,
# no cgroups needed) and starts munged, slurmctld and slurmd.
#
#   sudo scripts/slurm/local-cluster.sh          # then: sinfo; sbatch ...
#   sudo scripts/slurm/local-cluster.sh stop
set -euo pipefail
if [ "${1:-}" = stop ]; then
    for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    exit 0
fi
if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge
fi
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
chown slurm:slurm /var/spool/slurmctld /var/log/slurm
chown munge:munge /run/munge
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$HOST
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
JobRequeue=1
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=slurm
SlurmdUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
KillWait=30
MinJobAge=300
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
pgrep -x munged > /dev/null || su -s /bin/sh munge -c "/usr/sbin/munged" || /usr/sbin/munged --force
pgrep -x slurmctld > /dev/null || /usr/sbin/slurmctld
pgrep -x slurmd > /dev/null || /usr/sbin/slurmd
for _ in $(seq 30); do
    if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix|alloc"; then
        sinfo
        exit 0
    fi
    scontrol update nodename="$HOST" state=resume > /dev/null 2>&1 || true
    sleep 1
done
echo "local-cluster: slurmd did not come up; see /var/log/slurm/slurmd.log and slurmctld.log" >&2
exit 1
