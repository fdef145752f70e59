#!/usr/bin/env bash
# A throw-away single-node Ceph (Debian 12's ceph 16.2) on 127.0.0.1, entirely inside one folder.
#
#   scripts/ceph-dev.sh up   DIR [--ports BASE] [--timeout S]   create and start a cluster in DIR
#   scripts/ceph-dev.sh env  DIR                                 print shell exports for clients
#   scripts/ceph-dev.sh down DIR                                 stop it and wait until it is gone
#
# No systemd, containers or mounts: mon.a, mgr.x, osd.0 (memstore, capped by --memstore-bytes),
# radosgw client.rgw.a (beast) and mds.a with a CephFS "cephfs". `up` also creates the pools
# "rbd" (rbd pool init) and "trainpool" (for rados benchmarks) and an RGW user whose keys
# `env` prints. Ports: mon v2 BASE, mon v1 BASE+1, rgw BASE+2, other daemons BASE+10..BASE+99,
# so clusters with bases 100 apart do not clash. Every file (config, keyrings, data, logs, admin
# sockets, pid files, crash dumps) stays in DIR. The memstore OSD keeps its data in memory.
# Install the packages first: scripts/install-system-deps.sh
set -euo pipefail

PROG=ceph-dev
DEFAULT_BASE=13300
DEFAULT_TIMEOUT=120
DEFAULT_MEMSTORE_BYTES=$((2 * 1024 * 1024 * 1024))
MARKER=.ceph-dev
CEPH_TIMEOUT=30 # seconds any one ceph/rados/radosgw-admin command may take

usage() {
    cat >&2 <<EOF
usage: $0 up DIR [--ports BASE] [--timeout SECONDS] [--memstore-bytes N]
       $0 env DIR
       $0 down DIR [--timeout SECONDS]
EOF
    exit 2
}

say() { echo "$PROG: $*"; }
die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------- processes

# Is PID a live (not zombie) process started with this cluster's config file?
# Checks the process state in /proc, not `kill -0`: a zombie or a reused pid is not our daemon.
alive() {
    local pid=$1 state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$CONF"
}

# Pids of live Ceph daemons started with this cluster's config file (a zombie's cmdline is
# empty; clients such as `rados -c DIR/ceph.conf` are not daemons and are left alone).
conf_pids() {
    local file pid
    grep -lzxF -- "$CONF" /proc/[0-9]*/cmdline 2>/dev/null | while IFS= read -r file; do
        pid=${file#/proc/}
        pid=${pid%/cmdline}
        case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
        ceph-mon | ceph-mgr | ceph-osd | ceph-mds | radosgw) echo "$pid" ;;
        esac
    done
}

# NAME -> its live pid: the one `up` recorded or, when that one is gone, the one in the daemon's
# own pid file (an MDS that the mons tell to respawn re-executes and forks a new pid).
pid_of() {
    local file pid
    for file in "$PIDS/$1" "$RUN/$1.pid"; do
        pid=$(cat "$file" 2>/dev/null || true)
        if alive "$pid"; then
            echo "$pid"
            return
        fi
    done
}

running_daemons() { # names of this cluster's daemons that are alive, and any other process of it
    local name pid
    local -A named=()
    for name in mon.a mgr.x osd.0 mds.a client.rgw.a; do
        pid=$(pid_of "$name")
        [[ -z "$pid" ]] || { echo "$name"; named[$pid]=1; }
    done
    for pid in $(conf_pids); do
        [[ -n "${named[$pid]:-}" ]] || echo "pid-$pid"
    done
}

# step COMMAND...: one set-up command, its output appended to the set-up log; fail naming both.
step() {
    echo "+ $*" >>"$SETUP_LOG"
    "$@" </dev/null >>"$SETUP_LOG" 2>&1 || die "'$*' failed (exit status $?); see $SETUP_LOG"
}

# Start a daemon (it forks into the background), wait for its pid file, record the pid.
start_daemon() {
    local name=$1 log=$LOGS/$1.log started
    shift
    rm -f "$RUN/$name.pid"
    echo "+ $*" >>"$SETUP_LOG"
    "$@" </dev/null >>"$SETUP_LOG" 2>&1 || die "$name did not start (exit status $?); see $SETUP_LOG and $log"
    started=$SECONDS
    until [[ -s "$RUN/$name.pid" ]] && alive "$(cat "$RUN/$name.pid")"; do
        ((SECONDS - started < 20)) || die "$name started but wrote no pid file / exited; see $log"
        sleep 0.1
    done
    cat "$RUN/$name.pid" >"$PIDS/$name"
}

