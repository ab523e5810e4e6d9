#!/usr/bin/env bash
# A one-node SLURM cluster (munged + slurmctld + slurmd) on loopback, for the integration tests.
#
#   slurm/local_cluster.sh start [STATE_DIR]   # prints the SLURM_CONF line to export
#   slurm/local_cluster.sh stop  [STATE_DIR]   # cancels its jobs, stops only what it started
#   slurm/local_cluster.sh status [STATE_DIR]
#   slurm/local_cluster.sh pids [STATE_DIR]    # processes of this cluster still running (if any)
#
# STATE_DIR (default $BRAINDINO_SLURM_DIR or /tmp/braindino-slurm) holds everything: munge key and
# socket, slurm.conf, controller/daemon spool, logs and pid files. Nothing under /etc is touched.
# Clients talk to this cluster with SLURM_CONF=STATE_DIR/slurm.conf (written to STATE_DIR/env).
# Runs as root (the daemons and the jobs run as root); installs slurm-wlm and munge with apt-get
# when they are missing. The node advertises max(2, nproc) CPUs so 2-task jobs run on any machine.
set -euo pipefail

ACTION=${1:-}
STATE=${2:-${BRAINDINO_SLURM_DIR:-/tmp/braindino-slurm}}
NODE=localnode

die() { echo "local_cluster.sh: $*" >&2; exit 1; }

need_tools() {
    local missing=()
    for tool in munged mungekey slurmctld slurmd sbatch scontrol; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root to install slurm-wlm and munge"
    echo "installing slurm-wlm and munge (missing: ${missing[*]})" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends slurm-wlm munge >&2
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS COMMAND...: poll until the command succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

write_conf() {
    local cpus ctld_port d_port
    cpus=$(nproc); [ "$cpus" -ge 2 ] || cpus=2
    ctld_port=$(free_port); d_port=$(free_port)
    cat >"$STATE/slurm.conf" <<EOF
ClusterName=braindino
SlurmctldHost=$(hostname -s)(127.0.0.1)
MailProg=/bin/true
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket,cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=300
SchedulerParameters=sched_interval=2
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$(hostname) CPUs=$cpus RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    echo "export SLURM_CONF=$STATE/slurm.conf" >"$STATE/env"
}

start() {
    need_tools
    if alive "$STATE/slurmctld.pid" || alive "$STATE/slurmd.pid" || alive "$STATE/munge/munged.pid"; then
        die "a cluster already runs with state in $STATE; stop it first"
    fi
    rm -rf "$STATE"
    mkdir -p "$STATE"/{munge,ctld,slurmd,log}
    chmod 711 "$STATE" "$STATE/munge"
    mungekey --create --keyfile "$STATE/munge/munge.key" --force
    chmod 400 "$STATE/munge/munge.key"
    munged --force --socket "$STATE/munge/munge.socket" --key-file "$STATE/munge/munge.key" \
        --pid-file "$STATE/munge/munged.pid" --log-file "$STATE/log/munged.log" \
        --seed-file "$STATE/munge/munged.seed"
    wait_for 20 test -S "$STATE/munge/munge.socket" || die "munged did not start ($STATE/log)"
    write_conf
    export SLURM_CONF=$STATE/slurm.conf
    slurmctld -f "$SLURM_CONF" -i
    wait_for 30 scontrol ping || die "slurmctld did not answer (see $STATE/log/slurmctld.log)"
    slurmd -f "$SLURM_CONF" -N "$NODE"
    if ! wait_for 60 node_idle; then
        die "node $NODE did not become idle (see $STATE/log/slurmd.log)"
    fi
    echo "export SLURM_CONF=$SLURM_CONF"
}

node_idle() { sinfo -h -n "$NODE" -o %t | grep -qE '^(idle|mix|alloc)'; }

stop_pid() {  # stop_pid PIDFILE NAME: TERM, wait, then KILL the process the pid file names
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_for 20 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
        wait_for 5 bash -c "! kill -0 $pid" || echo "local_cluster.sh: $2 ($pid) still alive" >&2
    fi
    rm -f "$file"
}

# Processes of this cluster: everything started with SLURM_CONF pointing at its slurm.conf
# (the daemons, slurmstepd, and the jobs, which inherit it from sbatch's environment).
cluster_pids() {
    local want="SLURM_CONF=$STATE/slurm.conf" e pid
    for e in /proc/[0-9]*/environ; do
        pid=${e#/proc/}; pid=${pid%/environ}
        [ "$pid" = "$$" ] && continue
        tr '\0' '\n' <"$e" 2>/dev/null | grep -qxF "$want" && echo "$pid"
    done
    return 0
}

no_cluster_pids() { [ -z "$(cluster_pids)" ]; }

no_jobs() { [ -z "$(SLURM_CONF="$STATE/slurm.conf" squeue -h -o %i)" ]; }

stop() {
    [ -d "$STATE" ] || { echo "no cluster state in $STATE"; return 0; }
    if alive "$STATE/slurmctld.pid"; then
        SLURM_CONF="$STATE/slurm.conf" scancel --quiet --full --user root 2>/dev/null || true
        wait_for 60 no_jobs || echo "local_cluster.sh: jobs still listed after scancel" >&2
    fi
    stop_pid "$STATE/slurmd.pid" slurmd
    stop_pid "$STATE/slurmctld.pid" slurmctld
    stop_pid "$STATE/munge/munged.pid" munged
    # Job steps (slurmstepd and the job's processes) end once their jobs are cancelled; what is
    # left of this cluster after that is stopped too (only processes carrying its SLURM_CONF).
    if ! wait_for 30 no_cluster_pids; then
        local left
        left=$(cluster_pids | tr '\n' ' ')
        echo "local_cluster.sh: stopping leftover cluster processes: $left" >&2
        # shellcheck disable=SC2086
        kill -TERM $left 2>/dev/null || true
        wait_for 10 no_cluster_pids || kill -KILL $(cluster_pids) 2>/dev/null || true
    fi
    echo "stopped the cluster in $STATE"
}

status() {
    for f in "$STATE/munge/munged.pid" "$STATE/slurmctld.pid" "$STATE/slurmd.pid"; do
        if alive "$f"; then echo "$(basename "$f" .pid): running ($(cat "$f"))"
        else echo "$(basename "$f" .pid): stopped"; fi
    done
}

case "$ACTION" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    pids) cluster_pids ;;
    *) die "usage: $0 start|stop|status|pids [STATE_DIR]" ;;
esac
