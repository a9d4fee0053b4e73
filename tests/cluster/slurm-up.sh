#!/usr/bin/env bash
# A one-node SLURM on this machine, for the cluster tests (tests/run/test_slurm.py). Root only.
#
#   tests/cluster/slurm-up.sh [start]   install slurm and munge when missing (Debian packages),
#                                       write /etc/slurm/slurm.conf for this machine (all its
#                                       CPUs and memory in one node, partition `debug`), start
#                                       munged, slurmctld and slurmd, wait for the node idle
#   tests/cluster/slurm-up.sh stop      cancel the jobs left, stop the daemons it started
#
# State, spool, logs and pid files live under $SKARIM_SLURM_DIR (default /tmp/skarim-slurm).
# A slurm.conf that this script did not write is left alone: start refuses to run over it.
# Start prints one line saying what it did; on failure one line saying why, exit status 1.
set -euo pipefail

DIR="${SKARIM_SLURM_DIR:-/tmp/skarim-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by skarim tests/cluster/slurm-up.sh"
NODE="$(hostname -s)"

fail() { echo "slurm-up: $*" >&2; exit 1; }

# pid_alive FILE NAME: the process FILE names is running and is NAME (a stale file's pid may
# belong to another process by now)
pid_alive() { [[ -s "$1" && "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" == "$2" ]]; }

install_missing() {
    local need=()
    command -v slurmctld >/dev/null || need+=(slurmctld)
    command -v slurmd >/dev/null || need+=(slurmd)
    command -v sbatch >/dev/null || need+=(slurm-client)
    command -v munged >/dev/null || need+=(munge)
    ((${#need[@]})) || return 0
    command -v apt-get >/dev/null || fail "${need[*]} missing and no apt-get to install them"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
        >"$DIR/install.log" 2>&1 || fail "apt-get install ${need[*]} failed: see $DIR/install.log"
}

write_conf() {
    if [[ -e "$CONF" ]] && ! grep -qF "$MARK" "$CONF"; then
        fail "$CONF was not written by this script; not replacing a site's configuration"
    fi
    local cpus mem
    cpus="$(nproc)"
    mem="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')"  # MiB, as slurmd counts it
    [[ -n "$mem" ]] || fail "slurmd -C did not report this machine's memory"
    mkdir -p /etc/slurm
    cat >"$CONF" <<EOF
$MARK: one node, $cpus CPUs, $mem MiB
ClusterName=skarim
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
KillWait=5
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged is already serving credentials
    fi
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create >/dev/null
    mkdir -p /run/munge /var/lib/munge "$DIR/munge"
    chown munge:munge /run/munge /var/lib/munge "$DIR/munge"
    chmod 755 "$DIR/munge"  # munged refuses log and pid directories that others can write
    runuser -u munge -- munged --pid-file="$DIR/munge/munged.pid" \
        --log-file="$DIR/munge/munged.log" || fail "munged did not start: see $DIR/munge"
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null || true; }

start() {
    [[ "$(id -u)" == 0 ]] || fail "needs root to install and run slurmctld/slurmd (uid $(id -u))"
    if pid_alive "$DIR/slurmctld.pid" slurmctld && pid_alive "$DIR/slurmd.pid" slurmd; then
        echo "slurm-up: already running: node $NODE $(node_state), partition debug"
        return 0
    fi
    mkdir -p "$DIR"
    install_missing
    write_conf
    rm -rf "$DIR/state" "$DIR/spool"
    mkdir -p "$DIR/state" "$DIR/spool"
    start_munge
    slurmctld -i || fail "slurmctld did not start: see $DIR/slurmctld.log"
    slurmd || fail "slurmd did not start: see $DIR/slurmd.log"
    local state=""
    for _ in $(seq 120); do
        state="$(node_state)"
        [[ "$state" == idle ]] && break
        sleep 0.5
    done
    [[ "$state" == idle ]] || fail "node $NODE is '${state:-unknown}', not idle, after 60 s: see $DIR"
    echo "slurm-up: started: node $NODE idle ($(nproc) CPUs), partition debug, state in $DIR"
}

stop_pid() {
    local file="$1"
    pid_alive "$file" "$2" || return 0
    local pid
    pid="$(cat "$file")"
    kill "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    if pid_alive "$DIR/slurmctld.pid" slurmctld; then
        squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z "$(squeue -h -o %i 2>/dev/null)" ]] && break
            sleep 0.2
        done
    fi
    stop_pid "$DIR/slurmd.pid" slurmd
    stop_pid "$DIR/slurmctld.pid" slurmctld
    stop_pid "$DIR/munge/munged.pid" munged
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) fail "usage: $0 [start|stop]" ;;
esac
