#!/usr/bin/env bash
# Start hsm-snake's test bed on this machine (Debian 12, as root): a single-node Slurm with
# accounting (munged, MariaDB, slurmdbd, slurmctld, slurmd), the PBS wrappers over it
# (slurm-wlm-torque), an sshd on 127.0.0.1:2222 and two "hosts" with their own addresses (network
# namespaces, each with an sshd on port 22). Idempotent: what already runs is checked and kept.
#
#   tests/testbed/start.sh          # state in $HSM_TESTBED_DIR (default /tmp/hsm-testbed)
#   . /tmp/hsm-testbed/env.sh       # SLURM_CONF, ssh config/key/known_hosts, HSM_TB_* flags
#   tests/testbed/stop.sh           # stops it all again, restores /etc/slurm/slurm.conf
#
# Writes $DIR/env.sh and $DIR/testbed.json (the same facts, with one flag per service that came
# up). Exits non-zero, naming the part that failed and its log, when any part fails; the parts
# that did come up are still described (and flagged) in env.sh/testbed.json.
# See tests/testbed/README.md for what is where and why.
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

T0=$(tb_now)
FAILURES=()
STARTED=()
declare -A UP=()

if [ "$(id -u)" != 0 ]; then
    echo "testbed: start.sh must run as root (apt-get, network namespaces, /etc/slurm, sshd on port 22)" >&2
    exit 1
fi
tb_lock || exit 1
OTHER_TB=$(tb_other_testbed)
if [ -n "$OTHER_TB" ] && tb_dir_active "$OTHER_TB"; then
    echo "testbed: another test bed runs in $OTHER_TB (it owns $TB_ETC_SLURM_CONF, the ports and the" \
         "namespace names); stop it first: HSM_TESTBED_DIR=$OTHER_TB $HERE/stop.sh" >&2
    exit 1
fi
chmod 755 "$TB_DIR"     # munged wants every directory above its socket to be searchable by all
rm -f "$TB_DIR/env.sh" "$TB_DIR/testbed.json"

# fail PART MESSAGE LOG: record a failed part and show the end of its log.
fail() {
    FAILURES+=("$1: $2 (log: $3)")
    echo "testbed: FAILED $1: $2" >&2
    echo "testbed:   log: $3" >&2
    if [ -f "$3" ]; then tail -n 15 "$3" | sed 's/^/testbed:   | /' >&2; fi
    return 1
}

# started NAME PIDFILE: remember and print that NAME was started.
started() {
    STARTED+=("$1 (pid $(tb_pid_of "$2"))")
    tb_log "started $1 (pid $(tb_pid_of "$2"))"
}

# write_file FILE MODE: write stdin to FILE if its content differs; returns 0 when FILE changed.
write_file() {
    local file=$1 mode=$2 tmp
    tmp=$(mktemp "$file.XXXXXX") || return 2
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$file"
    return 0
}

# ---------------------------------------------------------------------------------------------
# 1. packages
PKGS=(munge slurmctld slurmd slurm-client slurm-wlm-torque slurmdbd mariadb-server
      openssh-server openssh-client rsync iproute2)
part_packages() {
    local p missing=() log="$TB_DIR/apt.log"
    for p in "${PKGS[@]}"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    tb_log "installing ${missing[*]} (apt-get, log $log)"
    local t=$(tb_now)
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PKGS[@]}"; } \
           >"$log" 2>&1; then
        fail packages "apt-get install of ${missing[*]} failed" "$log"
        return 1
    fi
    tb_log "installed packages in $(tb_elapsed "$t") s"
}

# ---------------------------------------------------------------------------------------------
# 2. munge: private key and socket
MUNGE_DIR="$TB_DIR/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket"
munge_ok() { munge -S "$MUNGE_SOCKET" -n </dev/null 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }
part_munge() {
    local pid="$MUNGE_DIR/munged.pid" log="$MUNGE_DIR/munged.log"
    mkdir -p "$MUNGE_DIR" && chmod 755 "$MUNGE_DIR"
    if [ ! -s "$MUNGE_DIR/munge.key" ]; then
        (umask 077 && head -c 1024 /dev/urandom >"$MUNGE_DIR/munge.key") && chmod 400 "$MUNGE_DIR/munge.key"
    fi
    if tb_pid_alive "$pid" munged && munge_ok; then return 0; fi
    tb_stop_pid "$pid" munged
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    munged --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" --pid-file="$pid" \
        --log-file="$log" --seed-file="$MUNGE_DIR/munged.seed" </dev/null >>"$log" 2>&1 9>&- \
        || { fail munge "munged did not start" "$log"; return 1; }
    tb_wait 10 munge_ok || { fail munge "munge/unmunge through $MUNGE_SOCKET fails" "$log"; return 1; }
    started munged "$pid"
}

