#!/bin/bash
# cronq under a real, booted systemd (issue 6 item 5), in a systemd-nspawn
# container that reuses the host's /usr read-only (--volatile=yes).
#
# The package layout is laid over the host's /usr with a read-only overlay
# (binary in /usr/bin, units in /usr/lib/systemd/system, sysusers.d and
# tmpfiles.d snippets in /usr/lib), so the container's own boot creates the
# user, /run/cronq and the listening socket exactly as on an installed host.
#
# Steps, each printed PASS or FAIL; the first failure stops the run:
#   harness: boot; sysusers made cronq; tmpfiles made /run/cronq; cronq.socket
#            listens 0660 cronq:cronq; a probe notify service proves start
#            waits for READY, STATUS shows, and a SIGSTOPped service is
#            killed by its watchdog and restarted.
#   cronq:   socket activation on first connection; `systemctl start` returns
#            after READY; STATUS text; a noop job enqueued with socat runs;
#            journalctl -u cronq CRONQ_JOB_ID=<id> finds it; reload re-reads
#            the crons file, and fails (the old table staying) on a file the
#            daemon refuses; `cronq check` in a clean shell checks that file;
#            watchdog restart after SIGSTOP; a command job writes outside the
#            sandbox only through a ReadWritePaths= drop-in; stop lets a
#            running job finish.
#   command: under Delegate= the daemon moves into its leaf cgroup and runs
#            each command job in job-<id>-<attempt>; a job's `setsid sleep &`
#            escapee is ended with its cgroup at the timeout and the cgroup
#            removed; a job over JOB_COMMAND_MEMORY_MAX dies "out of memory";
#            a fork bomb stays within JOB_COMMAND_TASKS_MAX and is ended.
#            Where the host delegates no memory/pids controller (a "hybrid"
#            cgroup host), the caps' steps prove the handler refuses to run
#            without them instead. Last, the control: with Delegate=no the
#            escapee survives, as cronq(8) says of process-group mode.
#
# Usage: tests/nspawn_boot.sh [--harness-only] [path/to/cronq]
#        CRONQ_DEB=target/debian/cronq_*.deb tests/nspawn_boot.sh   (the package's /usr)
# Needs root, systemd-container, socat, overlayfs. Cleans up on every exit.
# Under pipefail, `journalctl | grep -q` fails when grep exits at its first
# match while journalctl still writes (SIGPIPE): searches read all of their
# input instead (`grep PATTERN >/dev/null`).
set -euo pipefail

harness_only=0
if [ "${1:-}" = "--harness-only" ]; then harness_only=1; shift; fi
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${CRONQ_BIN:-$here/target/debug/cronq}}
# examples/systemd_probe.rs: cronq::systemd and cronq::logging in a stand-in
# daemon (cargo build --example systemd_probe); its steps are skipped without it.
probe_bin=${CRONQ_PROBE_BIN:-$here/target/debug/examples/systemd_probe}

