#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# PID 1 of the daxpool vm test guest (busybox sh).  Sets up devdax, fsdax
# (ext4, xfs, one raw namespace) and Soft-RoCE, runs the tests listed in
# /daxpool/tests/manifest, prints RESULT / SUMMARY lines and VMTEST_EXIT=<rc>
# on the console, then powers off.  Generated into the initramfs by
# tests/vm/run; see tests/vm/README.md for the contract.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp

TEST_TIMEOUT=180
TIMEOUT_SCALE=1
VMTEST_ONLY=
VMTEST_POWERCUT=
# shellcheck source=/dev/null
[ -f /daxpool/vmtest.conf ] && . /daxpool/vmtest.conf

finish() {
	echo "VMTEST_EXIT=$1"
	sync
	poweroff -f
	sleep 30
}

setup_fail() {
	echo "VMTEST_SETUP_FAILED: $*"
	echo "RESULT FAIL setup - rc=1 0s"
	dmesg | tail -n 30 | sed 's/^/dmesg| /'
	finish 2
}

run() {
	"$@" >/tmp/setup.out 2>&1 && return 0
	rc=$?
	sed 's/^/  | /' /tmp/setup.out
	setup_fail "'$*' failed with rc=$rc"
}

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=1777 tmp /tmp
mkdir -p /dev/pts /dev/shm
mount -t tmpfs -o mode=1777 shm /dev/shm

BOOT=1
MACHINE=nvdimm
read -r CMDLINE </proc/cmdline
for arg in $CMDLINE; do
	case $arg in
	vmtest.boot=*) BOOT=${arg#vmtest.boot=} ;;
	vmtest.machine=*) MACHINE=${arg#vmtest.machine=} ;;
	vmtest.test_timeout=*) TEST_TIMEOUT=${arg#vmtest.test_timeout=} ;;
	vmtest.timeout_scale=*) TIMEOUT_SCALE=${arg#vmtest.timeout_scale=} ;;
	esac
done

uptime_cs() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }
T_START=$(uptime_cs)
echo "VMTEST_BOOT kernel=$(uname -r) machine=$MACHINE boot=$BOOT test_timeout=${TEST_TIMEOUT}s timeout_scale=$TIMEOUT_SCALE uptime=$(cut -d' ' -f1 /proc/uptime)s"

# --- devices -------------------------------------------------------------

# ns_dev NAME: the block or char device of the namespace labelled NAME.
ns_dev() {
	ndctl list -N 2>/dev/null | awk -v want="$1" '
		/"name":/     { n = $0; sub(/.*"name":"/, "", n); sub(/".*/, "", n) }
		/"blockdev":/ { d = $0; sub(/.*"blockdev":"/, "", d); sub(/".*/, "", d) }
		/"chardev":/  { d = $0; sub(/.*"chardev":"/, "", d); sub(/".*/, "", d) }
		/}/           { if (n == want && d != "") print d; n = ""; d = "" }'
}

