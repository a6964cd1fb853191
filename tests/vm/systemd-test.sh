#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The checks of the vm tier's systemd guest (tests/vm/systemd-guest), run by
# daxpool-vmtest.service in a Debian bookworm guest with systemd as PID 1 and
# udevd: what an administrator does with the packages on a machine with a
# device-dax device. Prints "SDTEST ok - ..." / "SDTEST not ok - ..." lines,
# then SDTEST_SUMMARY and VMTEST_EXIT=<0 all passed, 1 a check failed,
# 2 setup failed>, and powers off.
# shellcheck disable=SC2016 # the single-quoted checks are expanded by the sh that runs them
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
T=/root/daxpool-test
CTL=/tmp/sdtest-ctl
npass=0 nfail=0 failed=

ok() { echo "SDTEST ok - $*"; npass=$((npass + 1)); }
notok() { echo "SDTEST not ok - $*"; nfail=$((nfail + 1)); failed="$failed${failed:+, }$1"; }
# check NAME COMMAND...: ok when COMMAND succeeds.
check() {
	local name=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then ok "$name"; else
		notok "$name"
		sed 's/^/SDTEST |   /' /tmp/check.out | head -n 40
	fi
}
show() { "$@" 2>&1 | sed 's/^/SDTEST | /'; }
finish() {
	echo "SDTEST_SUMMARY kernel=$(uname -r) pass=$npass fail=$nfail${failed:+ failed: $failed} time=${SECONDS}s"
	echo "VMTEST_EXIT=$1"
	sync
	systemctl poweroff --force --force
	sleep 30
}
setup_fail() {
	echo "VMTEST_SETUP_FAILED: $*"
	sed 's/^/SDTEST |   /' /tmp/setup.out 2>/dev/null | tail -n 30
	finish 2
}
run() { "$@" >/tmp/setup.out 2>&1 || setup_fail "'$*' failed with rc=$?"; }
# wait_for SECS COMMAND...: poll COMMAND every 0.1 s.
wait_for() {
	local n=$(($1 * 10))
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		((n > 0)) || return 1
		sleep 0.1
	done
}
journal() { journalctl -u daxpoold.service -b --no-pager -o cat; }
journal_has() { journal | grep -qF -- "$1"; }

echo "SDTEST_BOOT kernel=$(uname -r) $(systemctl --version | head -n1) uptime=$(cut -d' ' -f1 /proc/uptime)s"
wait_for 60 systemd-analyze time
show systemd-analyze time

# --- the packages, with apt from a local directory ---------------------------
[ -s "$T/debs/Packages" ] || setup_fail "no local repository in $T/debs"
# Only the local directory: the guest has no network.
apt_local=(-o Dir::Etc::sourcelist="$T/daxpool-local.list" -o Dir::Etc::sourceparts=-
	-o APT::Get::List-Cleanup=0)
mapfile -t pkgs < <(sed -n 's/^Package: //p' "$T/debs/Packages" | sort -u)
if apt-get "${apt_local[@]}" update >/tmp/apt.out 2>&1 &&
	DEBIAN_FRONTEND=noninteractive apt-get "${apt_local[@]}" install -y --no-install-recommends \
		"${pkgs[@]}" >>/tmp/apt.out 2>&1; then
	ok "apt-get install ${pkgs[*]} (from the local repository $T/debs)"
else
	notok "apt-get install"
	sed 's/^/SDTEST |   /' /tmp/apt.out | tail -n 30
	finish 1
fi
sed -n 's/^Setting up /SDTEST | setting up /p' /tmp/apt.out

# --- the device: a devdax namespace; udev names it and gives it to the user --
run useradd --create-home --user-group --groups daxpool alice
# As an administrator gives an application its device.
cat >/etc/udev/rules.d/70-daxpool-test.rules <<'EOF'
SUBSYSTEM=="dax", KERNEL=="dax0.0", OWNER="alice", MODE="0600"
EOF
run udevadm control --reload
run wait_for 30 test -e /sys/bus/nd/devices/region0
run ndctl disable-region all
run ndctl init-labels -f all
run ndctl enable-region all
run ndctl create-namespace -r region0 -m devdax -a 2M -s 256M -n devdax
run udevadm settle -t 60
[ -c /dev/dax0.0 ] || setup_fail "/dev/dax0.0 missing after create-namespace"
check "udev gives /dev/dax0.0 to alice ($(stat -c '%U:%G %a' /dev/dax0.0))" \
	test "$(stat -c %U /dev/dax0.0)" = alice

# --- the socket, and activation on the first connection ----------------------
check "daxpoold.socket is enabled and active" systemctl is-active daxpoold.socket
show systemctl status --no-pager daxpoold.socket
check "it listens on /run/daxpool/daxpoold.sock" \
	sh -c 'systemctl show -p Listen --value daxpoold.socket | grep -q "^/run/daxpool/daxpoold.sock (SequentialPacket)"'