# ---------------------------------------------------------------------------------------------
# 3. MariaDB for slurmdbd, private, on 127.0.0.1:$TB_MYSQL_PORT
MYSQL_DIR="$TB_DIR/mysql"
MYSQL_SOCKET="$MYSQL_DIR/mysqld.sock"
mysql_ok() { mariadb-admin --no-defaults -S "$MYSQL_SOCKET" -u root ping; }
part_mysql() {
    local data="$MYSQL_DIR/data" pid="$MYSQL_DIR/mariadbd.pid" log="$MYSQL_DIR/mariadbd.log"
    mkdir -p "$MYSQL_DIR"
    if [ ! -d "$data/mysql" ]; then
        rm -rf "$data"
        mariadb-install-db --no-defaults --datadir="$data" --user=root \
            --auth-root-authentication-method=socket --skip-test-db >"$MYSQL_DIR/install.log" 2>&1 \
            || { fail mariadb "mariadb-install-db failed" "$MYSQL_DIR/install.log"; return 1; }
    fi
    if ! { tb_pid_alive "$pid" mariadbd && mysql_ok >/dev/null 2>&1; }; then
        tb_stop_pid "$pid" mariadbd 20
        rm -f "$MYSQL_SOCKET"
        setsid mariadbd --no-defaults --datadir="$data" --user=root --port="$TB_MYSQL_PORT" \
            --bind-address=127.0.0.1 --socket="$MYSQL_SOCKET" --pid-file="$pid" \
            --log-error="$log" --skip-name-resolve --innodb-buffer-pool-size=64M \
            --innodb-lock-wait-timeout=900 </dev/null >>"$log" 2>&1 9>&- &
        tb_wait 30 mysql_ok || { fail mariadb "mariadbd does not answer on $MYSQL_SOCKET" "$log"; return 1; }
        started "mariadbd (127.0.0.1:$TB_MYSQL_PORT)" "$pid"
    fi
    if [ ! -s "$MYSQL_DIR/slurm.pass" ]; then
        (umask 077 && head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$MYSQL_DIR/slurm.pass")
    fi
    local pw host sql="CREATE DATABASE IF NOT EXISTS slurm_acct_db;"
    pw=$(cat "$MYSQL_DIR/slurm.pass")
    for host in 127.0.0.1 localhost; do
        sql+="CREATE USER IF NOT EXISTS 'slurm'@'$host' IDENTIFIED BY '$pw';"
        sql+="ALTER USER 'slurm'@'$host' IDENTIFIED BY '$pw';"
        sql+="GRANT ALL ON slurm_acct_db.* TO 'slurm'@'$host';"
    done
    mariadb --no-defaults -S "$MYSQL_SOCKET" -u root -e "$sql" >>"$MYSQL_DIR/setup.log" 2>&1 \
        || { fail mariadb "creating the slurm database user failed" "$MYSQL_DIR/setup.log"; return 1; }
}

# ---------------------------------------------------------------------------------------------
# 4. Slurm: configs, the /etc/slurm/slurm.conf symlink, slurmdbd, slurmctld, slurmd
SLURM_DIR="$TB_DIR/slurm"
NODE=$(hostname -s)
SLURM_CHANGED=0
# Memory enforcement: a job over its --mem must be killed and end OUT_OF_MEMORY in sacct.
# TaskPlugin=task/none enforces nothing. What works on Debian 12 here (hybrid cgroup v1 with the
# memory controller at /sys/fs/cgroup/memory, Slurm 22.05): task/cgroup with cgroup/v1 and
# ConstrainRAMSpace=yes (+ ConstrainSwapSpace with AllowedSwapSpace=0 where memsw exists): a 1 GB
# allocation under --mem=100M is OOM-killed at once, sacct State OUT_OF_MEMORY, ExitCode 0:125;
# proctrack/linuxproc stays. Slurm then keeps a cgroup /sys/fs/cgroup/memory/slurm_<node>.
# Fallback where no cgroup v1 memory controller is writable (e.g. cgroup v2 without systemd
# delegation): JobAcctGatherParams=OverMemoryKill, polling every second (task=1). It does kill
# the job (log: "exceeded memory limit ... being killed"), but sacct then says FAILED, ExitCode
# 0:9, not OUT_OF_MEMORY. The two cannot be combined (slurmd/slurmctld: fatal "Jobs memory is
# being constrained by both TaskPlugin cgroup and JobAcctGather plugin").
# HSM_TESTBED_MEM=cgroup|overmemorykill forces one; the choice is in testbed.json.
MEM_MODE="" TASK_PLUGIN="" MEM_CONF="" MEM_SWAP=no
choose_mem_mode() {
    local memcg=/sys/fs/cgroup/memory mode=${HSM_TESTBED_MEM:-auto}
    if [ "$mode" = auto ]; then
        mode=overmemorykill
        if [ -f "$memcg/memory.limit_in_bytes" ] && mkdir "$memcg/hsmtb-probe.$$" 2>/dev/null; then
            rmdir "$memcg/hsmtb-probe.$$"
            mode=cgroup
        fi
    fi
    case "$mode" in
        cgroup)
            TASK_PLUGIN=task/cgroup
            MEM_CONF="# memory: task/cgroup + cgroup.conf ConstrainRAMSpace (OUT_OF_MEMORY in sacct)"
            [ -f "$memcg/memory.memsw.limit_in_bytes" ] && MEM_SWAP=yes ;;
        overmemorykill)
            TASK_PLUGIN=task/none
            MEM_CONF="# memory: polled by jobacct_gather (killed jobs end FAILED, not OUT_OF_MEMORY)"$'\n'
            MEM_CONF+="JobAcctGatherParams=OverMemoryKill" ;;
        *)
            fail slurm "HSM_TESTBED_MEM=$mode: use cgroup or overmemorykill" "$SLURM_CONF"
            return 1 ;;
    esac
    MEM_MODE=$mode
}