# The CXL machine: one persistent CXL type-3 device. Its memdev, a pmem
# region on it (cxl create-region) and a devdax namespace with its struct
# pages in RAM (--map=mem) on that; no NVDIMM, no fsdax. Where the kernel
# finds no memdev (6.12 under QEMU 7.2, which has no CXL event logs), the
# cxl runs skip with that reason (DAXPOOL_TEST_CXL_SKIP).
CXLDAX=
CXL_SKIP=
cxl_setup() {
	for m in cxl_acpi cxl_pci cxl_mem cxl_pmem nd_pmem dax_pmem device_dax; do
		run modprobe "$m"
	done
	# At most 20 s; a failed probe of cxl_pci (6.12 on QEMU 7.2) ends the wait at once.
	i=0
	while [ ! -e /sys/bus/cxl/devices/mem0 ] && [ $i -lt 100 ]; do
		dmesg | grep -qE 'cxl_pci .*(probe with driver cxl_pci failed|Failed)' && break
		sleep 0.2
		i=$((i + 1))
	done
	if [ ! -e /sys/bus/cxl/devices/mem0 ]; then
		why=$(dmesg | grep -iE 'cxl|mem0' | grep -iE 'fail|error|unable' | tail -n 1 |
			sed 's/^\[[^]]*\] *//')
		CXL_SKIP="kernel $(uname -r) found no CXL memory device on this QEMU's cxl-type3${why:+ ($why)}"
		echo "VMTEST_CXL none: $CXL_SKIP"
		return
	fi
	# The decoders and the nvdimm bridge come up asynchronously after the memdev.
	i=0
	while [ ! -e /sys/bus/cxl/devices/decoder0.0 ] && [ $i -lt 100 ]; do
		sleep 0.2
		i=$((i + 1))
	done
	run cxl create-region -t pmem -m -d decoder0.0 -w 1 mem0
	cxlregion=$(sed -n 's/.*"region":"\(region[0-9]*\)".*/\1/p' /tmp/setup.out | head -n 1)
	i=0
	while ! ndctl list -R 2>/dev/null | grep -q '"dev"' && [ $i -lt 100 ]; do
		sleep 0.2
		i=$((i + 1))
	done
	run ndctl create-namespace -m devdax --map=mem -a 2M -n cxl
	CXLDAX=$(ns_dev cxl)
	[ -n "$CXLDAX" ] && [ -c "/dev/$CXLDAX" ] || setup_fail "no devdax namespace on the CXL region"
	echo "VMTEST_CXL region=${cxlregion:-?} devdax=/dev/$CXLDAX"
}

if [ "$MACHINE" = cxl ]; then
	cxl_setup
else
for m in nfit nd_pmem dax_pmem device_dax ext4 xfs; do
	run modprobe "$m"
done

if [ "$BOOT" = 1 ]; then
	# QEMU's label area starts blank: without labels the region is one
	# label-less namespace that cannot be divided.
	run ndctl disable-region all
	run ndctl init-labels -f all
	run ndctl enable-region all
	run ndctl create-namespace -r region0 -m devdax -a 2M -s 256M -n devdax
	run ndctl create-namespace -r region0 -m fsdax -s 256M -n ext4
	run ndctl create-namespace -r region0 -m fsdax -s 64M -n raw
	# The rest for xfs, which wants at least 300 MB.
	run ndctl create-namespace -r region0 -m fsdax -n xfs
fi

DAXDEV=$(ns_dev devdax)
EXT4DEV=$(ns_dev ext4)
RAWDEV=$(ns_dev raw)
XFSDEV=$(ns_dev xfs)
[ -n "$DAXDEV" ] || setup_fail "no devdax namespace"
[ -n "$EXT4DEV" ] || setup_fail "no ext4 namespace"
[ -n "$XFSDEV" ] || setup_fail "no xfs namespace"
[ "$DAXDEV" = dax0.0 ] || setup_fail "devdax namespace is $DAXDEV, not dax0.0"
[ -c /dev/dax0.0 ] || setup_fail "/dev/dax0.0 missing"
echo "VMTEST_DEVICES devdax=/dev/$DAXDEV ext4=/dev/$EXT4DEV xfs=/dev/$XFSDEV raw=/dev/${RAWDEV:-none}"

mkdir -p /mnt/ext4 /mnt/xfs
if [ "$BOOT" = 1 ]; then
	# mke2fs picks 1 KiB blocks on small devices, which DAX refuses.
	run mkfs.ext4 -F -q -b 4096 "/dev/$EXT4DEV"
	run mkfs.xfs -f -q "/dev/$XFSDEV"
fi
run mount -o dax "/dev/$EXT4DEV" /mnt/ext4
run mount -o dax=always "/dev/$XFSDEV" /mnt/xfs
grep -q ' /mnt/ext4 .*dax' /proc/mounts || setup_fail "/mnt/ext4 not mounted with dax"
grep -q ' /mnt/xfs .*dax' /proc/mounts || setup_fail "/mnt/xfs not mounted with dax"
fi