die() { echo "nspawn_boot: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (mounts, systemd-nspawn)"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn missing: apt-get install -y --no-install-recommends systemd-container"
command -v socat >/dev/null || die "socat missing: apt-get install -y --no-install-recommends socat"
[ -n "${CRONQ_DEB:-}" ] || [ -x "$bin" ] || die "no cronq binary at $bin (cargo build first)"

work=$(mktemp -d /tmp/cronq-nspawn.XXXXXX)
root=$work/root       # the container's directory: only /usr matters (volatile)
layer=$work/layer     # what the package installs, laid over the host's /usr
console=$work/console.log
nspawn_pid=""
passed=()
current="setup"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        # One SIGTERM asks the container's systemd to halt; SIGKILL would
        # orphan it. A second SIGTERM forces termination if halting hangs.
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$nspawn_pid" 2>/dev/null; then
            kill -TERM "$nspawn_pid" 2>/dev/null || true
            sleep 2
            kill -KILL "$nspawn_pid" 2>/dev/null || true
        fi
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    if mountpoint -q "$root/usr" 2>/dev/null; then
        umount "$root/usr" 2>/dev/null || umount -l "$root/usr" || true
    fi
    if [ $rc -ne 0 ] && [ -s "$console" ]; then
        echo "--- container console (last 30 lines) ---" >&2
        tail -n 30 "$console" >&2 || true
    fi
    rm -rf "$work"
    echo
    echo "proven (${#passed[@]}):"
    for p in "${passed[@]}"; do echo "  - $p"; done
    if [ $rc -ne 0 ]; then echo "stopped at: $current (exit $rc)"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

step() { current=$1; echo "== $1"; }
pass() { passed+=("$current"); echo "PASS: $current${1:+ ($1)}"; }
fail() { echo "FAIL: $current: $*" >&2; exit 1; }

# Run a command inside the container (all namespaces of its systemd).
in_ct() { nsenter -t "$leader" -m -p -u -i -n "$@"; }
# One admin request through the socket, as an operator would send it.
admin() { echo "$1" | in_ct socat - UNIX-CONNECT:/run/cronq/admin.sock; }
json_get() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[int(k)] if isinstance(v,list) else v.get(k) if isinstance(v,dict) else None
print("" if v is None else (json.dumps(v) if isinstance(v,(dict,list,bool)) else v))' "$1"; }
prop() { in_ct systemctl show -p "$2" --value "$1"; }
# wait_for SECONDS CMD...: retry CMD every 0.2 s until it succeeds.
wait_for() {
    local n=$(( $1 * 5 )); shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

# ---- the package layer -----------------------------------------------------
mkdir -p "$root/usr" "$layer/usr/bin" "$layer/usr/lib/systemd/system/sockets.target.wants" \
    "$layer/usr/lib/sysusers.d" "$layer/usr/lib/tmpfiles.d" "$layer/usr/share/cronq-test"
if [ -n "${CRONQ_DEB:-}" ]; then
    # The package's /usr as built by cargo deb (its /etc is not used: the
    # container's /etc is volatile and written below).
    dpkg-deb -x "$CRONQ_DEB" "$work/deb"
    cp -a "$work/deb/usr/." "$layer/usr/"
else
    cp "$bin" "$layer/usr/bin/cronq"
    cp "$here/systemd/cronq.service" "$here/systemd/cronq.socket" "$layer/usr/lib/systemd/system/"
    cp "$here/systemd/cronq.sysusers" "$layer/usr/lib/sysusers.d/cronq.conf"
    cp "$here/systemd/cronq.tmpfile" "$layer/usr/lib/tmpfiles.d/cronq.conf"
fi
# `systemctl enable cronq.socket`, done at vendor level so it holds at boot.
ln -s ../cronq.socket "$layer/usr/lib/systemd/system/sockets.target.wants/cronq.socket"

# The probe: a notify service whose main process (python, like the daemon)
# sends READY after 1 s, a STATUS, and watchdog pings, so the harness itself
# is proven independently of the daemon.
cat > "$layer/usr/share/cronq-test/probe.py" <<'EOF'
import os, socket, time
def notify(msg):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(os.environ["NOTIFY_SOCKET"])
    s.send(msg.encode())
time.sleep(1)
notify("READY=1\nSTATUS=probe ready")
while True:
    notify("WATCHDOG=1")
    time.sleep(0.5)
EOF
cat > "$layer/usr/lib/systemd/system/cronq-probe.service" <<'EOF'
[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/bin/python3 /usr/share/cronq-test/probe.py
WatchdogSec=2s
Restart=on-failure
RestartSec=200ms
EOF

if [ -x "$probe_bin" ]; then
    cp "$probe_bin" "$layer/usr/share/cronq-test/systemd_probe"
    cat > "$layer/usr/lib/systemd/system/cronq-rsprobe.socket" <<'EOF'
[Socket]
ListenStream=/run/cronq-rsprobe.sock
EOF
    cat > "$layer/usr/lib/systemd/system/cronq-rsprobe.service" <<'EOF'
[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/share/cronq-test/systemd_probe
WatchdogSec=2s
Restart=on-failure
RestartSec=200ms
EOF
fi

mount -t overlay overlay -o "lowerdir=$layer/usr:/usr" "$root/usr"

# ---- harness ---------------------------------------------------------------
step "container boots systemd"
setsid systemd-nspawn --register=no --keep-unit --volatile=yes -D "$root" -b \
    --console=pipe >"$console" 2>&1 </dev/null &
nspawn_pid=$!
leader=""
for _ in $(seq 100); do
    leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
    [ -n "$leader" ] && break
    sleep 0.1
done
[ -n "$leader" ] || fail "no systemd under nspawn pid $nspawn_pid"
# The leader exists before its manager listens: wait for its private bus.
wait_for 30 in_ct test -S /run/systemd/private || fail "systemd in the container never listened"
state=$(timeout 60 nsenter -t "$leader" -m -p -u -i -n systemctl is-system-running --wait || true)
case "$state" in running|degraded) pass "is-system-running: $state" ;; *) fail "state '$state'" ;; esac

step "systemd-sysusers created cronq at boot"
in_ct getent passwd cronq >/dev/null || fail "no user cronq"
in_ct getent group cronq >/dev/null || fail "no group cronq"
pass "$(in_ct getent passwd cronq)"

step "systemd-tmpfiles made /run/cronq 0750 cronq:cronq"
got=$(in_ct stat -c '%a %U:%G' /run/cronq)
[ "$got" = "750 cronq:cronq" ] || fail "/run/cronq is $got"
pass

step "cronq.socket listens at /run/cronq/admin.sock 0660 cronq:cronq"
[ "$(prop cronq.socket ActiveState)" = active ] || fail "cronq.socket is $(prop cronq.socket ActiveState)"
got=$(in_ct stat -c '%F %a %U:%G' /run/cronq/admin.sock)
[ "$got" = "socket 660 cronq:cronq" ] || fail "admin.sock is $got"
# cronq.service itself was enabled by the first boot's presets (an empty
# /etc), as the package enables it: it starts at boot, so crons fire without
# waiting for a client. Stop it so each step below starts from a known state.
in_ct systemctl stop cronq.service 2>/dev/null
in_ct systemctl reset-failed cronq.service 2>/dev/null || true
pass

step "probe: systemctl start waits for READY and shows STATUS"
t0=$(date +%s%N)
in_ct systemctl start cronq-probe.service
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -ge 900 ] || fail "start returned after ${ms} ms, before the probe's READY at 1000 ms"
[ "$(prop cronq-probe.service StatusText)" = "probe ready" ] || fail "StatusText $(prop cronq-probe.service StatusText)"
in_ct systemctl status cronq-probe.service --no-pager | grep 'Status: "probe ready"' >/dev/null || fail "systemctl status lacks the STATUS line"
pass "start took ${ms} ms"

step "probe: a SIGSTOPped service is killed by its watchdog and restarted"
pid=$(prop cronq-probe.service MainPID)
in_ct kill -STOP "$pid"
wait_for 15 sh -c "[ \"\$(nsenter -t $leader -m -p -u -i -n systemctl show -p NRestarts --value cronq-probe.service)\" -ge 1 ]" \
    || fail "no restart after SIGSTOP"
in_ct journalctl -q -u cronq-probe.service --no-pager | grep -i 'watchdog timeout' >/dev/null || fail "journal has no watchdog timeout"
pass "restarted, new MainPID $(prop cronq-probe.service MainPID) (was $pid)"
in_ct systemctl stop cronq-probe.service

# ---- cronq::systemd and cronq::logging in a stand-in daemon -------------------
if [ -x "$probe_bin" ]; then
    rs=cronq-rsprobe.service
    in_ct systemctl start cronq-rsprobe.socket
    # -t 5: the first connection waits for the probe's start (1 s), longer
    # than socat's default 0.5 s after stdin closes.
    rsprobe() { echo "$1" | in_ct socat -t 5 - UNIX-CONNECT:/run/cronq-rsprobe.sock; }

    step "rust probe: listener_from_env takes the socket systemd passes"
    [ "$(prop $rs ActiveState)" = inactive ] || fail "$rs is $(prop $rs ActiveState) before any connection"
    answer=$(rsprobe probe-1) || fail "no answer"
    [ "$answer" = "pong probe-1" ] || fail "answered '$answer'"
    [ "$(prop $rs ActiveState)" = active ] || fail "$rs is $(prop $rs ActiveState)"
    pass

    step "rust probe: Notifier READY makes systemctl start wait; STATUS shows"
    in_ct systemctl stop $rs 2>/dev/null
    t0=$(date +%s%N)
    in_ct systemctl start $rs
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    [ "$ms" -ge 900 ] || fail "start returned after ${ms} ms, before READY at 1000 ms"
    [ "$(prop $rs StatusText)" = "probe: 0 served" ] || fail "StatusText '$(prop $rs StatusText)'"
    rsprobe probe-2 >/dev/null
    wait_for 5 sh -c "[ \"\$(nsenter -t $leader -m -p -u -i -n systemctl show -p StatusText --value $rs)\" = 'probe: 1 served' ]" \
        || fail "STATUS not updated: '$(prop $rs StatusText)'"
    pass "start took ${ms} ms"

    step "rust probe: LOG_FORMAT=auto finds journald; CRONQ_ fields queryable"
    wait_for 5 sh -c "nsenter -t $leader -m -p -u -i -n journalctl -q -u $rs CRONQ_JOB_ID=probe-2 -o cat | grep -q 'job finished'" \
        || fail "journalctl -u $rs CRONQ_JOB_ID=probe-2 finds nothing"
    entry=$(in_ct journalctl -q -u $rs CRONQ_JOB_ID=probe-2 -o json -n 1)
    for want in SYSLOG_IDENTIFIER=cronq CRONQ_JOB_TYPE=probe CRONQ_ATTEMPT=1 CRONQ_DURATION_MS=0 PRIORITY=6; do
        [ "$(echo "$entry" | json_get "${want%%=*}")" = "${want#*=}" ] || fail "want $want in $entry"
    done
    ready=$(in_ct journalctl -q -u $rs -o json MESSAGE="probe ready" -n 1)
    [ "$(echo "$ready" | json_get CRONQ_OUTPUT)" = Journald ] || fail "auto did not pick journald: $ready"
    [ "$(echo "$ready" | json_get CRONQ_LISTEN_FDS_LEFT)" = false ] || fail "LISTEN_FDS still set: $ready"
    [ "$(echo "$ready" | json_get CRONQ_WATCHDOG_MS)" = 1000 ] || fail "watchdog interval: $ready"
    pass

    step "rust probe: Notifier watchdog pings keep it alive; SIGSTOP gets it restarted"
    sleep 3
    [ "$(prop $rs NRestarts)" = 0 ] || fail "restarted while healthy"
    pid=$(prop $rs MainPID)
    in_ct kill -STOP "$pid"
    wait_for 15 sh -c "[ \"\$(nsenter -t $leader -m -p -u -i -n systemctl show -p NRestarts --value $rs)\" -ge 1 ]" \
        || fail "no restart after SIGSTOP"
    in_ct journalctl -q -u $rs --no-pager | grep -i 'watchdog timeout' >/dev/null || fail "journal has no watchdog timeout"
    wait_for 5 sh -c "[ \"\$(nsenter -t $leader -m -p -u -i -n systemctl show -p ActiveState --value $rs)\" = active ]" || fail "not active again"
    pass "MainPID $pid -> $(prop $rs MainPID)"
    in_ct systemctl stop $rs cronq-rsprobe.socket
else
    echo "(no $probe_bin: the rust probe steps are skipped)"
fi

if [ $harness_only = 1 ]; then
    echo "harness only: the cronq steps were not run"
    exit 0
fi

# ---- cronq ------------------------------------------------------------------
# Configuration as an operator writes it. A short watchdog keeps the SIGSTOP
# step under half a minute; every other setting is the shipped unit's.
in_ct sh -c 'cat > /etc/cronq/cronq.env' <<'EOF'
JOB_COMMAND_ALLOW=/usr/bin/sleep
JOB_TIMEOUT_SECONDS=30
EOF
in_ct sh -c 'cat > /etc/cronq/crons.toml' <<'EOF'
EOF
in_ct mkdir -p /run/systemd/system/cronq.service.d
in_ct sh -c 'printf "[Service]\nWatchdogSec=5s\n" > /run/systemd/system/cronq.service.d/test-watchdog.conf'
in_ct systemctl daemon-reload

step "socket activation: the first connection starts cronq"
st=$(prop cronq.service ActiveState)
[ "$st" = inactive ] || fail "cronq.service is $st before the connection"
# The first answer waits for the daemon's start-up; socat's default 0.5 s
# after stdin closes may be too short for it, so allow 10 s here only.
answer=$(echo '{"cmd":"ping"}' | in_ct socat -t 10 - UNIX-CONNECT:/run/cronq/admin.sock) || fail "no answer through the socket"
[ "$(echo "$answer" | json_get pong)" = true ] || fail "ping answered $answer"
[ "$(prop cronq.service ActiveState)" = active ] || fail "cronq.service is $(prop cronq.service ActiveState)"
pass

step "systemctl start cronq returns only after READY"
in_ct systemctl stop cronq.service 2>/dev/null
in_ct systemctl start cronq.service
# Asked at once: a daemon that sent READY early would not yet say ready.
state=$(prop cronq.service ActiveState)
ready=$(admin '{"cmd":"status"}' | json_get ready)
[ "$state" = active ] && [ "$ready" = true ] || fail "after start: ActiveState=$state ready=$ready"
pass

step "systemctl status shows the daemon's STATUS text"
status_text=$(prop cronq.service StatusText)
[ -n "$status_text" ] || fail "no StatusText"
in_ct systemctl status cronq.service --no-pager | grep -F "Status: \"$status_text\"" >/dev/null || fail "status lacks it"
pass "Status: \"$status_text\""

step "a noop job enqueued with socat through the socket runs"
answer=$(admin '{"cmd":"enqueue","name":"nspawn_noop","payload":{"type":"noop","data":{}}}')
job_id=$(echo "$answer" | json_get job.id)
[ -n "$job_id" ] || fail "enqueue answered $answer"
# A job that succeeded leaves the queue for the history: `job` then
# answers it with its final status.
wait_for 10 sh -c "echo '{\"cmd\":\"job\",\"id\":\"$job_id\"}' | nsenter -t $leader -m -p -u -i -n socat - UNIX-CONNECT:/run/cronq/admin.sock | grep -F '\"status\":\"succeeded\"' >/dev/null" \
    || fail "job $job_id did not succeed: $(admin "{\"cmd\":\"job\",\"id\":\"$job_id\"}")"
pass "job $job_id"

step "journalctl -u cronq CRONQ_JOB_ID=<id> finds the job's lines"
wait_for 5 sh -c "nsenter -t $leader -m -p -u -i -n journalctl -q -u cronq CRONQ_JOB_ID=$job_id -o cat | grep -q 'job finished'" \
    || fail "no 'job finished' for $job_id: $(in_ct journalctl -q -u cronq CRONQ_JOB_ID="$job_id" -o cat | head -5)"
type=$(in_ct journalctl -q -u cronq CRONQ_JOB_ID="$job_id" -o json -n 1 | json_get CRONQ_JOB_TYPE)
[ "$type" = noop ] || fail "CRONQ_JOB_TYPE=$type"
pass

step "systemctl reload cronq re-reads the crons file"
in_ct sh -c 'cat > /etc/cronq/crons.toml' <<'EOF'
[cron.nspawn_reload]
schedule = "0 3 * * *"
type = "noop"
data = {}
EOF
in_ct systemctl reload cronq.service
admin '{"cmd":"crons"}' | grep '"nspawn_reload"' >/dev/null || fail "crons after reload: $(admin '{"cmd":"crons"}')"
[ "$(prop cronq.service ActiveState)" = active ] || fail "not active after reload"
pass

step "systemctl reload cronq fails on a refused crons file; the old table stays"
in_ct cp /etc/cronq/crons.toml /etc/cronq/crons.toml.good
in_ct sh -c 'cat > /etc/cronq/crons.toml' <<'EOF'
[cron.nspawn_broken]
schedule = "61 * * * *"
type = "noop"
data = {}
EOF
if in_ct systemctl reload cronq.service 2>"$work/reload.err"; then
    fail "systemctl reload exited 0 on a file the daemon refuses"
fi
crons=$(admin '{"cmd":"crons"}')
echo "$crons" | grep '"nspawn_reload"' >/dev/null || fail "the old table is gone: $crons"
if echo "$crons" | grep '"nspawn_broken"' >/dev/null; then fail "the refused cron was loaded: $crons"; fi
[ "$(prop cronq.service ActiveState)" = active ] || fail "not active after a refused reload"
# ExecReload's own stderr (cronq reload) names the file and the fault.
wait_for 5 sh -c "nsenter -t $leader -m -p -u -i -n journalctl -q -u cronq -o cat | grep -q 'crons.toml:2'" \
    || fail "the journal does not say why: $(in_ct journalctl -q -u cronq -o cat | tail -5)"
in_ct mv /etc/cronq/crons.toml.good /etc/cronq/crons.toml
pass "$(head -c 200 "$work/reload.err")"

step "cronq check with no file checks /etc/cronq/crons.toml, the daemon's file"
# An operator's clean shell: no CONFIGURATION_DIRECTORY, not in /etc/cronq.
out=$(in_ct env -i PATH=/usr/bin:/bin sh -c 'cd / && cronq check' 2>&1) || fail "cronq check: $out"
[ "$(echo "$out" | head -n 1)" = "/etc/cronq/crons.toml (the installed daemon's file): 1 cron(s), all valid" ] \
    || fail "checked: $out"
echo "$out" | grep nspawn_reload >/dev/null || fail "nspawn_reload not listed: $out"
pass

step "a SIGSTOPped cronq is killed by the watchdog and restarted"
pid=$(prop cronq.service MainPID)
restarts=$(prop cronq.service NRestarts)
in_ct kill -STOP "$pid"
wait_for 30 sh -c "[ \"\$(nsenter -t $leader -m -p -u -i -n systemctl show -p NRestarts --value cronq.service)\" -gt $restarts ] && [ \"\$(nsenter -t $leader -m -p -u -i -n systemctl show -p ActiveState --value cronq.service)\" = active ]" \
    || fail "no restart within 30 s"
# journald may write the manager's line a moment after the restart.
wait_for 10 sh -c "nsenter -t $leader -m -p -u -i -n journalctl -q -u cronq --no-pager | grep -qi 'watchdog timeout'" \
    || fail "journal has no watchdog timeout"
pass "MainPID $pid -> $(prop cronq.service MainPID)"

step "a command job writes outside /var/lib/cronq only through a ReadWritePaths= drop-in"
# README.md: the unit's sandbox makes the rest of the file system read-only
# for jobs; a drop-in (what `systemctl edit cronq` writes) opens one path.
in_ct sh -c 'echo JOB_COMMAND_ALLOW=/usr/bin/sleep:/usr/bin/touch >> /etc/cronq/cronq.env'
in_ct mkdir -p /srv/b
in_ct chown cronq /srv/b
in_ct systemctl restart cronq.service
touch_job='{"cmd":"enqueue","name":"nspawn_touch","payload":{"type":"command","data":{"argv":["/usr/bin/touch","/srv/b/x"]},"options":{"retry_count":0}}}'
job_id=$(admin "$touch_job" | json_get job.id)
[ -n "$job_id" ] || fail "enqueue refused the touch job"
wait_for 10 sh -c "echo '{\"cmd\":\"job\",\"id\":\"$job_id\"}' | nsenter -t $leader -m -p -u -i -n socat - UNIX-CONNECT:/run/cronq/admin.sock | grep -q '\"dead\"'" \
    || fail "job $job_id did not die in the sandbox: $(admin "{\"cmd\":\"job\",\"id\":\"$job_id\"}")"
admin "{\"cmd\":\"job\",\"id\":\"$job_id\"}" | grep 'Read-only file system' >/dev/null \
    || fail "job $job_id died for another reason: $(admin "{\"cmd\":\"job\",\"id\":\"$job_id\"}")"
in_ct test ! -e /srv/b/x || fail "/srv/b/x was written without the drop-in"
in_ct sh -c 'printf "[Service]\nReadWritePaths=/srv/b\n" > /run/systemd/system/cronq.service.d/test-srv.conf'
in_ct systemctl daemon-reload
in_ct systemctl restart cronq.service
job_id=$(admin "$touch_job" | json_get job.id)
wait_for 10 in_ct test -e /srv/b/x || fail "/srv/b/x not written with the drop-in: $(admin "{\"cmd\":\"job\",\"id\":\"$job_id\"}")"
pass

step "systemctl stop lets a running job finish"
answer=$(admin '{"cmd":"enqueue","name":"nspawn_sleep","payload":{"type":"command","data":{"argv":["/usr/bin/sleep","3"]}}}')
job_id=$(echo "$answer" | json_get job.id)
[ -n "$job_id" ] || fail "enqueue answered $answer"
wait_for 5 sh -c "echo '{\"cmd\":\"job\",\"id\":\"$job_id\"}' | nsenter -t $leader -m -p -u -i -n socat - UNIX-CONNECT:/run/cronq/admin.sock | grep -q '\"running\"'" \
    || fail "job $job_id never ran"
t0=$(date +%s%N)
in_ct systemctl stop cronq.service 2>/dev/null
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
in_ct journalctl -q -u cronq CRONQ_JOB_ID="$job_id" -o cat | grep 'job finished' >/dev/null \
    || fail "job $job_id did not finish before the stop: $(in_ct journalctl -q -u cronq CRONQ_JOB_ID="$job_id" -o cat)"
[ "$(prop cronq.service Result)" = success ] || fail "stop Result=$(prop cronq.service Result)"
pass "stop took ${ms} ms"

# ---- command jobs in cgroups of their own ----------------------------------
# The service's cgroup as the container sees it, on a pure cgroup v2 host
# (/sys/fs/cgroup) or a hybrid one (/sys/fs/cgroup/unified).
cgfs=$(in_ct sh -c '[ -e /sys/fs/cgroup/cgroup.controllers ] && echo /sys/fs/cgroup || echo /sys/fs/cgroup/unified')
command_env() {
    { echo "JOB_COMMAND_ALLOW=/usr/bin/sh:/usr/bin/python3"; for line in "$@"; do echo "$line"; done; } \
        | in_ct sh -c 'cat > /etc/cronq/cronq.env'
    in_ct systemctl restart cronq.service
}
# enqueue_command DATA [OPTIONS]: the job id, or fail with the answer.
enqueue_command() {
    local answer id options=${2:-'{}'}
    answer=$(admin "{\"cmd\":\"enqueue\",\"name\":\"nspawn_command\",\"payload\":{\"type\":\"command\",\"data\":$1,\"options\":$options}}")
    id=$(echo "$answer" | json_get job.id)
    [ -n "$id" ] || fail "enqueue answered $answer"
    echo "$id"
}
job_field() { admin "{\"cmd\":\"job\",\"id\":\"$1\"}" | json_get "job.$2"; }
wait_dead() {
    wait_for "$2" sh -c "echo '{\"cmd\":\"job\",\"id\":\"$1\"}' | nsenter -t $leader -m -p -u -i -n socat - UNIX-CONNECT:/run/cronq/admin.sock | grep -q '\"status\":\"dead\"'" \
        || fail "job $1 is not dead: $(admin "{\"cmd\":\"job\",\"id\":\"$1\"}")"
}

step "command: the daemon runs in its leaf cgroup; jobs get cgroups of their own"
command_env "JOB_TIMEOUT_SECONDS=30"
cg=$(prop cronq.service ControlGroup)
svc=$cgfs$cg
pid=$(prop cronq.service MainPID)
# Read from outside the container's cgroup namespace: the path has a prefix.
in_ct grep -q "^0::.*$cg/daemon\$" "/proc/$pid/cgroup" || fail "daemon cgroup: $(in_ct cat "/proc/$pid/cgroup")"
in_ct journalctl -q -u cronq -o cat | grep 'command jobs run each in a cgroup of its own' >/dev/null \
    || fail "no start-up line about the mode: $(in_ct journalctl -q -u cronq -o cat | tail -5)"
controllers=$(in_ct cat "$svc/cgroup.controllers")
pass "daemon in $cg/daemon; delegated controllers: '${controllers}'"

step "command: a setsid escapee is ended with the job's cgroup at the timeout"
job_id=$(enqueue_command '{"argv":["/usr/bin/sh","-c","setsid sleep 1001 & sleep 1002"]}' '{"timeout":3,"retry_count":0}')
job_cg="$svc/job-$job_id-1"
wait_for 10 in_ct pgrep -x -f 'sleep 1001' || fail "the escapee never started"
esc=$(in_ct pgrep -x -f 'sleep 1001')
in_ct grep -q "/job-$job_id-1\$" "/proc/$esc/cgroup" || fail "the escapee is not in $job_cg: $(in_ct cat "/proc/$esc/cgroup")"
# setsid: it leads a session and a process group of its own, outside the job's.
[ "$(in_ct ps -o pgid= -p "$esc" | tr -d ' ')" = "$esc" ] || fail "the escapee did not leave the job's process group"
wait_dead "$job_id" 20
error=$(job_field "$job_id" last_error)
case "$error" in *"timed out"*) ;; *) fail "last_error: $error" ;; esac
wait_for 10 sh -c "! nsenter -t $leader -m -p -u -i -n pgrep -x -f 'sleep 100[12]'" \
    || fail "still running after the timeout: $(in_ct pgrep -a -f 'sleep 100[12]')"
