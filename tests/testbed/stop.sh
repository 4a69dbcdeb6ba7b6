#!/usr/bin/env bash
# Stop hsm-snake's test bed (see start.sh): cancel its jobs, stop every daemon it started (by pid
# file; a zombie counts as stopped), delete the network namespaces it created, put back the
# /etc/slurm/slurm.conf that was there before. Safe to run twice, or when nothing runs.
#
#   tests/testbed/stop.sh            # keeps $HSM_TESTBED_DIR (keys, database, job history)
#   tests/testbed/stop.sh --purge    # and deletes it
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

PURGE=0
case "${1:-}" in
    --purge) PURGE=1 ;;
    "") ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac
if [ ! -d "$TB_DIR" ]; then
    tb_log "nothing to stop: $TB_DIR does not exist"
    exit 0
fi
tb_lock || exit 1
T0=$(tb_now)
rm -f "$TB_DIR/env.sh" "$TB_DIR/testbed.json"   # the test bed is no longer to be relied on

SLURM_DIR="$TB_DIR/slurm"
# Jobs first, so that no slurmstepd outlives slurmd (one test cluster per machine: all jobs are ours).
if tb_pid_alive "$SLURM_DIR/slurmctld.pid" slurmctld; then
    if [ -n "$(timeout 10 squeue -h -o %i 2>/dev/null | head -n 1)" ]; then
        timeout 10 scancel --user=root >/dev/null 2>&1
        for _ in $(seq 1 50); do     # KillWait=5: jobs end within ~5 s
            [ -z "$(timeout 10 squeue -h -t running,completing -o %i 2>/dev/null | head -n 1)" ] && break
            sleep 0.2
        done
        tb_log "cancelled the test bed's jobs"
    fi
fi
tb_stop_pid "$SLURM_DIR/slurmd.pid" slurmd
tb_stop_pid "$SLURM_DIR/slurmctld.pid" slurmctld 15
tb_stop_pid "$SLURM_DIR/slurmdbd.pid" slurmdbd
tb_stop_pid "$TB_DIR/mysql/mariadbd.pid" mariadbd 30
tb_stop_pid "$TB_DIR/munge/munged.pid" munged

for pidfile in "$TB_DIR"/hosts/*/sshd/sshd.pid; do
    [ -e "$pidfile" ] || continue
    host=${pidfile%/sshd/sshd.pid}
    tb_stop_pid "$pidfile" sshd 10 "sshd of hsmtb-${host##*/}"
done

# The memory cgroups slurmd made for jobs (task/cgroup), once empty.
cg="/sys/fs/cgroup/memory/slurm_$(hostname -s)"
[ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null

# Namespaces start.sh created (deleting one deletes the veth pair with it).
if [ -f "$TB_DIR/netns.created" ]; then
    while read -r ns; do
        [ -n "$ns" ] || continue
        if [ -e "/run/netns/$ns" ]; then
            ip netns del "$ns" && tb_log "deleted network namespace $ns"
        fi
        ip link show "$ns-h" >/dev/null 2>&1 && ip link del "$ns-h"
    done <"$TB_DIR/netns.created"
    rm -f "$TB_DIR/netns.created"
fi

# /etc/slurm/slurm.conf: remove our symlink, put back what was there before.
cur=$TB_ETC_SLURM_CONF
if [ -L "$cur" ] && [ "$(readlink "$cur")" = "$SLURM_CONF" ]; then
    rm -f "$cur"
fi
saved="$TB_DIR/etc-slurm/slurm.conf"
if [ -e "$saved" ] || [ -L "$saved" ]; then
    if [ -e "$cur" ] || [ -L "$cur" ]; then
        tb_log "left $cur alone (it is not the test bed's); the file saved before start is $saved"
    else
        mv -f "$saved" "$cur" && tb_log "restored the previous $cur"
    fi
fi

if [ "$PURGE" = 1 ]; then
    exec 9>&-
    rm -rf "$TB_DIR" && tb_log "deleted $TB_DIR"
fi
tb_log "stopped in $(tb_elapsed "$T0") s"