# rdma_rxe needs crc32 from crypto; without crc32_generic "rdma link add"
# fails with ENOENT.
run modprobe crc32_generic
run modprobe rdma_rxe
run modprobe ib_uverbs
run ip link set lo up
run rdma link add rxe0 type rxe netdev lo
[ -e /sys/class/infiniband/rxe0 ] || setup_fail "rxe0 missing"
[ -c /dev/infiniband/uverbs0 ] || setup_fail "/dev/infiniband/uverbs0 missing"
echo "VMTEST_SETUP_DONE uptime=$(cut -d' ' -f1 /proc/uptime)s"

# --- tests ---------------------------------------------------------------
export DAXPOOL_TEST_TIER=vm
export DAXPOOL_TEST_REQUIRE=1
if [ "$MACHINE" = cxl ]; then
	# The CXL runs' device is the CXL namespace's; there is no other.
	export DAXPOOL_TEST_CXL_MACHINE=1
	[ -n "$CXLDAX" ] && export DAXPOOL_TEST_DEVDAX="/dev/$CXLDAX"
	[ -n "$CXL_SKIP" ] && export DAXPOOL_TEST_CXL_SKIP="$CXL_SKIP"
else
	export DAXPOOL_TEST_DEVDAX=/dev/dax0.0
	export DAXPOOL_TEST_FSDAX_DIRS=/mnt/ext4:/mnt/xfs
fi
export DAXPOOL_TEST_RDMA_DEV=rxe0
# Each test's own timeout (the harness's), stretched for software emulation.
export DAXPOOL_TEST_TIMEOUT_SCALE="$TIMEOUT_SCALE"
if [ -n "${RAWDEV:-}" ] && [ -b "/dev/$RAWDEV" ]; then
	export DAXPOOL_TEST_PMEM_BLOCK="/dev/$RAWDEV"
fi
export LD_LIBRARY_PATH=/daxpool/lib
export PATH="/daxpool/bin:/daxpool/tests/bin:$PATH"

NPASS=0
NFAIL=0
NSKIP=0
SKIPPED=
FAILED=
for l in devdax fsdax_ext4 fsdax_xfs rdma none file cxl; do
	eval "P_$l=0 F_$l=0 S_$l=0"
done
DMESG_SEEN=0

# count VERDICT LABEL NAME
count() {
	v=$(echo "$1" | cut -c1)
	l=$(echo "$2" | tr - _)
	case $l in
	devdax | fsdax_ext4 | fsdax_xfs | rdma | none | file | cxl) ;;
	*) l=none ;;
	esac
	eval "${v}_$l=\$((${v}_$l + 1))"
	case $1 in
	PASS) NPASS=$((NPASS + 1)) ;;
	FAIL) NFAIL=$((NFAIL + 1)); FAILED="$FAILED $3:$2" ;;
	SKIP) NSKIP=$((NSKIP + 1)); SKIPPED="$SKIPPED $3:$2" ;;
	esac
}

# check_dmesg WHAT: report new kernel oopses/warnings since the last check.
check_dmesg() {
	dmesg >/tmp/dmesg.now
	total=$(wc -l </tmp/dmesg.now)
	# The ring buffer wrapped: look at all of it.
	[ "$total" -lt "$DMESG_SEEN" ] && DMESG_SEEN=0
	if sed -n "$((DMESG_SEEN + 1)),\$p" /tmp/dmesg.now |
		grep -E 'Oops|BUG:|WARNING:|Call Trace' >/tmp/dmesg.bad; then
		# From the first bad line on, at most 80 lines: the trace itself.
		first=$(sed -n "$((DMESG_SEEN + 1)),\$p" /tmp/dmesg.now |
			grep -nE 'Oops|BUG:|WARNING:|Call Trace' | head -n1 | cut -d: -f1)
		sed -n "$((DMESG_SEEN + first)),\$p" /tmp/dmesg.now | head -n 80 | sed 's/^/dmesg| /'
		echo "RESULT FAIL dmesg $1 rc=0 0s"
		count FAIL none "dmesg($1)"
	fi
	DMESG_SEEN=$total
}