check "the socket is root:daxpool 0660 ($(stat -c '%U:%G %a' /run/daxpool/daxpoold.sock 2>&1))" \
	test "$(stat -c '%U:%G %a' /run/daxpool/daxpoold.sock)" = "root:daxpool 660"
check "daxpoold.service is enabled through its socket only (not WantedBy a target)" \
	sh -c '! ls /etc/systemd/system/*.target.wants/daxpoold.service'
check "daxpoold.service is not running after the install, before a connection" \
	sh -c '! systemctl is-active daxpoold.service'
# Its INFO lines (the open record, the udev source) are what this test reads.
mkdir -p /etc/systemd/system/daxpoold.service.d
cat >/etc/systemd/system/daxpoold.service.d/verbose.conf <<'EOF'
[Service]
ExecStart=
ExecStart=/usr/sbin/daxpoold --foreground -v
EOF
run systemctl daemon-reload

rm -rf "$CTL"
mkdir -p "$CTL"
chown alice: "$CTL"
runuser -u alice -- env DAXPOOL_DAEMON=1 DAXPOOL_LOG=notice /usr/local/bin/daxpool-systemd-client /dev/dax0.0 "$CTL" \
	>/tmp/client.out 2>&1 &
client=$!
if wait_for 60 test -e "$CTL/ready"; then
	ok "alice (groups: $(id -nG alice)) registers through /run/daxpool/daxpoold.sock"
else
	notok "alice's client registers"
	sed 's/^/SDTEST |   /' /tmp/client.out
fi
check "the first connection started daxpoold.service" systemctl is-active daxpoold.service
show systemctl status --no-pager daxpoold.service
check "Type=notify: the service reports READY (Status: $(systemctl show -p StatusText --value daxpoold.service))" \
	sh -c 'systemctl show -p NotifyAccess,ActiveState daxpoold.service | grep -q ActiveState=active'
check "the open record watches the device (log: open record: watching 1 device-dax node(s))" \
	journal_has "open record: watching 1 device-dax node(s)"
check "the log has no 'open record: off'" sh -c '! journalctl -u daxpoold -b -o cat | grep -F "open record: off"'
check "device events come from udev (log: following device events from udev)" \
	journal_has "following device events from udev"
daxpoolctl status --json >/tmp/status.json 2>&1
check "daxpoolctl status --json: device_events udev" grep -q '"device_events": *"udev"' /tmp/status.json
show daxpoolctl status
check "daxpoolctl status names alice's client as a holder of dax0.0" \
	sh -c "daxpoolctl status dax0.0 | grep -q -w $(cat "$CTL/ready" 2>/dev/null || echo none)"

# --- a restart in the middle of a drain ----------------------------------------
daxpoolctl release --timeout 60 dax0.0 >/tmp/release1.out 2>&1 &
rel1=$!
if wait_for 60 test -e "$CTL/revoked"; then
	ok "release 1: the client was asked to revoke (and holds on)"
else
	notok "release 1: the client was asked to revoke"
fi
sleep 1
check "release 1 is still in progress when daxpoold restarts" kill -0 $rel1
pid_before=$(systemctl show -p MainPID --value daxpoold.service)
check "systemctl restart daxpoold" systemctl restart daxpoold.service
pid_after=$(systemctl show -p MainPID --value daxpoold.service)
check "a new daxpoold runs (pid $pid_before -> $pid_after)" \
	sh -c "[ $pid_after -ne 0 ] && [ $pid_after -ne $pid_before ]"
wait $rel1
rc1=$?
show cat /tmp/release1.out
check "release 1 fails (rc=$rc1) and says why" \
	sh -c "[ $rc1 -ne 0 ] && [ -s /tmp/release1.out ]"
check "dax0.0 is still enabled after the cancelled release" test -e /sys/bus/dax/devices/dax0.0/driver
check "the socket stayed active across the restart" systemctl is-active daxpoold.socket
touch "$CTL/letgo"
if wait_for 60 test -e "$CTL/ready2"; then
	ok "the client keeps working: reconnected, maps and pins again"
else
	notok "the client keeps working after the restart"
	sed 's/^/SDTEST |   /' /tmp/client.out
fi
show daxpoolctl status dax0.0

# --- a release that drains and disables the device -------------------------------
if daxpoolctl release --timeout 60 dax0.0 >/tmp/release2.out 2>&1; then
	ok "release 2: daxpoolctl release dax0.0 succeeds"
else
	notok "release 2: daxpoolctl release dax0.0 (rc=$?)"
fi
show cat /tmp/release2.out
check "dax0.0 is disabled (no driver bound)" sh -c '! test -e /sys/bus/dax/devices/dax0.0/driver'
check "the sandbox let the daemon write the unbind file (no EROFS/EPERM in the log)" \
	sh -c '! journalctl -u daxpoold -b -o cat | grep -E "unbind|disable" | grep -Ei "read-only|not permitted|denied"'
