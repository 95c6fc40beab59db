#!/bin/bash
# The getaddrinfo hook against the counting stand-in resolver: the shim, then
# libsf_fakeres.so (which the shim's RTLD_NEXT finds), then glibc answering
# from a private /etc/hosts.  See tests/preload/test_dns_fake.c.
set -eu
. tests/integration/common.bash
HOSTS_EXTRA="192.0.2.10 multi.test multi
192.0.2.11 multi.test
2001:db8::10 multi.test
2001:db8::11 multi.test
198.51.100.7 other.test
198.51.100.8 excl.test
198.51.100.9 incl.example"
sf_private_world "$0" "$@"

LD_PRELOAD="$(sf_preload "$B/libsfshim.so" "$B/tests/libsf_fakeres.so")" \
	"$B/tests/test_dns_fake"

# A follower short of memory makes its own call (issue 7, defect 10): the
# failing allocator after the shim takes memory from the shim's followers
# only.  Sanitizer runtimes interpose malloc first, so only the plain build.
if [ -z "$SAN" ]; then
	CK_RUN_CASE=dns_fake_memory \
		LD_PRELOAD="$(sf_preload "$B/libsfshim.so" "$B/tests/libsf_fakeres.so" \
			"$B/tests/libsf_failalloc.so")" "$B/tests/test_dns_fake"
fi