write_slurm_configs() {
    local spank mem
    mkdir -p "$SLURM_DIR"/{state,spool,log,jobs}
    spank=$(ls /usr/lib/*/slurm-wlm/spank_pbs.so 2>/dev/null | head -n 1)
    [ -n "$spank" ] || { fail slurm "spank_pbs.so not found under /usr/lib/*/slurm-wlm" "$TB_DIR/apt.log"; return 1; }
    choose_mem_mode || return 1
    # RealMemory=4000 as in TESTBED.md, less on a machine that has less (else the node drains).
    mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 - 512 }' /proc/meminfo)
    [ "$mem" -gt 4000 ] && mem=4000

    write_file "$SLURM_DIR/plugstack.conf" 644 <<EOF && SLURM_CHANGED=1
# Sets PBS_JOBID, PBS_O_WORKDIR, ... in jobs (the PBS wrappers of slurm-wlm-torque need them).
optional $spank
EOF
    write_file "$SLURM_DIR/slurm.conf" 644 <<EOF && SLURM_CHANGED=1
# hsm-snake test bed (tests/testbed/start.sh): a single-node cluster, everything under $TB_DIR.
# Also reachable as $TB_ETC_SLURM_CONF (symlink): job steps lose SLURM_CONF and read that path.
ClusterName=$TB_CLUSTER
SlurmctldHost=localhost
SlurmctldPort=$TB_SLURMCTLD_PORT
SlurmdPort=$TB_SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# The private munged: every Slurm config must name its socket, here AND in AccountingStoragePass
# (slurmctld/sacctmgr reach slurmdbd through the latter; without it slurmctld hangs for minutes).
AuthInfo=socket=$MUNGE_SOCKET
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$TB_SLURMDBD_PORT
AccountingStoragePass=$MUNGE_SOCKET
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
PlugStackConfig=$SLURM_DIR/plugstack.conf
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=$TASK_PLUGIN
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
ReturnToService=2
# Finished jobs stay visible to squeue/qstat for 5 minutes.
MinJobAge=300
KillWait=5
InactiveLimit=0
MaxArraySize=1001
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
$MEM_CONF
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=2 RealMemory=$mem State=UNKNOWN
PartitionName=$TB_PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=500
EOF
    if [ "$MEM_MODE" = cgroup ]; then
        write_file "$SLURM_DIR/cgroup.conf" 644 <<EOF && SLURM_CHANGED=1
# hsm-snake test bed: memory limits through the cgroup v1 memory controller (see slurm.conf).
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainRAMSpace=yes
AllowedRAMSpace=100
ConstrainSwapSpace=$MEM_SWAP
AllowedSwapSpace=0
EOF
    elif [ -e "$SLURM_DIR/cgroup.conf" ]; then
        rm -f "$SLURM_DIR/cgroup.conf" && SLURM_CHANGED=1
    fi
    write_file "$SLURM_DIR/slurmdbd.conf" 600 <<EOF && SLURM_CHANGED=1
# hsm-snake test bed: slurmdbd over the private MariaDB on 127.0.0.1:$TB_MYSQL_PORT.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdPort=$TB_SLURMDBD_PORT
SlurmUser=root
PidFile=$SLURM_DIR/slurmdbd.pid
LogFile=$SLURM_DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$TB_MYSQL_PORT
StorageUser=slurm
StoragePass=$(cat "$MYSQL_DIR/slurm.pass")
StorageLoc=slurm_acct_db
EOF
    return 0
}