# prefix TEXT: copy stdin to the console line by line, unbuffered (busybox
# sed holds its output back when it is a pipeline stage), with TEXT in front
# of every line except the power-cut marker, which the host matches exactly.
prefix() {
	while IFS= read -r line || [ -n "$line" ]; do
		if [ "$line" = DAXPOOL_POWERCUT ]; then
			echo "$line"
		else
			echo "$1$line"
		fi
	done
}

# run_test NAME LABEL [ARGS...]: one run with the env of backing LABEL.
run_test() {
	name=$1
	label=$2
	shift 2
	case $label in
	file | devdax) backing=$label dir="" ;;
	fsdax-ext4) backing=fsdax dir=/mnt/ext4 ;;
	fsdax-xfs) backing=fsdax dir=/mnt/xfs ;;
	*) backing="" dir="" ;;
	esac
	# The run's limit: the sum of its tests' own timeouts (the host wrote it
	# into budgets), else the default.
	budget=$(awk -v n="$name" '$1 == n { print $2; exit }' /daxpool/tests/budgets 2>/dev/null)
	case $budget in '' | *[!0-9]*) budget=$TEST_TIMEOUT ;; esac
	echo "=== RUN $name $label${*:+ $*} (limit ${budget}s)"
	t0=$(uptime_cs)
	# Output goes to the console live, each line prefixed with the run's name.
	# The test runs as the leader of its own session, so that a timeout
	# (the watchdog, in a session of its own too) or the cleanup after it
	# kills every process it started: a stray child holding the output
	# pipe would otherwise stall the run. The watchdog says every minute that
	# the guest is alive (the host ends a boot whose console stays quiet).
	rm -f /tmp/rc
	(
		cd /tmp || exit 1
		[ -n "$backing" ] && export DAXPOOL_TEST_BACKING="$backing"
		[ -n "$dir" ] && export DAXPOOL_TEST_FSDAX_DIR="$dir"
		setsid "/daxpool/tests/bin/$name" "$@" </dev/null &
		tpid=$!
		setsid sh -c "s=0
			while [ \$s -lt $budget ]; do
				sleep 10
				s=\$((s + 10))
				[ \$((s % 60)) -eq 0 ] &&
					echo \"VMTEST_ALIVE $name:$label \${s}s of ${budget}s\" >/dev/console
			done
			kill -9 -$tpid" </dev/null >/dev/null 2>&1 &
		wpid=$!
		wait "$tpid"
		echo $? >/tmp/rc
		kill -9 "-$wpid" 2>/dev/null
		kill -9 "-$tpid" 2>/dev/null
	) 2>&1 | prefix "[$name:$label] "
	rc=$(cat /tmp/rc 2>/dev/null || echo 126)
	t1=$(uptime_cs)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
	case $rc in
	0) v=PASS ;;
	77) v=SKIP ;;
	137)
		v=FAIL
		if [ $((t1 - t0)) -ge $((budget * 100)) ]; then
			echo "[$name:$label] TIMEOUT: killed after its limit of ${budget}s"
		else
			echo "[$name:$label] killed by SIGKILL"
		fi
		;;
	*) v=FAIL ;;
	esac
	echo "RESULT $v $name $label rc=$rc ${secs}s"
	count "$v" "$label" "$name"
	check_dmesg "$name:$label"
	# A test that broke the shared devices would make every later one fail.
	# (The CXL machine's runs give their device back on purpose: release --teardown.)
	if [ "$MACHINE" != cxl ] && [ ! -c /dev/dax0.0 ]; then
		echo "RESULT FAIL devices-after-$name $label rc=1 0s"
		echo "[$name:$label] /dev/dax0.0 is gone after this test; trying to re-enable it"
		count FAIL "$label" "devices-after-$name"
		daxctl enable-device dax0.0 >/dev/null 2>&1
	fi
	return 0
}

