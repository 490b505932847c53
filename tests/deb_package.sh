#!/bin/sh
# Checks a built cronq .deb (cargo deb): its files, conffiles and maintainer
# scripts; what its postrm removes on purge and keeps (run for real, as root,
# in a private mount namespace); systemd-analyze verify --root on the
# unpacked tree (stderr must be empty); and lintian (errors fail, warnings
# are listed and counted).
# Usage: tests/deb_package.sh [path/to/cronq_*.deb]   (default: newest in target/debian)
# Needs dpkg-deb and systemd-analyze; lintian is used when installed.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
deb=${1:-$(ls -t "$here"/target/debian/cronq_*.deb 2>/dev/null | head -n 1)}
[ -n "$deb" ] && [ -f "$deb" ] || { echo "deb_package: no .deb (run cargo deb)" >&2; exit 2; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT INT TERM
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

dpkg-deb -x "$deb" "$root/pkg"
dpkg-deb -e "$deb" "$root/control"

for f in usr/bin/cronq \
    usr/lib/systemd/system/cronq.service usr/lib/systemd/system/cronq.socket \
    usr/lib/sysusers.d/cronq.conf usr/lib/tmpfiles.d/cronq.conf \
    etc/cronq/cronq.env etc/cronq/crons.toml \
    usr/share/man/man8/cronq.8.gz usr/share/man/man5/cronq.toml.5.gz \
    usr/share/cronq/templates/welcome_email.html usr/share/doc/cronq/PROTOCOL.md; do
    [ -e "$root/pkg/$f" ] || bad "missing /$f"
done
[ "$(stat -c %a "$root/pkg/etc/cronq/cronq.env")" = 600 ] || bad "cronq.env is not 0600"
for c in /etc/cronq/cronq.env /etc/cronq/crons.toml; do
    grep -qx "$c" "$root/control/conffiles" || bad "$c is not a conffile"
done
for s in postinst prerm postrm; do
    [ -x "$root/control/$s" ] || { bad "no $s"; continue; }
    sh -n "$root/control/$s" || bad "$s: syntax"
done
grep -q 'systemd-sysusers' "$root/control/postinst" || bad "postinst does not run systemd-sysusers"
grep -q 'deb-systemd-helper.*enable\|deb-systemd-helper unmask' "$root/control/postinst" || bad "postinst does not enable the units"
if grep -q 'deb-systemd-invoke start\|deb-systemd-invoke \$_dh_action' "$root/control/postinst" &&
   ! grep -q '_dh_action=restart\|try-restart' "$root/control/postinst"; then
    bad "postinst starts the service on install"
fi
[ $fail = 0 ] && echo "ok: package contents, conffiles, maintainer scripts"

# What README.md says `apt purge` does. dpkg has removed the package's files
# and its conffiles (cronq.env, crons.toml) when it runs `postrm purge`; the
# script must then remove the state (queue database, data.db, exports) and the
# runtime directory, remove /etc/cronq when nothing else is in it, keep files
# an operator added there, keep the cronq user and group, and keep everything
# on `postrm remove`. It runs in a mount namespace whose /var/lib and /run are
# empty tmpfs and whose /etc is an overlay, so the machine is not touched.
grep -Eq 'userdel|deluser|groupdel|delgroup' "$root/control/postrm" && bad "postrm removes the cronq user or group"
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare --mount true 2>/dev/null; then
    mkdir -p "$root/ns"
    if unshare --mount --propagation private sh -eu -c '
        postrm=$1; ns=$2
        mount -t tmpfs tmpfs "$ns"
        mkdir "$ns/upper" "$ns/work"
        mount -t overlay overlay -o "lowerdir=/etc,upperdir=$ns/upper,workdir=$ns/work" /etc
        mount -t tmpfs tmpfs /var/lib
        mount -t tmpfs tmpfs /run
        installed() {
            mkdir -p /var/lib/cronq/data/exports /run/cronq /etc/cronq/templates
            for f in cronq.db cronq.db-wal cronq.db-shm data/data.db data/exports/users.csv; do
                echo x > "/var/lib/cronq/$f"
            done
            : > /run/cronq/admin.sock
        }
        installed
        # As dpkg runs it, so deb-systemd-helper does its part too.
        export DPKG_MAINTSCRIPT_PACKAGE=cronq DPKG_MAINTSCRIPT_NAME=postrm
        sh "$postrm" remove
        [ -e /var/lib/cronq/cronq.db ] && [ -e /var/lib/cronq/data/data.db ] ||
            { echo "postrm remove deleted the queue database or data.db" >&2; exit 1; }
        sh "$postrm" purge
        for d in /var/lib/cronq /run/cronq /etc/cronq; do
            [ ! -e "$d" ] || { echo "postrm purge left $d" >&2; exit 1; }
        done
        installed
        echo "Hello {{name}}" > /etc/cronq/templates/welcome_email.txt
        sh "$postrm" purge
        [ ! -e /var/lib/cronq ] || { echo "postrm purge left /var/lib/cronq" >&2; exit 1; }
        [ -e /etc/cronq/templates/welcome_email.txt ] ||
            { echo "postrm purge deleted a template the operator copied" >&2; exit 1; }
    ' purge-check "$root/control/postrm" "$root/ns"; then
        echo "ok: postrm purge removes /var/lib/cronq (queue database, data.db, exports), /run/cronq and an empty /etc/cronq; keeps the cronq user, the operator's files and, on remove, the data"
    else
        bad "postrm purge does not do what README.md says"
    fi
elif [ -n "${CRONQ_TEST_REQUIRE_TOOLS:-}" ]; then
    bad "the postrm purge check needs root and unshare (CRONQ_TEST_REQUIRE_TOOLS is set)"
else
    echo "SKIPPED: the postrm purge check needs root and unshare --mount"
fi

# verify the units as installed, with the distribution's units beside them.
mkdir -p "$root/pkg/usr/lib/systemd/system"
cp -an /usr/lib/systemd/system/. "$root/pkg/usr/lib/systemd/system/"
[ -e "$root/pkg/bin" ] || ln -s usr/bin "$root/pkg/bin"
cp -n /usr/bin/kill "$root/pkg/usr/bin/kill"
out=$(systemd-analyze verify --man=no --root="$root/pkg" cronq.service cronq.socket 2>&1) || true
if [ -n "$out" ]; then bad "systemd-analyze verify --root: $out"; else echo "ok: systemd-analyze verify --root on the unpacked package: silent"; fi

if command -v lintian >/dev/null; then
    # lintian warns about running as root; that is not about the package.
    report=$(lintian --no-tag-display-limit "$deb" 2>&1 | grep -v 'running with root privileges' || true)
    errors=$(printf '%s\n' "$report" | grep -c '^E:' || true)
    warnings=$(printf '%s\n' "$report" | grep -c '^W:' || true)
    printf '%s\n' "$report" | grep -E '^(E|W):' || true
    echo "lintian: $errors error(s), $warnings warning(s)"
    [ "$errors" = 0 ] || bad "lintian reports errors"
else
    echo "lintian not installed: skipped"
fi
exit $fail
