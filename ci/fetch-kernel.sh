#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Fetch the newest linux-source-7.3 .deb from Debian's trixie-backports suite
# with a private apt configuration (sources list, state and cache directories
# under the project's cache): nothing under /etc/apt or /var/lib/apt changes.
#
# Prints the path of the cached linux-source tarball on stdout.
#
# Environment:
#   CXL_SR_CACHE    cache directory (default: ${XDG_CACHE_HOME:-~/.cache}/cxl-sr-suite)
#   KERNEL_SERIES   Debian linux-source series to fetch (default: 7.3)
#   DEBIAN_MIRROR   archive URI (default: the one the machine's sources use)
set -euo pipefail

series=${KERNEL_SERIES:-7.3}
cache=${CXL_SR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cxl-sr-suite}
aptdir=$cache/apt
debdir=$cache/debs
pkg=linux-source-$series

die() { echo "fetch-kernel: error: $*" >&2; exit 1; }

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	# Reuse the archive the machine already trusts (deb822 or one-line form).
	mirror=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
		/etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ' || true)
	mirror=${mirror:-http://deb.debian.org/debian}
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || die "$keyring missing (apt-get install debian-archive-keyring)"
command -v apt-get >/dev/null || die "apt-get not found: this needs a Debian machine, or pass KSRC=<tree>"

mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$debdir"
cat >"$aptdir/sources.list" <<EOS
deb [signed-by=$keyring] $mirror trixie-backports main
EOS

apt_opts=(-q -o "Dir::Etc::sourcelist=$aptdir/sources.list" -o Dir::Etc::sourceparts=-
	  -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache"
	  -o Dir::State::status=/dev/null -o APT::Sandbox::User=root
	  -o Debug::NoLocking=1)

# A cached .deb is good enough unless asked to refresh: a second run makes no
# network access at all.
newest=$(ls -1 "$debdir"/${pkg}_*.deb 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$newest" ] || [ -n "${CXL_SR_REFRESH:-}" ]; then
	echo "fetch-kernel: apt-get update (private state in $aptdir)" >&2
	apt-get "${apt_opts[@]}" update >&2 || die "apt-get update failed for $mirror trixie-backports"
	ver=$(apt-cache "${apt_opts[@]}" policy "$pkg" 2>/dev/null |
	      awk '/Candidate:/ {print $2}')
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "$pkg is not offered by $mirror trixie-backports"
	deb=$debdir/${pkg}_${ver//:/%3a}_all.deb
	if [ ! -s "$deb" ]; then
		echo "fetch-kernel: downloading $pkg $ver" >&2
		(cd "$debdir" && apt-get "${apt_opts[@]}" download "$pkg=$ver" >&2) ||
			die "apt-get download $pkg=$ver failed"
	fi
	newest=$(ls -1 "$debdir"/${pkg}_*.deb | sort -V | tail -n1)
fi

tarball=$cache/src/$(basename "$newest" .deb).tar.xz
if [ ! -s "$tarball" ]; then
	tmp=$(mktemp -d "$cache/unpack.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	dpkg-deb -x "$newest" "$tmp" || die "cannot unpack $newest"
	src=$(ls "$tmp"/usr/src/linux-source-*.tar.xz 2>/dev/null | head -n1)
	[ -n "$src" ] || die "$newest holds no /usr/src/linux-source-*.tar.xz"
	mkdir -p "$cache/src"
	mv "$src" "$tarball.tmp" && mv "$tarball.tmp" "$tarball"
fi
echo "$tarball"
