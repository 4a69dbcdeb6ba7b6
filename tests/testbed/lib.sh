# Shared by start.sh and stop.sh (sourced, not run). Layout of the test bed and process helpers.
#
# Everything lives under one directory, $HSM_TESTBED_DIR (default /tmp/hsm-testbed):
#   .lock                 flock taken by start.sh and stop.sh (concurrent callers wait)
#   env.sh testbed.json   written by start.sh (facts for tests), removed by stop.sh
#   munge/                private munged: key, socket, pid, log
#   mysql/                private MariaDB on 127.0.0.1:13306: data, socket, pid, log
#   slurm/                slurm.conf, slurmdbd.conf, plugstack.conf, state, spool, pids, log/
#   ssh/                  client key, known_hosts, config, authorized_keys, decoy host key
#   hosts/<name>/         one "machine" each (lo, h1, h2): sshd/ (config, host key, pid, log)
#                         and project_dir/ (its "remote disk")
#   netns.created         network namespaces created by start.sh (deleted by stop.sh)
#   etc-slurm/            the /etc/slurm/slurm.conf that was there before start.sh, if any

TB_DIR="${HSM_TESTBED_DIR:-/tmp/hsm-testbed}"
TB_DIR="${TB_DIR%/}"

# Fixed names, addresses and ports (private, unlikely to clash with a real installation).
TB_CLUSTER=hsmtb
TB_PARTITION=debug
TB_SLURMCTLD_PORT=16817
TB_SLURMD_PORT=16818
TB_SLURMDBD_PORT=16819
TB_MYSQL_PORT=13306
TB_SSH_LO_PORT=2222
TB_NET_PREFIX=10.231          # host hN: 10.231.N.1 (host side) <-> 10.231.N.2 (inside netns)
TB_NETNS_HOSTS="h1 h2"        # namespace hsmtb-hN, veths hsmtb-hN-h (host) / hsmtb-hN-n (inside)
TB_ETC_SLURM_CONF=/etc/slurm/slurm.conf

export SLURM_CONF="$TB_DIR/slurm/slurm.conf"

tb_log() { printf '[testbed] %s\n' "$*"; }

# Seconds since the epoch with a fraction (for timings).
tb_now() { date +%s.%N; }
tb_elapsed() { awk -v a="$1" -v b="$(tb_now)" 'BEGIN { printf "%.1f", b - a }'; }

# Take the test bed's lock (fd 9) so that start.sh/stop.sh calls from parallel test runs queue up.
tb_lock() {
    mkdir -p "$TB_DIR" || return 1
    exec 9>"$TB_DIR/.lock"
    if ! flock -w 300 9; then
        echo "testbed: could not take the lock $TB_DIR/.lock within 300 s" >&2
        return 1
    fi
}

# tb_pid_alive PIDFILE NAME: the pid in PIDFILE is a live (not zombie) process whose command name
# is NAME. PID 1 here does not reap orphans, so a stopped daemon may linger as <defunct>: that
# counts as stopped. Checking the name guards against a reused pid from an earlier boot.
tb_pid_alive() {
    local pidfile=$1 name=$2 pid state comm
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' 2>/dev/null <"$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [ "$comm" = "$name" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    case "$state" in Z|X|x|"") return 1 ;; esac
    return 0
}

tb_pid_of() { tr -dc '0-9' 2>/dev/null <"$1"; }

# tb_stop_pid PIDFILE NAME [SECONDS [LABEL]]: SIGTERM the process, wait up to SECONDS (default 10)
# for it to end (or turn zombie), then SIGKILL. Removes the pid file. Prints what it did.
tb_stop_pid() {
    local pidfile=$1 name=$2 wait=${3:-10} label=${4:-$2} pid i
    if ! tb_pid_alive "$pidfile" "$name"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(tb_pid_of "$pidfile")
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < wait * 10; i++)); do
        tb_pid_alive "$pidfile" "$name" || break
        sleep 0.1
    done
    if tb_pid_alive "$pidfile" "$name"; then
        kill -KILL "$pid" 2>/dev/null
        sleep 0.2
        tb_log "stopped $label (pid $pid, SIGKILL after ${wait}s)"
    else
        tb_log "stopped $label (pid $pid)"
    fi
    rm -f "$pidfile"
}

# tb_wait SECONDS COMMAND...: run COMMAND every 0.2 s until it succeeds or SECONDS pass.
tb_wait() {
    local secs=$1 deadline
    shift
    deadline=$(($(date +%s%N) + secs * 1000000000))
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$(date +%s%N)" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

tb_ssh_host_dir() { echo "$TB_DIR/hosts/$1"; }

# The state directory of another test bed that /etc/slurm/slurm.conf links to (one per machine:
# it owns that link and the ports), or nothing.
tb_other_testbed() {
    local target
    [ -L "$TB_ETC_SLURM_CONF" ] || return 0
    target=$(readlink "$TB_ETC_SLURM_CONF")
    case "$target" in */slurm/slurm.conf) ;; *) return 0 ;; esac
    [ "$target" = "$SLURM_CONF" ] && return 0
    if [ ! -e "$target" ] || grep -q "hsm-snake test bed" "$target" 2>/dev/null; then
        echo "${target%/slurm/slurm.conf}"
    fi
}

# tb_dir_active DIR: some daemon of the test bed in DIR is alive.
tb_dir_active() {
    local d=$1
    tb_pid_alive "$d/slurm/slurmctld.pid" slurmctld || tb_pid_alive "$d/slurm/slurmd.pid" slurmd ||
    tb_pid_alive "$d/slurm/slurmdbd.pid" slurmdbd || tb_pid_alive "$d/mysql/mariadbd.pid" mariadbd ||
    tb_pid_alive "$d/munge/munged.pid" munged || {
        local p
        for p in "$d"/hosts/*/sshd/sshd.pid; do tb_pid_alive "$p" sshd && return 0; done
        return 1
    }
}