# The jobstep plugin strips SLURM_CONF before its inner srun, which then reads /etc/slurm/slurm.conf:
# point that at our config, keeping any previous file in $TB_DIR/etc-slurm/ (stop.sh puts it back).
link_etc_slurm() {
    local cur=$TB_ETC_SLURM_CONF save="$TB_DIR/etc-slurm"
    if [ -L "$cur" ] && [ "$(readlink "$cur")" = "$SLURM_CONF" ]; then return 0; fi
    # A link left by a stopped (or killed) test bed in another directory is not worth keeping.
    [ -n "$OTHER_TB" ] && rm -f "$cur"
    mkdir -p /etc/slurm "$save"
    if [ -e "$cur" ] || [ -L "$cur" ]; then
        if [ -e "$save/slurm.conf" ] || [ -L "$save/slurm.conf" ]; then
            mv -f "$cur" "$save/slurm.conf.$(date +%Y%m%d%H%M%S)"
        else
            mv -f "$cur" "$save/slurm.conf"
            tb_log "saved the previous $cur to $save/slurm.conf"
        fi
    fi
    ln -s "$SLURM_CONF" "$cur"
}

sacctmgr_ok() { timeout 10 sacctmgr -n -P list cluster format=cluster; }
sacct_ok() { timeout 10 sacct -n -X -S now-1hours -o JobID; }
node_state() { timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1; }
node_ready() { case "$(node_state)" in idle|mixed|allocated|completing) return 0 ;; esac; return 1; }

part_slurm() {
    local log pid
    write_slurm_configs || return 1
    link_etc_slurm || return 1
    if [ "$SLURM_CHANGED" = 1 ]; then      # a running daemon would keep the old settings
        tb_stop_pid "$SLURM_DIR/slurmd.pid" slurmd
        tb_stop_pid "$SLURM_DIR/slurmctld.pid" slurmctld 15
        tb_stop_pid "$SLURM_DIR/slurmdbd.pid" slurmdbd
    fi

    log="$SLURM_DIR/log/slurmdbd.log" pid="$SLURM_DIR/slurmdbd.pid"
    if ! { tb_pid_alive "$pid" slurmdbd && sacctmgr_ok >/dev/null 2>&1; }; then
        tb_stop_pid "$pid" slurmdbd
        slurmdbd </dev/null >>"$log" 2>&1 9>&- || { fail slurmdbd "slurmdbd did not start" "$log"; return 1; }
        tb_wait 30 sacctmgr_ok || { fail slurmdbd "sacctmgr gets no answer from slurmdbd" "$log"; return 1; }
        started "slurmdbd (port $TB_SLURMDBD_PORT)" "$pid"
    fi
    if ! sacctmgr_ok 2>/dev/null | grep -qx "$TB_CLUSTER"; then
        timeout 20 sacctmgr -i add cluster "$TB_CLUSTER" >>"$log" 2>&1 \
            || { fail slurmdbd "sacctmgr add cluster $TB_CLUSTER failed" "$log"; return 1; }
    fi
    # A QOS with a submit limit, for the test that a sweep stays within MaxSubmitJobs.
    if [ -z "$(timeout 10 sacctmgr -n -P show qos hsmtb_small format=Name 2>/dev/null)" ]; then
        timeout 20 sacctmgr -i add qos hsmtb_small MaxSubmitJobsPerUser=3 >>"$log" 2>&1 \
            || { fail slurmdbd "sacctmgr add qos hsmtb_small failed" "$log"; return 1; }
    fi

    log="$SLURM_DIR/log/slurmctld.log" pid="$SLURM_DIR/slurmctld.pid"
    if ! tb_pid_alive "$pid" slurmctld; then
        slurmctld </dev/null >>"$log" 2>&1 9>&- || { fail slurmctld "slurmctld did not start" "$log"; return 1; }
        tb_wait 10 tb_pid_alive "$pid" slurmctld || { fail slurmctld "slurmctld exited" "$log"; return 1; }
        started "slurmctld (port $TB_SLURMCTLD_PORT)" "$pid"
    fi
    log="$SLURM_DIR/log/slurmd.log" pid="$SLURM_DIR/slurmd.pid"
    if ! tb_pid_alive "$pid" slurmd; then
        slurmd </dev/null >>"$log" 2>&1 9>&- || { fail slurmd "slurmd did not start" "$log"; return 1; }
        tb_wait 10 tb_pid_alive "$pid" slurmd || { fail slurmd "slurmd exited" "$log"; return 1; }
        started "slurmd (node $NODE)" "$pid"
    fi

    # A node left drained by an earlier run (e.g. "Kill task failed") would never run a job.
    case "$(node_state)" in drain*|down*|fail*)
        timeout 10 scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 ;;
    esac
    tb_wait 30 node_ready || {
        fail slurm "node $NODE not idle after 30 s (state: '$(node_state)')" "$SLURM_DIR/log/slurmd.log"
        return 1
    }
    tb_wait 30 sacct_ok || { fail slurm "sacct gets no answer" "$SLURM_DIR/log/slurmdbd.log"; return 1; }
    UP[slurm]=1

    # Smoke test: one job through sbatch, seen COMPLETED by sacct.
    local job state=""
    job=$(timeout 20 sbatch --parsable -J hsmtb-smoke --chdir "$SLURM_DIR/jobs" \
          -o "$SLURM_DIR/jobs/smoke-%j.out" --wrap true 2>>"$SLURM_DIR/log/smoke.log") \
        || { UP[slurm]=0; fail slurm "sbatch failed" "$SLURM_DIR/log/smoke.log"; return 1; }
    job=${job%%;*}
    job_completed() { state=$(timeout 10 sacct -n -X -P -o State -j "$job" 2>/dev/null | head -n 1); [ "$state" = COMPLETED ]; }
    tb_wait 30 job_completed || {
        UP[slurm]=0
        fail slurm "smoke job $job not COMPLETED in sacct after 30 s (state '$state')" "$SLURM_DIR/log/slurmctld.log"
        return 1
    }
    if command -v qsub >/dev/null && command -v qstat >/dev/null && command -v qdel >/dev/null &&
       timeout 20 qstat >/dev/null 2>>"$SLURM_DIR/log/smoke.log"; then
        UP[pbs]=1
    else
        fail pbs "the PBS wrappers (qsub/qstat/qdel of slurm-wlm-torque) do not work" "$SLURM_DIR/log/smoke.log"
    fi
}