udevadm settle -t 30
touch "$CTL/released"
if wait $client; then ok "the client ends cleanly: a map after the release fails with ENXIO"; else
	notok "the client ends cleanly (rc=$?)"
fi
show cat /tmp/client.out
sleep 1
check "udevd's event of the disable reached the daemon" \
	sh -c 'journalctl -u daxpoold -b -o cat | grep -i "dax0.0" | grep -Eiq "udev|event|remove|unbind|gone"'
run daxctl enable-device dax0.0
udevadm settle -t 30
check "daxctl enable-device brings dax0.0 back" test -c /dev/dax0.0

# --- stop, and the journal ---------------------------------------------------------
check "systemctl stop daxpoold" systemctl stop daxpoold.service
check "the stop is clean (Result=$(systemctl show -p Result --value daxpoold.service), status=$(systemctl show -p ExecMainStatus --value daxpoold.service))" \
	sh -c 'systemctl show -p Result --value daxpoold.service | grep -qx success && ! systemctl is-failed daxpoold.service'
check "the socket keeps listening after the stop" systemctl is-active daxpoold.socket
show journal
check "journal: the audit line of release 1 (requester pid/uid/comm): cancelled" \
	sh -c "journalctl -u daxpoold -b -o cat | grep -qE 'release of [^ ]*dax0.0 requested by pid [0-9]+ uid 0 \(daxpoolctl\): cancelled'"
check "journal: the audit line of release 2 (requester pid/uid/comm): released" \
	sh -c "journalctl -u daxpoold -b -o cat | grep -qE 'release of [^ ]*dax0.0 requested by pid [0-9]+ uid 0 \(daxpoolctl\): released'"
check "no unit failed" sh -c '[ -z "$(systemctl list-units --failed --no-legend --plain | grep -v daxpool-vmtest)" ]'
show systemctl list-units --failed --no-pager
check "no sandbox denials of daxpoold in the kernel log (seccomp, EROFS)" \
	sh -c '! journalctl -k -b -o cat | grep -E "audit.*daxpoold|comm=\"daxpoold\""'

# --- an upgrade (the same version again), a removal, a purge ----------------------
daxpoolctl status >/dev/null 2>&1
pid_before=$(systemctl show -p MainPID --value daxpoold.service)
check "the next connection starts the daemon again (pid $pid_before)" systemctl is-active daxpoold.service
if apt-get "${apt_local[@]}" install -y --reinstall daxpoold >/tmp/apt.out 2>&1; then
	ok "apt-get install --reinstall daxpoold (as an upgrade: postinst configure with the old version)"
else
	notok "apt-get install --reinstall daxpoold"
	sed 's/^/SDTEST |   /' /tmp/apt.out | tail -n 20
fi
check "after the upgrade the socket listens" systemctl is-active daxpoold.socket
check "after the upgrade the old daemon (pid $pid_before) is gone" \
	sh -c "! test -e /proc/$pid_before || ! grep -qx daxpoold /proc/$pid_before/comm"
check "after the upgrade a connection is answered" daxpoolctl status
check "a daemon runs before the removal" sh -c '[ "$(grep -lx daxpoold /proc/[0-9]*/comm 2>/dev/null | wc -l)" -ge 1 ]'
if apt-get "${apt_local[@]}" remove -y daxpoold daxpool-tools libdaxpool1 >/tmp/apt.out 2>&1; then
	ok "apt-get remove daxpoold daxpool-tools libdaxpool1"
else
	notok "apt-get remove"
	sed 's/^/SDTEST |   /' /tmp/apt.out | tail -n 20
fi
check "after the removal the socket is stopped" sh -c '! systemctl is-active daxpoold.socket'
check "after the removal no daxpoold process runs" \
	sh -c '[ "$(grep -lx daxpoold /proc/[0-9]*/comm 2>/dev/null | wc -l)" -eq 0 ]'
check "after the removal /run/daxpool/daxpoold.sock is gone" sh -c '! test -e /run/daxpool/daxpoold.sock'
if apt-get "${apt_local[@]}" purge -y daxpoold daxpool-tools libdaxpool1 >/tmp/apt.out 2>&1; then
	ok "apt-get purge"
else
	notok "apt-get purge"
	sed 's/^/SDTEST |   /' /tmp/apt.out | tail -n 20
fi
rm -rf /etc/systemd/system/daxpoold.service.d
check "after the purge no daxpoold unit, link or config is left" \
	sh -c '! ls -d /etc/systemd/system/*/daxpoold.* /lib/systemd/system/daxpoold.* /etc/daxpool 2>/dev/null | grep -q .'

((nfail == 0)) && finish 0
finish 1