wait_for 5 sh -c "! nsenter -t $leader -m -p -u -i -n test -e '$job_cg'" || fail "$job_cg is still there"
pass "escapee pid $esc ended; $job_cg removed"

has_controller() { case " $controllers " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# refused_for VAR=VALUE: the handler is off, naming the cap it cannot enforce.
refused_for() {
    local answer
    answer=$(admin '{"cmd":"enqueue","name":"nspawn_command","payload":{"type":"command","data":{"argv":["/usr/bin/sh","-c","true"]}}}')
    echo "$answer" | grep -F "$1 cannot be enforced" >/dev/null || fail "enqueue answered $answer"
}

command_env "JOB_COMMAND_MEMORY_MAX=64M"
if has_controller memory; then
    step "command: a job over JOB_COMMAND_MEMORY_MAX ends out of memory"
    job_id=$(enqueue_command '{"argv":["/usr/bin/python3","-c","b = bytearray(512 << 20)"]}' '{"retry_count":0}')
    wait_dead "$job_id" 30
    error=$(job_field "$job_id" last_error)
    case "$error" in *"ran out of memory"*"memory cap of 64M"*) ;; *) fail "last_error: $error" ;; esac
    wait_for 5 sh -c "! nsenter -t $leader -m -p -u -i -n test -e '$svc/job-$job_id-1'" || fail "its cgroup is still there"
    pass "$(echo "$error" | head -n 1)"