# Stop daemons by name in parallel (SIGTERM, SIGKILL after the timeout); wait until they are gone.
stop_daemons() {
    local name pid t0=$SECONDS
    local -a pids=()
    for name in "$@"; do
        pid=$(pid_of "$name")
        if [[ -n "$pid" ]]; then
            say "stopping $name (pid $pid)"
            pids+=("$pid")
        fi
    done
    if ((${#pids[@]})); then
        stop_pids "${pids[@]}"
        say "stopped $* in $((SECONDS - t0)) s"
    fi
    for name in "$@"; do rm -f "$PIDS/$name"; done
}

stop_pids() {
    local pid deadline killed=0
    local -a left
    kill -TERM "$@" 2>/dev/null || true
    deadline=$((SECONDS + TIMEOUT))
    while :; do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        ((${#left[@]} == 0)) && return 0
        if ((SECONDS >= deadline)); then
            ((killed == 0)) || die "still running 10 s after SIGKILL: ${left[*]}"
            say "still running after ${TIMEOUT} s, sending SIGKILL: ${left[*]}"
            kill -KILL "${left[@]}" 2>/dev/null || true
            killed=1
            deadline=$((SECONDS + 10))
        fi
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------- ceph commands

c() { timeout "$CEPH_TIMEOUT" ceph -c "$CONF" --connect-timeout 10 "$@"; }

health_line() { timeout 10 ceph -c "$CONF" --connect-timeout 5 health 2>&1 | head -c 300 | tr '\n' ' ' || true; }

# wait_for WHAT LOG COMMAND...: poll COMMAND until it succeeds or the start-up timeout passes.
wait_for() {
    local what=$1 log=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < DEADLINE)) || die "$what did not come up within ${TIMEOUT}s; see $log (cluster: $(health_line))"
        sleep 0.2
    done
}

mgr_available() { c mgr stat -f json | grep -q '"available": *true'; }
osd_up() { c osd stat -f json | grep -q '"num_up_osds": *1[,}]'; }
mds_active() { c mds stat | grep -q 'up:active'; }
rgw_answers() (
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$RGW_PORT" || return 1
    printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    IFS= read -r -t 5 line <&3 || line=
    exec 3<&- 3>&-
    [[ "$line" == HTTP/1.?" 200"* ]]
)

# Health checks that may remain after start-up without anything being wrong with the cluster.
EXPECTED_WARNINGS=(MON_DISK_LOW)

health_ok() {
    local json checks check
    json=$(c health -f json) || return 1
    case "$json" in
    *'"status":"HEALTH_OK"'*) return 0 ;;
    *'"status":"HEALTH_WARN"'*)
        checks=$(grep -o '"[A-Z_]*":{"severity"' <<<"$json" | cut -d'"' -f2)
        for check in $checks; do
            [[ " ${EXPECTED_WARNINGS[*]} " == *" $check "* ]] || return 1
        done
        return 0
        ;;
    esac
    return 1
}

# Health right after start-up can read OK before the OSD and MDS have reported their state
# (e.g. a full OSD): trust it only when it holds across a stats period.
health_settled() { health_ok && sleep 1.5 && health_ok; }

# ---------------------------------------------------------------------------- sub-commands

write_conf() {
    local fsid=$1
    cat >"$CONF" <<EOF
# Written by scripts/ceph-dev.sh: a single-node development cluster in $DIR
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
ms bind port min = $((BASE + 10))
ms bind port max = $((BASE + 99))
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
run dir = $RUN
admin socket = $RUN/\$name.asok
pid file = $RUN/\$name.pid
log file = $LOGS/\$name.log
crash dir = $DIR/crash
mon data = $DIR/mon/\$cluster-\$id
mgr data = $DIR/mgr/\$cluster-\$id
osd data = $DIR/osd/\$cluster-\$id
mds data = $DIR/mds/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 5
mgr stats period = 1
mgr tick period = 1
paxos propose interval = 0.1
paxos min wait = 0.01

[client]
keyring = $DIR/keyring

[client.rgw.a]
keyring = $DIR/rgw/keyring
rgw data = $DIR/rgw
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
EOF
}

# A failed `up` stops what it started (logs stay in DIR/log for the diagnosis).
up_failed() {
    trap - EXIT
    echo "$PROG: stopping the daemons this failed start-up left running" >&2
    tear_down >&2 || true
    exit 1
}

cmd_up() {
    local fsid osd_uuid access secret name
    local tool
    for tool in ceph ceph-authtool monmaptool ceph-mon ceph-mgr ceph-osd ceph-mds radosgw radosgw-admin rbd; do
        command -v "$tool" >/dev/null || die "$tool not found: the Ceph packages are not installed; run scripts/install-system-deps.sh"
    done
    if [[ -e "$DIR/$MARKER" ]]; then
        name=$(running_daemons | paste -sd ' ' -)
        [[ -z "$name" ]] || die "a cluster is already up in $DIR (running: $name); run: $0 down $DIR"
        say "removing the stopped cluster in $DIR"
        rm -rf "${DIR:?}"/{mon,mgr,osd,mds,rgw,run,pids,log,crash} "$CONF" "$DIR"/{keyring,mon.keyring,monmap,s3.env,ports} "${DIR:?}/$MARKER"
    elif [[ -d "$DIR" && -n "$(ls -A "$DIR")" ]]; then
        die "$DIR is not empty and holds no ceph-dev cluster; give an empty or new folder"
    fi
    for port in "$MON_V2" "$MON_V1" "$RGW_PORT"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port on 127.0.0.1 is already in use; pick another --ports BASE"
        fi
    done
    trap up_failed EXIT
    mkdir -p "$DIR"/{mon/ceph-a,mgr/ceph-x,osd/ceph-0,mds/ceph-a,rgw,run,pids,log,crash}
    touch "$DIR/$MARKER"
    echo "$BASE" >"$DIR/ports"
    DEADLINE=$((SECONDS + TIMEOUT))
    local t0=$SECONDS

    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_conf "$fsid"
    say "mon.a on 127.0.0.1:$MON_V2 (v2) and :$MON_V1 (v1)"
    step ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *'
    step ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'
    step ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/keyring"
    step monmaptool --create --addv a "[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]" --fsid "$fsid" "$DIR/monmap"
    step ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring"
    start_daemon mon.a ceph-mon -c "$CONF" -i a
    wait_for "mon.a" "$LOGS/mon.a.log" c mon stat

    say "mgr.x"
    step c auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$DIR/mgr/ceph-x/keyring"
    start_daemon mgr.x ceph-mgr -c "$CONF" -i x

    say "osd.0 (memstore, $MEMSTORE_BYTES bytes)"
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    step c osd new "$osd_uuid"
    [[ "$(tail -n 1 "$SETUP_LOG")" == 0 ]] || die "ceph osd new did not return id 0; see $SETUP_LOG"
    step ceph-osd -c "$CONF" -i 0 --no-mon-config --mkfs --mkkey --osd-uuid "$osd_uuid"
    step c auth add osd.0 osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' -i "$DIR/osd/ceph-0/keyring"
    start_daemon osd.0 ceph-osd -c "$CONF" -i 0
    wait_for "osd.0" "$LOGS/osd.0.log" osd_up

    say "pools rbd, trainpool; CephFS cephfs"
    step c osd pool create rbd 8 8
    step timeout "$CEPH_TIMEOUT" rbd -c "$CONF" pool init rbd
    step c osd pool create trainpool 8 8
    step c osd pool application enable trainpool rados
    step c osd pool create cephfs_metadata 8 8
    step c osd pool create cephfs_data 8 8
    step c fs new cephfs cephfs_metadata cephfs_data
    step c fs set cephfs standby_count_wanted 0

    say "mds.a"
    step c auth get-or-create mds.a mon 'allow profile mds' osd 'allow rwx' mds 'allow' mgr 'allow profile mds' \
        -o "$DIR/mds/ceph-a/keyring"
    start_daemon mds.a ceph-mds -c "$CONF" -i a

    say "radosgw on http://127.0.0.1:$RGW_PORT"
    step c auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' -o "$DIR/rgw/keyring"
    start_daemon client.rgw.a radosgw -c "$CONF" -n client.rgw.a

    wait_for "mgr.x" "$LOGS/mgr.x.log" mgr_available
    wait_for "mds.a (CephFS cephfs)" "$LOGS/mds.a.log" mds_active
    wait_for "radosgw (HTTP on 127.0.0.1:$RGW_PORT)" "$LOGS/client.rgw.a.log" rgw_answers

    say "RGW user trainio"
    access=$(tr -dc 'A-Z0-9' </dev/urandom | head -c 20 || true)
    secret=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 40 || true)
    step timeout "$CEPH_TIMEOUT" radosgw-admin -c "$CONF" user create --uid=trainio --display-name=trainio \
        --access-key="$access" --secret-key="$secret"
    (
        umask 077
        printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$access" "$secret" >"$DIR/s3.env"
    )

    say "waiting for HEALTH_OK"
    wait_for "HEALTH_OK" "$LOGS/mon.a.log" health_settled
    trap - EXIT
    say "up in $((SECONDS - t0)) s: $(c health)"
    say "next: eval \"\$($0 env $DIR)\"; ceph -s; when done: $0 down $DIR"
}

cmd_env() {
    [[ -e "$DIR/$MARKER" && -s "$DIR/s3.env" ]] || die "no running cluster in $DIR; run: $0 up $DIR"
    local name
    name=$(running_daemons | paste -sd ' ' -)
    [[ -n "$name" ]] || die "the cluster in $DIR is down; run: $0 up $DIR"
    # shellcheck source=/dev/null
    source "$DIR/s3.env"
    printf 'export CEPH_CONF=%q\n' "$CONF"
    printf 'export TRAINIO_S3_ENDPOINT=%q\n' "http://127.0.0.1:$RGW_PORT"
    printf 'export AWS_ACCESS_KEY_ID=%q\n' "$AWS_ACCESS_KEY_ID"
    printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$AWS_SECRET_ACCESS_KEY"
}

tear_down() {
    local -a leftover
    stop_daemons client.rgw.a mds.a
    stop_daemons osd.0 mgr.x
    stop_daemons mon.a
    mapfile -t leftover < <(conf_pids)
    if ((${#leftover[@]})); then
        say "stopping other processes started with $CONF: ${leftover[*]}"
        stop_pids "${leftover[@]}"
    fi
}

cmd_down() {
    [[ -e "$DIR/$MARKER" ]] || die "$DIR holds no ceph-dev cluster"
    local t0=$SECONDS
    tear_down
    local name
    name=$(running_daemons | paste -sd ' ' -)
    [[ -z "$name" ]] || die "still running after down: $name"
    say "down in $((SECONDS - t0)) s ($DIR kept; its logs are in $LOGS)"
}

# ---------------------------------------------------------------------------- main

(($# >= 2)) || usage
ACTION=$1
DIR=$2
shift 2
BASE=""
TIMEOUT=$DEFAULT_TIMEOUT
MEMSTORE_BYTES=$DEFAULT_MEMSTORE_BYTES
while (($#)); do
    case "$1" in
    --ports) BASE=${2:?--ports needs a base port} && shift 2 ;;
    --timeout) TIMEOUT=${2:?--timeout needs seconds} && shift 2 ;;
    --memstore-bytes) MEMSTORE_BYTES=${2:?--memstore-bytes needs a size} && shift 2 ;;
    *) usage ;;
    esac
done
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds, got '$TIMEOUT'"
[[ "$MEMSTORE_BYTES" =~ ^[0-9]+$ ]] || die "--memstore-bytes must be a byte count, got '$MEMSTORE_BYTES'"
DIR=$(realpath -m -- "$DIR")
if [[ -z "$BASE" ]]; then
    if [[ "$ACTION" != up && -s "$DIR/ports" ]]; then BASE=$(cat "$DIR/ports"); else BASE=$DEFAULT_BASE; fi
fi
if ! [[ "$BASE" =~ ^[0-9]+$ ]] || ((BASE < 1024 || BASE > 65435)); then
    die "--ports must be in 1024..65435, got '$BASE'"
fi
MON_V2=$BASE
MON_V1=$((BASE + 1))
RGW_PORT=$((BASE + 2))
CONF=$DIR/ceph.conf
RUN=$DIR/run
PIDS=$DIR/pids
LOGS=$DIR/log
SETUP_LOG=$LOGS/setup.log

case "$ACTION" in
up) cmd_up ;;
env) cmd_env ;;
down) cmd_down ;;
*) usage ;;
esac
