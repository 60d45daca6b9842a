#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# udevadm in the test VM, which has no udev: `settle` does what udev's
# module rule would have done by then. Round after round, it loads the
# module of every device that has no driver (its modalias), each alias
# once, until a round loads nothing and finds no new device. ndctl's tests
# run with a modprobe that settles after each load (vm-init.sh).
[ "$1" = settle ] || { echo "udevadm (test VM): only settle is supported: $*" >&2; exit 2; }
tried=$(mktemp)
seen=-1
while :; do
	new=0
	n=0
	for d in /sys/bus/*/devices/*; do
		n=$((n + 1))
		[ -e "$d/driver" ] || [ ! -r "$d/modalias" ] && continue
		alias=$(cat "$d/modalias" 2>/dev/null) || continue
		grep -qxF -e "$alias" "$tried" && continue
		echo "$alias" >> "$tried"
		/sbin/modprobe -q -b "$alias" 2>/dev/null && new=1
	done
	[ "$new" = 0 ] && [ "$n" = "$seen" ] && break
	seen=$n
	sleep 0.2
done
rm -f "$tried"