else
    step "command: without a memory controller, JOB_COMMAND_MEMORY_MAX switches the handler off"
    refused_for "JOB_COMMAND_MEMORY_MAX=64M"
    echo "SKIP: no real out-of-memory kill: this host delegates no memory controller to cgroup v2 (hybrid hierarchy)"
    pass "enqueue refused, naming the cap"
fi

command_env "JOB_COMMAND_TASKS_MAX=16"
if has_controller pids; then
    step "command: a fork bomb stays within JOB_COMMAND_TASKS_MAX and is ended"
    # Each shell forks two more, for ever; pids.max refuses the 17th task.
    # The leader execs (no fork to be refused), so the job lasts to its timeout.
    job_id=$(enqueue_command '{"argv":["/usr/bin/sh","-c","b() { b | b & }; b; exec sleep 1003"]}' '{"timeout":6,"retry_count":0}')
    job_cg="$svc/job-$job_id-1"
    wait_for 20 in_ct test -e "$job_cg/pids.events" \
        || fail "the job never ran in $job_cg: $(admin "{\"cmd\":\"job\",\"id\":\"$job_id\"}")"
    wait_for 10 sh -c "nsenter -t $leader -m -p -u -i -n cat '$job_cg/pids.events' | grep -q '^max [1-9]'" \
        || fail "no fork was ever refused: $(in_ct cat "$job_cg/pids.events" "$job_cg/pids.max" 2>&1; admin "{\"cmd\":\"job\",\"id\":\"$job_id\"}")"
    peak=$(in_ct cat "$job_cg/pids.peak" 2>/dev/null || in_ct cat "$job_cg/pids.current")
    [ "$peak" -le 16 ] || fail "the job had $peak tasks"
    [ "$(admin '{"cmd":"ping"}' | json_get pong)" = true ] || fail "the daemon does not answer during the bomb"
    wait_dead "$job_id" 20
    wait_for 10 sh -c "! nsenter -t $leader -m -p -u -i -n test -e '$job_cg'" || fail "$job_cg is still there"
    in_ct pgrep -x -f 'sleep 1003' && fail "the bomb's sleep survived"
    # A job that fails on its cap says so.
    job_id=$(enqueue_command '{"argv":["/usr/bin/sh","-c","for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; wait"]}' '{"tasks_max":4,"retry_count":0}')
    wait_dead "$job_id" 20
    error=$(job_field "$job_id" last_error)
    case "$error" in *"task cap (tasks_max 4)"*"fork(s) refused"*) ;; *) fail "last_error: $error" ;; esac
    pass "at most $peak tasks; $(echo "$error" | head -n 1)"
