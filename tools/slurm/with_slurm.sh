#!/usr/bin/env bash
# Run a command against a private single-node Slurm cluster, then tear it down.
#
#   tools/slurm/with_slurm.sh CMD [ARG...]
#
# 1. Installs Debian's slurm-wlm and munge with apt-get when slurmctld, slurmd, sbatch or
#    munged is missing (apt-get update first; about 30 s; services are not started by apt).
# 2. Makes a temporary folder ($TMPDIR or /tmp) holding a fresh munge key, slurm.conf (from
#    slurm.conf.in beside this script: the node sized from `nproc` and the available memory,
#    free TCP ports) and every daemon's state, spool, pid and log files.
# 3. Starts munged, slurmctld and slurmd as root in the foreground of this script (so their
#    pids are exactly known) and waits until `sinfo` shows the node idle.
# 4. Runs CMD with SLURM_CONF exported (sbatch, squeue, scancel and submitit then talk to
#    this cluster) and SYNFLOW_SLURM_LOGS pointing at the daemons' log folder.
# 5. On exit, also on failure or Ctrl-C (trap): cancels this cluster's jobs, stops exactly the
#    daemons it started (by pid; TERM, then KILL after 15 s), checks that none is left, and
#    removes the folder (kept with KEEP_SLURM_STATE=1, printed for debugging).
#
# Exit status: CMD's; 1 when the cluster could not be brought up or a daemon survived.
# Where Slurm cannot be started here (not root, no apt-get), and $CI is not set, the script
# prints why, runs CMD anyway with SYNFLOW_SLURM_UNAVAILABLE=<reason> exported (the cluster
# tests then skip with that reason) and returns CMD's status. With $CI set it fails instead.
# Needs: bash, python3 (free ports), apt-get or an installed Slurm; Debian/Ubuntu.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "[with_slurm] $*" >&2; }

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARG...]  (runs CMD against a private single-node Slurm)" >&2
    exit 2
fi

# --- can we start one at all? --------------------------------------------------------------
unavailable=""
need_install=0
for exe in slurmctld slurmd sbatch sinfo squeue scancel munged mungekey; do
    if ! command -v "$exe" > /dev/null 2>&1 && [ ! -x "/usr/sbin/$exe" ]; then
        need_install=1
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    unavailable="not root (uid $(id -u)): the single-node Slurm runs its daemons as root"
elif [ "$need_install" -eq 1 ] && ! command -v apt-get > /dev/null 2>&1; then
    unavailable="Slurm is not installed and there is no apt-get to install slurm-wlm and munge"
fi
if [ -n "$unavailable" ]; then
    if [ -n "${CI:-}" ]; then
        log "ERROR: cannot start Slurm: $unavailable (CI is set, so this is a failure)"
        exit 1
    fi
    log "cannot start Slurm: $unavailable; running the command without it"
    export SYNFLOW_SLURM_UNAVAILABLE="$unavailable"
    exec "$@"
fi

