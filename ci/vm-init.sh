#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# PID 1 of the cxl-sr-suite test VM: mount, run the cxl kselftests, report
# KTAP on the serial console between markers, scan kmemleak, power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# What udev would create: the kselftest runner writes to /dev/stdout.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
echo 8 > /proc/sys/kernel/printk

args=$(cat /proc/cmdline)
filter=
program=cxl_sr_owner
harness=
plan=
gcov=
for a in $args; do
	case "$a" in
	cxlsr.test=*) program=${a#cxlsr.test=}; filter="-t cxl:$program" ;;
	cxlsr.harness=*) harness=$(echo "${a#cxlsr.harness=}" | tr , ' ') ;;
	cxlsr.shard=*) plan=/cxlsr-plan/${a#cxlsr.shard=} ;;
	cxlsr.gcov=1) gcov=1 ;;
	cxlsr.stress=*) export CXL_SR_STRESS_ROUNDS=${a#cxlsr.stress=} ;;
	cxlsr.seed=*) export CXL_SR_STRESS_SEED=${a#cxlsr.seed=} ;;
	esac
done
# Some cases of one harness program (cxlsr.harness=-f,FIXTURE...).
if [ -n "$harness" ]; then
	plan=/tmp/plan
	echo "$program $harness" > $plan
fi
# Coverage counts what the tests run, not the boot.
[ -n "$gcov" ] && echo 1 > /sys/kernel/debug/gcov/reset

echo CXL-SR-KSELFTEST-BEGIN
if [ -n "$plan" ]; then
	# A plan: a line per program, its name and harness options (the host
	# split the cases over several VMs). run_kselftest.sh passes programs
	# no arguments, so print what it would around each.
	echo "TAP version 13"
	echo "1..$(grep -c . $plan)"
	n=0
	while read -r prog opts; do
		n=$((n + 1))
		echo "# selftests: cxl: $prog"
		# shellcheck disable=SC2086 # $opts: one option per word
		{ cd /kselftest/cxl && ./$prog $opts </dev/null 2>&1; echo $? > /tmp/harness.rc; } |
			sed -u 's/^/# /'
		rc=$(cat /tmp/harness.rc)
		if [ "$rc" = 0 ]; then
			echo "ok $n selftests: cxl: $prog"
		else
			echo "not ok $n selftests: cxl: $prog # exit=$rc"
		fi
	done < $plan
elif [ -x /kselftest/run_kselftest.sh ]; then
	cd /kselftest && ./run_kselftest.sh -c cxl $filter
else
	echo "not ok 1 selftests: cxl: no kselftest install in the initramfs"
fi
echo CXL-SR-KSELFTEST-END
[ -n "$gcov" ] && /gcov-dump.sh

if [ -w /sys/kernel/debug/kmemleak ]; then
	echo scan > /sys/kernel/debug/kmemleak
	echo scan > /sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak
fi
echo CXL-SR-POWEROFF
poweroff -f