labels_for() {
	for b in $(echo "$1" | tr , ' '); do
		case $b in
		fsdax) echo fsdax-ext4 fsdax-xfs ;;
		file | devdax | none | rdma | cxl) echo "$b" ;;
		*) echo "bad-backing-$b" ;;
		esac
	done
}

# Anything the kernel complained about during boot and setup counts too.
check_dmesg setup

MANIFEST=/daxpool/tests/manifest
if [ -n "$VMTEST_POWERCUT" ]; then
	pname=${VMTEST_POWERCUT%%:*}
	plabel=${VMTEST_POWERCUT#"$pname"}
	plabel=${plabel#:}
	if [ -z "$plabel" ]; then
		plabel=$(awk -v n="$pname" '$1 == n { print $2; exit }' "$MANIFEST" | cut -d, -f1)
		[ "$plabel" = fsdax ] && plabel=fsdax-ext4
		[ -n "$plabel" ] || plabel=none
	fi
	[ -x "/daxpool/tests/bin/$pname" ] || setup_fail "power-cut test $pname not found"
	if [ "$BOOT" = 1 ]; then
		run_test "$pname" "$plabel" --phase=1
		# Reaching this line means the host never cut the power.
		echo "RESULT FAIL powercut-$pname $plabel rc=1 0s"
		echo "[$pname:$plabel] phase 1 ended without the host cutting power (no DAXPOOL_POWERCUT line?)"
		count FAIL "$plabel" "powercut-$pname"
	else
		run_test "$pname" "$plabel" --phase=2
	fi
else
	[ -f "$MANIFEST" ] || setup_fail "$MANIFEST missing"
	sed -e 's/\r$//' "$MANIFEST" >/tmp/manifest
	while read -r name backings args; do
		case $name in '' | '#'*) continue ;; esac
		for label in $(labels_for "${backings:-none}"); do
			if [ -n "$VMTEST_ONLY" ] &&
				! echo "$name:$label" | grep -Eq -- "$VMTEST_ONLY"; then
				continue
			fi
			# Each machine runs its own: the CXL machine the cxl runs, the other the rest.
			case $MACHINE:$label in
			cxl:cxl) ;;
			cxl:* | *:cxl) continue ;;
			esac
			if [ "${label#bad-backing-}" != "$label" ]; then
				echo "RESULT FAIL $name $label rc=2 0s"
				echo "[$name:$label] manifest: unknown backing '${label#bad-backing-}'"
				count FAIL "$label" "$name"
			elif [ ! -x "/daxpool/tests/bin/$name" ]; then
				echo "RESULT FAIL $name $label rc=127 0s"
				echo "[$name:$label] /daxpool/tests/bin/$name not found"
				count FAIL "$label" "$name"
			else
				# shellcheck disable=SC2086 # the test names are words
				run_test "$name" "$label" $args
			fi
		done
	done </tmp/manifest
fi

check_dmesg end
umount /mnt/ext4 2>/dev/null
umount /mnt/xfs 2>/dev/null

summary="SUMMARY kernel=$(uname -r) machine=$MACHINE"
for l in devdax fsdax_ext4 fsdax_xfs rdma none file cxl; do
	eval "summary=\"\$summary $(echo $l | tr _ -)=\$P_$l/\$F_$l/\$S_$l\""
done
summary="$summary total pass=$NPASS fail=$NFAIL skip=$NSKIP time=$(awk -v a="$T_START" -v b="$(uptime_cs)" 'BEGIN { printf "%.1f", (b - a) / 100 }')s"
if [ "$NSKIP" -gt 0 ]; then
	echo "SKIPPED: $NSKIP test run(s) skipped although DAXPOOL_TEST_REQUIRE=1:$SKIPPED"
fi
if [ "$NFAIL" -gt 0 ]; then
	echo "FAILED:$FAILED"
fi
echo "$summary"
if [ "$NFAIL" -eq 0 ] && [ "$((NPASS + NSKIP))" -gt 0 ]; then
	finish 0
fi
[ "$((NPASS + NFAIL + NSKIP))" -eq 0 ] && echo "VMTEST: no test ran"
finish 1
