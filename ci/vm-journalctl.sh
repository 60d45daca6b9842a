#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# journalctl in the test VM, which has no journal: the kernel's log (-k) of
# the last N seconds (--since -Ns), the one use ndctl's tests make of it
# (test/common, check_dmesg). -r is accepted: order is nothing to a grep.
# Anything else is refused, so that a new use shows up as an error.
since=
while [ $# -gt 0 ]; do
	case "$1" in
	-k|-r|--dmesg|--reverse) ;;
	--since) since=$2; shift ;;
	--since=*) since=${1#--since=} ;;
	*) echo "journalctl (test VM): unsupported option: $1" >&2; exit 2 ;;
	esac
	shift
done
case "$since" in
"") from=0 ;;
-*s) from=$(awk -v n="${since#-}" '{ sub(/s$/, "", n); print $1 - n }' /proc/uptime) ;;
*) echo "journalctl (test VM): unsupported --since: $since" >&2; exit 2 ;;
esac
# "[  12.345678] text": lines without a stamp go with the one before.
dmesg | awk -v from="$from" '
	match($0, /^\[ *[0-9]+\.[0-9]+\]/) {
		t = substr($0, 2, RLENGTH - 2) + 0
		keep = t >= from
	}
	keep'
