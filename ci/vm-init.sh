#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# PID 1 of the cxl-sr-suite test VM: mount, run the cxl kselftests, report
# KTAP on the serial console between markers, scan kmemleak, power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
# ndctl's cxl-events and cxl-poison read the cxl trace events here.
mount -t tracefs tracefs /sys/kernel/tracing
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# What udev would create: the kselftest runner writes to /dev/stdout.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
echo 8 > /proc/sys/kernel/printk

# One of ndctl's tests, as its meson.build runs it (the tools by path,
# the test programs beside the scripts, the interpreter and options of its
# #! line), under a hard timeout of its own (seconds: the runner's for the
# kernel's kind, or cxlsr.ndctl_timeout=), with udev running as on the
# systems ndctl's tests are written for (only the module rule; the
# kselftests load modules themselves and never run beside it). Exit 77 is a
# skip; its reason, as a failure's, the last line the test printed that is
# not a trace (+ ...).
ndctl_timeout=$(cat /usr/share/ndctl-test/cxlsr-timeout 2>/dev/null || echo 600)
# Where every user task and every blocked kernel thread is (state, wait
# channel, kernel stack): printed just before a test's timeout, so that a
# hang says where it hangs.
tasks() {
	echo "# cxl-sr: tasks after $1s:"
	for d in /proc/[0-9]*; do
		state=$(sed -n 's/^State:[[:space:]]*//p' "$d/status" 2>/dev/null)
		[ -s "$d/cmdline" ] || [ "${state%% *}" = D ] || continue
		echo "# ${d#/proc/} $(cat "$d/comm" 2>/dev/null) $state wchan=$(cat "$d/wchan" 2>/dev/null)"
		sed 's/^/#     /' "$d/stack" 2>/dev/null
	done
}

ndctl_test() {
	echo "# selftests: ndctl_cxl: $2"
	/lib/systemd/systemd-udevd --daemon --resolve-names=never
	(sleep $((ndctl_timeout - 5)) && tasks $((ndctl_timeout - 5))) &
	watchdog=$!
	# shellcheck disable=SC2086 # $interp: the program and its options
	{
		cd /usr/share/ndctl-test/test &&
			interp=$(sed -n '1s/^#!//p' "./$2.sh") &&
			NDCTL=/usr/bin/ndctl DAXCTL=/usr/bin/daxctl CXL=/usr/bin/cxl \
			TEST_PATH=$PWD DATA_PATH=$PWD \
			timeout -k 10 "$ndctl_timeout" $interp "./$2.sh" </dev/null 2>&1
		echo $? > /tmp/ndctl.rc
	} | tee /tmp/ndctl.out | sed -u 's/^/# /'
	kill $watchdog 2>/dev/null
	udevadm control --exit
	rc=$(cat /tmp/ndctl.rc)
	why=$(grep -v -e '^+' -e '^[[:space:]]*$' /tmp/ndctl.out | tail -n 1 | tr -d '#')
	case "$rc" in
	0) echo "ok $1 selftests: ndctl_cxl: $2" ;;
	77) echo "ok $1 selftests: ndctl_cxl: $2 # SKIP $why" ;;
	124|137) echo "not ok $1 selftests: ndctl_cxl: $2 # TIMEOUT ${ndctl_timeout}s" ;;
	*) echo "not ok $1 selftests: ndctl_cxl: $2 # exit=$rc: $why" ;;
	esac
}

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
	cxlsr.ndctl_timeout=*) ndctl_timeout=${a#cxlsr.ndctl_timeout=} ;;
	esac
done
# ndctl's CXL tests alone (cxlsr.test=ndctl_cxl): those named by
# cxlsr.harness=, else every one the host listed.
if [ "$program" = ndctl_cxl ] && [ -z "$harness" ]; then
	harness=$(cat /usr/share/ndctl-test/cxlsr-tests)
fi
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
	# split the cases over several VMs); for ndctl's CXL tests, "ndctl_cxl"
	# and the test scripts. run_kselftest.sh passes programs no arguments,
	# so print what it would around each.
	echo "TAP version 13"
	echo "1..$(awk '{ n += $1 == "ndctl_cxl" ? NF - 1 : 1 } END { print n }' "$plan")"
	n=0
	while read -r prog opts; do
		if [ "$prog" = ndctl_cxl ]; then
			for t in $opts; do
				n=$((n + 1))
				ndctl_test $n "$t"
			done
			continue
		fi
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