else
    step "command: without a pids controller, JOB_COMMAND_TASKS_MAX switches the handler off"
    refused_for "JOB_COMMAND_TASKS_MAX=16"
    echo "SKIP: no real fork bomb: this host delegates no pids controller to cgroup v2 (hybrid hierarchy)"
    pass "enqueue refused, naming the cap"
fi

step "control: without Delegate= the escapee outlives its job (process-group mode)"
in_ct sh -c 'printf "[Service]\nDelegate=no\n" > /run/systemd/system/cronq.service.d/test-no-delegate.conf'
in_ct systemctl daemon-reload
command_env "JOB_TIMEOUT_SECONDS=30"
in_ct journalctl -q -u cronq -o cat | grep 'command jobs run each in a process group of its own, not a cgroup' >/dev/null \
    || fail "no start-up line about process-group mode"
job_id=$(enqueue_command '{"argv":["/usr/bin/sh","-c","setsid sleep 1004 & sleep 1005"]}' '{"timeout":3,"retry_count":0}')
wait_dead "$job_id" 20
wait_for 5 sh -c "! nsenter -t $leader -m -p -u -i -n pgrep -x -f 'sleep 1005'" || fail "the job's own process group outlived it"
in_ct pgrep -x -f 'sleep 1004' >/dev/null || fail "the escapee is gone: the cgroup steps above prove nothing"
in_ct pkill -x -f 'sleep 1004' || true
in_ct rm /run/systemd/system/cronq.service.d/test-no-delegate.conf
in_ct systemctl daemon-reload
pass "the escapee survived, as documented"

echo "all steps passed"
