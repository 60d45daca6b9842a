#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Print the kernel's gcov counters on the console, for the host's lcov: the
# .gcda files of /sys/kernel/debug/gcov as a gzipped tar in base64, between
# markers. debugfs reports them as empty files, so they are copied with cat.
src=/sys/kernel/debug/gcov
if [ ! -d $src ]; then
	echo "CXL-SR-GCOV-NONE: no $src (CONFIG_GCOV_KERNEL off?)"
	exit 0
fi
dst=/tmp/gcov
mkdir -p $dst
cd $src || exit 1
find . -name '*.gcda' | while read -r f; do
	mkdir -p "$dst/${f%/*}"
	cat "$f" > "$dst/$f"
done
# Nothing from the kernel between the markers.
level=$(cut -f1 /proc/sys/kernel/printk)
echo 1 > /proc/sys/kernel/printk
echo CXL-SR-GCOV-BEGIN
tar -C $dst -czf - . | base64
echo CXL-SR-GCOV-END
echo "$level" > /proc/sys/kernel/printk