# ---------------------------------------------------------------------------------------------
# 5. SSH: a client key, an sshd on 127.0.0.1:2222 and one in each network namespace
SSH_DIR="$TB_DIR/ssh"
SSH_CONFIG="$SSH_DIR/config"
SSH_KEY="$SSH_DIR/id_ed25519"
KNOWN_HOSTS="$SSH_DIR/known_hosts"
BADKEY_ALIAS=hsmtb-badkey
# name alias address port netns
SSH_HOSTS=("lo hsmtb-lo 127.0.0.1 $TB_SSH_LO_PORT -")
for h in $TB_NETNS_HOSTS; do
    SSH_HOSTS+=("$h hsmtb-$h $TB_NET_PREFIX.${h#h}.2 22 hsmtb-$h")
done

keygen() { [ -s "$1" ] || ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1" >/dev/null; }

write_ssh_files() {
    local name alias addr port ns hdir kh="" cfg="" changed
    mkdir -p "$SSH_DIR" /run/sshd && chmod 700 "$SSH_DIR"
    keygen "$SSH_KEY" hsmtb-client || return 1
    keygen "$SSH_DIR/decoy_host_ed25519_key" hsmtb-decoy || return 1
    write_file "$SSH_DIR/authorized_keys" 600 <"$SSH_KEY.pub"
    for entry in "${SSH_HOSTS[@]}"; do
        read -r name alias addr port ns <<<"$entry"
        hdir=$(tb_ssh_host_dir "$name")
        mkdir -p "$hdir/sshd" "$hdir/project_dir"
        keygen "$hdir/sshd/ssh_host_ed25519_key" "hsmtb-$name-host" || return 1
        changed=0
        write_file "$hdir/sshd/sshd_config" 644 <<EOF && changed=1
# hsm-snake test bed: sshd of host "$name" ($alias), $addr:$port.
Port $port
ListenAddress $addr
HostKey $hdir/sshd/ssh_host_ed25519_key
PidFile $hdir/sshd/sshd.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
EOF
        [ "$changed" = 1 ] && tb_stop_pid "$hdir/sshd/sshd.pid" sshd 10 "sshd of $alias"
        if [ "$port" = 22 ]; then kh+="$addr "; else kh+="[$addr]:$port "; fi
        kh+="$(cut -d' ' -f1-2 "$hdir/sshd/ssh_host_ed25519_key.pub")"$'\n'
        cfg+="Host $alias"$'\n'"    HostName $addr"$'\n'"    Port $port"$'\n'
    done
    # The bad-key alias reaches the sshd of hsmtb-lo, but checks its key under another name that
    # known_hosts binds to a different (decoy) key: ssh must refuse it.
    kh+="$BADKEY_ALIAS.invalid $(cut -d' ' -f1-2 "$SSH_DIR/decoy_host_ed25519_key.pub")"$'\n'
    cfg+="Host $BADKEY_ALIAS"$'\n'"    HostName 127.0.0.1"$'\n'"    Port $TB_SSH_LO_PORT"$'\n'
    cfg+="    HostKeyAlias $BADKEY_ALIAS.invalid"$'\n'
    write_file "$KNOWN_HOSTS" 644 <<<"${kh%$'\n'}"
    write_file "$SSH_CONFIG" 644 <<EOF
# hsm-snake test bed: ssh -F $SSH_CONFIG <alias>
$cfg
Host hsmtb-*
    User root
    IdentityFile "$SSH_KEY"
    IdentitiesOnly yes
    UserKnownHostsFile "$KNOWN_HOSTS"
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    BatchMode yes
    PasswordAuthentication no
    ConnectTimeout 5
    ServerAliveInterval 5
EOF
    return 0
}

# netns_up NAME: namespace hsmtb-NAME with a veth pair, NET.N.1 outside and NET.N.2 inside.
NETNS_CREATED="$TB_DIR/netns.created"
netns_up() {
    local name=$1 n=${1#h} ns="hsmtb-$1" vh="hsmtb-$1-h" vn="hsmtb-$1-n" log=$2
    local hip="$TB_NET_PREFIX.$n.1" nip="$TB_NET_PREFIX.$n.2" used
    used=$(ip -4 -o addr show 2>/dev/null | awk -v p="$TB_NET_PREFIX.$n." -v me="$vh" \
           'index($4, p) == 1 && $2 != me { print $2 }' | head -n 1)
    if [ -n "$used" ]; then
        echo "$TB_NET_PREFIX.$n.0/24 is already used by interface $used" >>"$log"
        return 1
    fi
    if [ ! -e "/run/netns/$ns" ]; then
        ip netns add "$ns" >>"$log" 2>&1 || return 1
        tb_log "created network namespace $ns"
    fi
    grep -qx "$ns" "$NETNS_CREATED" 2>/dev/null || echo "$ns" >>"$NETNS_CREATED"
    if ! ip link show "$vh" >/dev/null 2>&1; then
        ip link add "$vh" type veth peer name "$vn" netns "$ns" >>"$log" 2>&1 || return 1
    fi
    ip addr replace "$hip/24" dev "$vh" >>"$log" 2>&1 &&
    ip link set "$vh" up >>"$log" 2>&1 &&
    ip -n "$ns" link set lo up >>"$log" 2>&1 &&
    ip -n "$ns" addr replace "$nip/24" dev "$vn" >>"$log" 2>&1 &&
    ip -n "$ns" link set "$vn" up >>"$log" 2>&1
}

ssh_to() { timeout 15 ssh -F "$SSH_CONFIG" "$@" </dev/null; }

# ssh_host_start NAME ALIAS ADDR PORT NETNS: the host's namespace (unless NETNS is -) and its sshd.
ssh_host_start() {
    local name=$1 alias=$2 addr=$3 port=$4 ns=$5 hdir pid log run=()
    hdir=$(tb_ssh_host_dir "$name")
    pid="$hdir/sshd/sshd.pid" log="$hdir/sshd/sshd.log"
    if [ "$ns" != - ]; then
        netns_up "$name" "$log" || { fail "ssh $alias" "network namespace $ns / veth setup failed" "$log"; return 1; }
        run=(ip netns exec "$ns")
    fi
    tb_pid_alive "$pid" sshd && return 0
    /usr/sbin/sshd -t -f "$hdir/sshd/sshd_config" >>"$log" 2>&1 \
        || { fail "ssh $alias" "sshd -t rejects $hdir/sshd/sshd_config" "$log"; return 1; }
    "${run[@]}" /usr/sbin/sshd -f "$hdir/sshd/sshd_config" -E "$log" </dev/null >>"$log" 2>&1 9>&- \
        || { fail "ssh $alias" "sshd did not start" "$log"; return 1; }
    tb_wait 5 tb_pid_alive "$pid" sshd || { fail "ssh $alias" "sshd exited" "$log"; return 1; }
    local desc="sshd $alias ($addr:$port)"
    [ "$ns" != - ] && desc+=" in netns $ns"
    started "$desc" "$pid"
}

# ssh_host_check NAME ALIAS: ssh, then rsync both ways, through ALIAS into the host's project_dir
# (its "remote disk"). On failure the last line printed says what failed.
ssh_host_check() {
    local name=$1 alias=$2 hdir probe
    hdir=$(tb_ssh_host_dir "$name")
    if ! tb_wait 10 ssh_to "$alias" true; then
        ssh_to "$alias" true
        echo "ssh -F $SSH_CONFIG $alias true fails (sshd log: $hdir/sshd/sshd.log)"
        return 1
    fi
    probe="$TB_DIR/.rsync-probe-$name"
    echo "hsmtb $name $$" >"$probe"
    if ! { timeout 20 rsync -a -e "ssh -F $SSH_CONFIG" "$probe" "$alias:$hdir/project_dir/.hsmtb-probe" &&
           timeout 20 rsync -a -e "ssh -F $SSH_CONFIG" "$alias:$hdir/project_dir/.hsmtb-probe" "$probe.back" &&
           cmp "$probe" "$probe.back"; }; then
        echo "rsync through $alias to $hdir/project_dir failed"
        return 1
    fi
    rm -f "$probe" "$probe.back" "$hdir/project_dir/.hsmtb-probe"
}

part_ssh() {
    local entry name alias addr port ns out
    local -A checks=()
    write_ssh_files || { fail ssh "writing keys/configs under $SSH_DIR failed" "$SSH_DIR"; return 1; }
    for entry in "${SSH_HOSTS[@]}"; do
        read -r name alias addr port ns <<<"$entry"
        ssh_host_start "$name" "$alias" "$addr" "$port" "$ns" || continue
        # ~0.4 s per ssh connection: check the hosts in parallel.
        ssh_host_check "$name" "$alias" >"$(tb_ssh_host_dir "$name")/check.log" 2>&1 &
        checks[$name]=$!
    done
    for entry in "${SSH_HOSTS[@]}"; do
        read -r name alias addr port ns <<<"$entry"
        [ -n "${checks[$name]:-}" ] || continue
        out="$(tb_ssh_host_dir "$name")/check.log"
        if wait "${checks[$name]}"; then
            UP["ssh_$name"]=1
        else
            fail "ssh $alias" "$(tail -n 1 "$out")" "$out"
        fi
    done
    if [ "${UP[ssh_lo]:-0}" = 1 ]; then
        out=$(ssh_to "$BADKEY_ALIAS" true 2>&1)
        if [ $? -ne 0 ] && grep -q "Host key verification failed" <<<"$out"; then
            UP[ssh_badkey]=1
        else
            fail "ssh $BADKEY_ALIAS" "ssh to $BADKEY_ALIAS was not refused for its host key: $out" "$SSH_CONFIG"
        fi
    fi
}

# ---------------------------------------------------------------------------------------------
# 6. env.sh and testbed.json
write_facts() {
    local entry name alias addr port ns flag hosts=""
    local -a env=(
        "HSM_TESTBED_DIR=$TB_DIR"
        "SLURM_CONF=$SLURM_CONF"
        "HSM_TB_SLURM=${UP[slurm]:-0}"
        "HSM_TB_PBS=${UP[pbs]:-0}"
        "HSM_TB_SLURM_CLUSTER=$TB_CLUSTER"
        "HSM_TB_SLURM_PARTITION=$TB_PARTITION"
        "HSM_TB_SLURM_NODE=$NODE"
        "HSM_TB_SLURM_LOG_DIR=$SLURM_DIR/log"
        "HSM_TB_SLURM_MAX_ARRAY_SIZE=1001"
        "HSM_TB_SLURM_MEM_ENFORCEMENT=$MEM_MODE"
        "HSM_TB_MUNGE_SOCKET=$MUNGE_SOCKET"
        "HSM_TB_MYSQL_PORT=$TB_MYSQL_PORT"
        "HSM_TB_SSH_CONFIG=$SSH_CONFIG"
        "HSM_TB_SSH_KEY=$SSH_KEY"
        "HSM_TB_SSH_KNOWN_HOSTS=$KNOWN_HOSTS"
        "HSM_TB_SSH_BADKEY_HOST=$BADKEY_ALIAS"
        "HSM_TB_SSH_BADKEY=${UP[ssh_badkey]:-0}"
    )
    for entry in "${SSH_HOSTS[@]}"; do
        read -r name alias addr port ns <<<"$entry"
        flag=${UP[ssh_$name]:-0}
        [ "$flag" = 1 ] && hosts+="$alias "
        local up=${name^^}
        env+=("HSM_TB_SSH_${up}=$flag" "HSM_TB_SSH_${up}_HOST=$alias" "HSM_TB_SSH_${up}_ADDR=$addr"
              "HSM_TB_SSH_${up}_PORT=$port" "HSM_TB_SSH_${up}_NETNS=${ns/#-/}"
              "HSM_TB_SSH_${up}_PROJECT_DIR=$(tb_ssh_host_dir "$name")/project_dir")
    done
    env+=("HSM_TB_SSH_HOSTS=${hosts% }")
    local failures
    failures=$(printf '%s\n' "${FAILURES[@]}")
    TB_ENV=$(printf '%s\n' "${env[@]}") TB_FAILURES="$failures" TB_SECONDS="$(tb_elapsed "$T0")" \
    TB_HOSTS="$(printf '%s\n' "${SSH_HOSTS[@]}")" TB_DIR="$TB_DIR" \
    python3 - <<'EOF'
import json, os, shlex, time

env = dict(line.split("=", 1) for line in os.environ["TB_ENV"].splitlines())
failures = [f for f in os.environ["TB_FAILURES"].splitlines() if f]
d = os.environ["TB_DIR"]
slurm = f"{d}/slurm"

def pid(path):
    try:
        return int(open(path).read().strip())
    except (OSError, ValueError):
        return None

hosts = {}
for line in os.environ["TB_HOSTS"].splitlines():
    name, alias, addr, port, ns = line.split()
    key = f"HSM_TB_SSH_{name.upper()}"
    hosts[alias] = {
        "up": env[key] == "1", "name": name, "addr": addr, "port": int(port),
        "netns": None if ns == "-" else ns, "project_dir": env[key + "_PROJECT_DIR"],
        "sshd_pid": pid(f"{d}/hosts/{name}/sshd/sshd.pid"),
        "sshd_log": f"{d}/hosts/{name}/sshd/sshd.log",
    }
facts = {
    "ok": not failures,
    "failures": failures,
    "dir": d,
    "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "start_seconds": float(os.environ["TB_SECONDS"]),
    "env_sh": f"{d}/env.sh",
    "env": env,
    "slurm": {
        "up": env["HSM_TB_SLURM"] == "1",
        "conf": env["SLURM_CONF"],
        "cluster": env["HSM_TB_SLURM_CLUSTER"],
        "partition": env["HSM_TB_SLURM_PARTITION"],
        "node": env["HSM_TB_SLURM_NODE"],
        "max_array_size": int(env["HSM_TB_SLURM_MAX_ARRAY_SIZE"]),
        "mem_enforcement": env["HSM_TB_SLURM_MEM_ENFORCEMENT"],
        "log_dir": env["HSM_TB_SLURM_LOG_DIR"],
        "pids": {
            "munged": pid(f"{d}/munge/munged.pid"),
            "mariadbd": pid(f"{d}/mysql/mariadbd.pid"),
            "slurmdbd": pid(f"{slurm}/slurmdbd.pid"),
            "slurmctld": pid(f"{slurm}/slurmctld.pid"),
            "slurmd": pid(f"{slurm}/slurmd.pid"),
        },
    },
    "pbs": {"up": env["HSM_TB_PBS"] == "1", "commands": ["qsub", "qstat", "qdel"]},
    "ssh": {
        "config": env["HSM_TB_SSH_CONFIG"],
        "key": env["HSM_TB_SSH_KEY"],
        "known_hosts": env["HSM_TB_SSH_KNOWN_HOSTS"],
        "hosts": hosts,
        "badkey": {"alias": env["HSM_TB_SSH_BADKEY_HOST"], "up": env["HSM_TB_SSH_BADKEY"] == "1"},
    },
}
with open(f"{d}/env.sh.tmp", "w") as f:
    f.write("# hsm-snake test bed (tests/testbed/start.sh): . this file\n")
    f.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
with open(f"{d}/testbed.json.tmp", "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
os.replace(f"{d}/env.sh.tmp", f"{d}/env.sh")
os.replace(f"{d}/testbed.json.tmp", f"{d}/testbed.json")
EOF
}

# ---------------------------------------------------------------------------------------------
# timed NAME FUNCTION: run a part, remember how long it took.
TIMES=()
timed() {
    local t rc
    t=$(tb_now)
    "$2"
    rc=$?
    TIMES+=("$1 $(tb_elapsed "$t")s")
    return $rc
}

tb_log "starting the test bed in $TB_DIR"
if timed packages part_packages; then
    if timed munge part_munge && timed mariadb part_mysql; then
        timed slurm part_slurm
    fi
    timed ssh part_ssh
fi
write_facts || FAILURES+=("facts: writing $TB_DIR/env.sh / testbed.json failed")

up=()
for k in slurm pbs ssh_lo ssh_h1 ssh_h2 ssh_badkey; do [ "${UP[$k]:-0}" = 1 ] && up+=("$k"); done
if [ ${#STARTED[@]} -eq 0 ]; then
    tb_log "started nothing: all was running already"
fi
tb_log "up: ${up[*]:-nothing} (time per part: ${TIMES[*]})"
if [ ${#FAILURES[@]} -gt 0 ]; then
    tb_log "FAILED after $(tb_elapsed "$T0") s:"
    printf 'testbed:   %s\n' "${FAILURES[@]}" >&2
    exit 1
fi
tb_log "ready in $(tb_elapsed "$T0") s; facts in $TB_DIR/testbed.json, for a shell: . $TB_DIR/env.sh"
