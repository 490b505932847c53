#!/bin/sh
# Checks systemd/ with systemd's own tools, in a throw-away root:
#   - systemd-analyze verify prints nothing for cronq.service and cronq.socket
#     (it exits 0 on warnings, so stderr is what counts), and a canary with a
#     bogus key proves the check can fail;
#   - systemd-sysusers and systemd-tmpfiles accept our snippets;
#   - systemd-analyze security --offline rates cronq.service at most 2.0.
# Usage: tests/systemd_units.sh [path/to/cronq]   (default target/debug/cronq)
# Needs systemd-analyze (Debian's systemd package); not root.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${CRONQ_BIN:-$here/target/debug/cronq}}
max_score=${CRONQ_MAX_EXPOSURE:-2.0}

[ -x "$bin" ] || { echo "systemd_units: no cronq binary at $bin (cargo build first)" >&2; exit 2; }
command -v systemd-analyze >/dev/null || { echo "systemd_units: systemd-analyze is missing" >&2; exit 2; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT INT TERM

# A root holding what verify resolves: the distribution's units (targets),
# the programs named in Exec lines, and ours, where the package puts them.
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
ln -s usr/bin "$root/bin"
ln -s usr/lib "$root/lib"
cp /usr/bin/kill "$root/usr/bin/kill"
cp "$bin" "$root/usr/bin/cronq"
units="$root/usr/lib/systemd/system"
cp "$here/systemd/cronq.service" "$here/systemd/cronq.socket" "$units/"

fail=0
verify() {
    out=$(systemd-analyze verify --man=no --root="$root" "$@" 2>&1) || true
    printf '%s' "$out"
}

# Canary: if verify cannot see a bogus key, an empty stderr proves nothing.
sed 's/^\[Service\]$/[Service]\nBogusKey=1/' "$units/cronq.service" > "$units/canary.service"
if [ -z "$(verify canary.service)" ]; then
    echo "FAIL: systemd-analyze verify did not report a bogus key; the check is blind" >&2
    fail=1
fi
rm "$units/canary.service"

out=$(verify cronq.service cronq.socket)
if [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify complained:" >&2
    echo "$out" >&2
    fail=1
else
    echo "ok: systemd-analyze verify cronq.service cronq.socket: silent"
fi

# A reload must wait for the daemon's answer, so a refused crons file fails
# `systemctl reload` (tests/nspawn_boot.sh proves it under a booted systemd).
if grep -q '^ExecReload=/usr/bin/cronq reload$' "$units/cronq.service"; then
    echo "ok: ExecReload goes through cronq reload"
else
    echo "FAIL: ExecReload is not /usr/bin/cronq reload: $(grep '^ExecReload' "$units/cronq.service")" >&2
    fail=1
fi

out=$(systemd-sysusers --root="$root" "$here/systemd/cronq.sysusers" 2>&1) || { echo "FAIL: systemd-sysusers: $out" >&2; fail=1; }
if grep -q '^cronq:' "$root/etc/passwd" && grep -q '^cronq:' "$root/etc/group"; then
    echo "ok: systemd-sysusers creates user and group cronq"
else
    echo "FAIL: systemd-sysusers did not create cronq" >&2
    fail=1
fi

out=$(systemd-tmpfiles --root="$root" --create "$here/systemd/cronq.tmpfile" 2>&1) || { echo "FAIL: systemd-tmpfiles: $out" >&2; fail=1; }
if [ -n "$out" ]; then
    echo "FAIL: systemd-tmpfiles complained: $out" >&2
    fail=1
fi
# stat names groups from the host's /etc/group, so compare numbers.
gid=$(awk -F: '$1 == "cronq" { print $3 }' "$root/etc/group")
mode=$(stat -c '%a %g' "$root/run/cronq" 2>/dev/null || echo missing)
if [ "$mode" = "750 $gid" ]; then
    echo "ok: systemd-tmpfiles makes /run/cronq 0750 group cronq"
else
    echo "FAIL: /run/cronq is '$mode', want '750 cronq'" >&2
    fail=1
fi

report=$(systemd-analyze security --offline=yes --root="$root" cronq.service 2>&1) || true
score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for cronq.service: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
    echo "FAIL: no exposure level in systemd-analyze security output:" >&2
    echo "$report" >&2
    fail=1
else
    echo "systemd-analyze security cronq.service: exposure $score (limit $max_score)"
    if awk -v s="$score" -v m="$max_score" 'BEGIN { exit !(s > m) }'; then
        echo "FAIL: exposure $score is above $max_score; the open items:" >&2
        printf '%s\n' "$report" | grep '✗' >&2 || true
        fail=1
    fi
fi

exit $fail