export PATH="$PATH:/usr/sbin:/sbin"
if [ "$need_install" -eq 1 ]; then
    log "installing slurm-wlm and munge with apt-get"
    # keep apt from starting the system services (Debian's policy-rc.d convention)
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    rc=0
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends slurm-wlm munge; } > /dev/null || rc=$?
    [ "$own_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    if [ "$rc" -ne 0 ]; then
        log "ERROR: apt-get install slurm-wlm munge failed (exit $rc)"
        exit 1
    fi
fi

# --- configuration ----------------------------------------------------------------------------
state="$(mktemp -d "${TMPDIR:-/tmp}/synflow-slurm.XXXXXX")"
chmod 700 "$state"
mkdir -p "$state/munge" "$state/slurmctld" "$state/slurmd" "$state/log"
chmod 700 "$state/munge"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ctld_port="$(free_port)"
slurmd_port="$(free_port)"
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port="$(free_port)"; done
host="$(hostname -s)"
cpus="$(nproc)"
avail_mb="$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)"
mem_mb=$(( avail_mb * 9 / 10 ))           # leave room for the daemons and the submitter
mem_per_cpu=$(( mem_mb / cpus ))
sed -e "s|@HOST@|$host|g" -e "s|@CTLD_PORT@|$ctld_port|g" -e "s|@SLURMD_PORT@|$slurmd_port|g" \
    -e "s|@STATE@|$state|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM_MB@|$mem_mb|g" \
    -e "s|@MEM_PER_CPU@|$mem_per_cpu|g" "$here/slurm.conf.in" > "$state/slurm.conf"
export SLURM_CONF="$state/slurm.conf"
mungekey --create --force --keyfile "$state/munge/munge.key" > /dev/null 2>&1 \
    || { dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none; }
chmod 400 "$state/munge/munge.key"

# --- teardown (registered before anything starts) -------------------------------------------
pids=()        # "name:pid" of every daemon this script started
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ "${#pids[@]}" -gt 0 ] && [ -n "${ctld_pid:-}" ] && kill -0 "$ctld_pid" 2> /dev/null; then
        # jobs first, so that no slurmstepd or job process outlives its slurmd
        local jobs
        jobs="$(squeue -h -o %i 2> /dev/null)"
        if [ -n "$jobs" ]; then
            log "cancelling jobs still in the queue: $(echo $jobs)"
            scancel --full $jobs 2> /dev/null
            for _ in $(seq 30); do
                [ -z "$(squeue -h -o %i 2> /dev/null)" ] && break
                sleep 1
            done
        fi
    fi
    local entry name pid
    for (( i=${#pids[@]}-1; i>=0; i-- )); do       # reverse order: slurmd, slurmctld, munged
        entry="${pids[$i]}"; name="${entry%%:*}"; pid="${entry##*:}"
        kill -TERM "$pid" 2> /dev/null
    done
    local left
    for _ in $(seq 30); do
        left=""
        for entry in "${pids[@]}"; do
            pid="${entry##*:}"
            kill -0 "$pid" 2> /dev/null && left="$left $entry"
        done
        [ -z "$left" ] && break
        sleep 0.5
    done
    if [ -n "$left" ]; then
        log "daemons still alive after TERM, killing:$left"
        for entry in $left; do kill -KILL "${entry##*:}" 2> /dev/null; done
        sleep 1
    fi
    for entry in "${pids[@]}"; do
        pid="${entry##*:}"
        wait "$pid" 2> /dev/null
        if kill -0 "$pid" 2> /dev/null; then
            log "ERROR: ${entry%%:*} (pid $pid) is still running"
            rc=1
        fi
    done
    # any process of this cluster left behind: slurmstepd and job processes carry our
    # SLURM_CONF in their environment (zombies waiting for init to reap them do not count)
    local ours="SLURM_CONF=$SLURM_CONF" stray d p
    unset SLURM_CONF
    for _ in $(seq 20); do
        stray=""
        for d in /proc/[0-9]*; do
            p="${d#/proc/}"
            [ "$p" = "$$" ] && continue
            grep -qsxzF "$ours" "$d/environ" || continue
            [ "$(ps -o stat= -p "$p" 2> /dev/null | cut -c1)" = "Z" ] && continue
            [ -d "$d" ] && stray="$stray $p"
        done
        [ -z "$stray" ] && break
        sleep 0.5
    done
    if [ -n "$stray" ]; then
        log "ERROR: processes of this cluster still running (not killed):$stray"
        ps -o pid,ppid,stat,args -p "${stray# }" >&2
        rc=1
    fi
    if [ "${#pids[@]}" -gt 0 ]; then
        log "stopped:$(printf ' %s' "${pids[@]}")"
    fi
    if [ -n "${KEEP_SLURM_STATE:-}" ] || [ "$rc" -ne 0 ]; then
        log "state and daemon logs kept in $state"
    else
        rm -rf "$state"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- start ------------------------------------------------------------------------------------
fail_start() {
    log "ERROR: $1"
    for f in "$state"/log/*.log; do
        [ -f "$f" ] && { log "--- tail of $f"; tail -n 20 "$f" >&2; }
    done
    exit 1
}

munged --foreground --force --key-file="$state/munge/munge.key" \
    --socket="$state/munge/munge.socket" --pid-file="$state/munge/munged.pid" \
    --seed-file="$state/munge/munged.seed" --log-file="$state/log/munged.log" \
    > "$state/log/munged.out" 2>&1 &
pids+=("munged:$!")
for _ in $(seq 50); do [ -S "$state/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$state/munge/munge.socket" ] || fail_start "munged did not create its socket"

slurmctld -D -i -f "$SLURM_CONF" > "$state/log/slurmctld.out" 2>&1 &
ctld_pid=$!
pids+=("slurmctld:$ctld_pid")
slurmd -D -f "$SLURM_CONF" > "$state/log/slurmd.out" 2>&1 &
pids+=("slurmd:$!")

log "waiting for node $host ($cpus CPUs, $mem_mb MB) to be idle (config $SLURM_CONF)"
ok=0
for _ in $(seq 120); do
    for entry in "${pids[@]}"; do
        kill -0 "${entry##*:}" 2> /dev/null || fail_start "${entry%%:*} exited during start-up"
    done
    node_state="$(sinfo -h -n "$host" -o %t 2> /dev/null || true)"
    if [ "$node_state" = "idle" ]; then ok=1; break; fi
    sleep 0.5
done
[ "$ok" -eq 1 ] || fail_start "node not idle after 60 s (sinfo state: '${node_state:-none}')"
log "Slurm is up: $(sinfo -h -o '%P %D %t %c CPUs %m MB')"

export SYNFLOW_SLURM_LOGS="$state/log"
unset SYNFLOW_SLURM_UNAVAILABLE
# CMD runs in the background so that a TERM or INT to this script is handled at once:
# the signal is passed on to CMD, then the trap tears the cluster down.
"$@" &
cmd_pid=$!
trap 'kill -TERM "$cmd_pid" 2> /dev/null; wait "$cmd_pid" 2> /dev/null; exit 143' TERM
trap 'kill -INT "$cmd_pid" 2> /dev/null; wait "$cmd_pid" 2> /dev/null; exit 130' INT
set +e
wait "$cmd_pid"
cmd_rc=$?
set -e
exit "$cmd_rc"
