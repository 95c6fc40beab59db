#!/usr/bin/env bash
# scripts/curl8.sh - runs the curl tests a second time against libcurl 8.14.
#
#   B=build scripts/curl8.sh fetch   fetch libcurl 8.14 into $B/curl8 (only
#                                    when it is not there yet)
#   B=build scripts/curl8.sh check   fetch, then run the curl integration
#                                    tests with LD_LIBRARY_PATH pointing at it
#   (make check-curl8; part of make check-all)
#
# Debian 12 ships libcurl 7.88; Debian's bookworm-backports suite carries
# 8.14.1.  The packages (libcurl4, libcurl3-gnutls, libcurl4-openssl-dev) are
# downloaded with apt-get from a private apt configuration under
# $B/curl8.apt (the system's sources and package state are never touched)
# and unpacked with dpkg-deb -x into $B/curl8: the system's libcurl is never
# replaced.  When the archive cannot be reached, the 8.x run is skipped with
# a message, not failed.
set -euo pipefail
cd "$(dirname -- "$0")/.."

B=${B:-build}
VERSION=${CURL8_VERSION:-8.14.1}
SUITE=${CURL8_SUITE:-bookworm-backports}
MIRROR=${CURL8_MIRROR:-http://deb.debian.org/debian}
case $B in
/*) out=$B ;;
*) out=$PWD/$B ;;
esac
DEST=$out/curl8
APTDIR=$out/curl8.apt
LIBDIR=$DEST/usr/lib/x86_64-linux-gnu
PKGS=(libcurl4 libcurl3-gnutls libcurl4-openssl-dev)
# What 8.14's gnutls flavour links that bookworm lacks (HTTP/3 stacks):
# from the same suite, whatever version it has.
DEPS=(libnghttp3-9 libngtcp2-16 libngtcp2-crypto-gnutls8)

skip() {
	echo "curl8: SKIPPED: $* (the curl tests did not run against libcurl $VERSION)" >&2
	exit 0
}

have() {
	[ -e "$LIBDIR/libcurl.so.4" ] && [ -e "$LIBDIR/libcurl-gnutls.so.4" ] &&
		[ -e "$DEST/usr/include/x86_64-linux-gnu/curl/curl.h" ]
}

fetch() {
	have && return 0
	[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] ||
		skip "only set up for amd64"
	if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
		skip "apt-get or dpkg-deb missing"
	fi
	rm -rf "$APTDIR" "$DEST.tmp"
	mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$DEST.tmp"
	local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	echo "deb [signed-by=$keyring] $MIRROR $SUITE main" >"$APTDIR/sources.list"
	# Sources, lists and caches of its own: the system's apt state is
	# neither read for sources nor written.
	local conf=(-o "Dir::Etc::SourceList=$APTDIR/sources.list"
		-o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$APTDIR/lists"
		-o "Dir::Cache=$APTDIR/cache")
	local apt=(apt-get -q "${conf[@]}" -o APT::Sandbox::User=root)
	echo "curl8: fetching libcurl $VERSION from $SUITE into $DEST"
	"${apt[@]}" update >"$APTDIR/update.log" 2>&1 ||
		skip "apt-get update for $SUITE failed (see $APTDIR/update.log)"
	# The version in the suite, e.g. 8.14.1-2+deb13u2~bpo12+1.
	local full
	full=$(apt-cache "${conf[@]}" madison libcurl4 2>/dev/null |
		awk -F'|' -v v="$VERSION" '{ gsub(/ /, "", $2) } index($2, v "-") == 1 { print $2; exit }')
	[ -n "$full" ] ||
		skip "no libcurl4 $VERSION from $SUITE at $MIRROR (unreachable? see $APTDIR/update.log)"
	local want=() p
	for p in "${PKGS[@]}"; do want+=("$p=$full"); done
	want+=("${DEPS[@]}")
	(cd "$DEST.tmp" && "${apt[@]}" download "${want[@]}") >"$APTDIR/download.log" 2>&1 ||
		skip "apt-get download failed (see $APTDIR/download.log)"
	for p in "$DEST.tmp"/*.deb; do
		dpkg-deb -x "$p" "$DEST.tmp/root"
	done
	rm -rf "$DEST"
	mv "$DEST.tmp/root" "$DEST"
	rm -rf "$DEST.tmp"
	have || skip "the packages did not hold libcurl.so.4, libcurl-gnutls.so.4 and curl.h"
	local lib missing
	for lib in "$LIBDIR/libcurl.so.4" "$LIBDIR/libcurl-gnutls.so.4"; do
		missing=$(LD_LIBRARY_PATH="$LIBDIR" ldd "$lib" | grep "not found" || true)
		[ -z "$missing" ] || skip "$lib needs libraries that are not there: $missing"
	done
}

check() {
	fetch
	local got
	got=$(LD_LIBRARY_PATH="$LIBDIR" "$B/tests/sf_curl_version" 2>/dev/null) || got=
	case $got in
	"$VERSION"*) ;;
	*) echo "curl8: LD_LIBRARY_PATH=$LIBDIR gives libcurl '$got', not $VERSION" >&2; exit 1 ;;
	esac
	echo "curl8: running the curl tests against libcurl $got ($LIBDIR)"
	# The curl hook's tests; 32-curl-optlist.sh also reads 8.14's curl.h
	# and 38-curl8-newopt.sh builds a program with it; 81 is libcurl across
	# processes.
	LD_LIBRARY_PATH="$LIBDIR" B="$B" tests/run-integration.sh \
		tests/integration/3[0-9]-*.sh tests/integration/4[0-9]-*.sh \
		tests/integration/5[0-9]-*.sh tests/integration/81-scope-curl.sh
}

case ${1:-check} in
fetch) fetch ;;
check) check ;;
*) echo "usage: scripts/curl8.sh [fetch|check]" >&2; exit 2 ;;
esac
