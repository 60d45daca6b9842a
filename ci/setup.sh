#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what the suite needs on Debian 12, by package name. As root it
# installs what is missing; otherwise it prints the one apt-get line to run.
set -euo pipefail

# ndctl 81 is built from Debian's source (ci/cxlsr/ndctl.py): its build
# dependencies, and what its tests call in the VM beyond busybox (bash, jq,
# keyctl, uuidgen).
pkgs=(make gcc git xz-utils flex bison bc libelf-dev libssl-dev dwarves
      python3 python3-ply python3-git ccache rsync qemu-system-x86 cpio
      busybox-static kmod lcov debian-archive-keyring
      meson ninja-build pkgconf libkmod-dev libudev-dev uuid-dev libjson-c-dev
      libkeyutils-dev libiniparser-dev libtraceevent-dev libtracefs-dev bash jq
      keyutils uuid-runtime)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
	echo "setup: error: missing ${missing[*]} and no apt-get: install them by hand" >&2
	exit 1
fi
line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "setup: error: missing packages; as root run:" >&2
	echo "  apt-get update && $line" >&2
	exit 1
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2 || { echo "setup: error: apt-get update failed" >&2; exit 1; }
$line -q >&2 || { echo "setup: error: could not install: ${missing[*]}" >&2; exit 1; }
