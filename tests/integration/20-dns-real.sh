#!/bin/bash
# The getaddrinfo hook against glibc's real stub resolver and a real (if
# tiny) DNS server: sf_dnsd on 127.0.0.1:53 in a private network namespace,
# 300 ms per answer, logging every query.  See tests/preload/test_dns_real.c.
set -eu
. tests/integration/common.bash
HOSTS_EXTRA="192.0.2.60 hosts.test hostsalias
192.0.2.61 hosts.test
2001:db8:60::1 hosts.test"
sf_private_world "$0" "$@"

cat >"$SF_TMP/zone" <<'ZONE'
burst4.test   A     10.1.0.4
burstu.test   A     10.1.0.5
burstu.test   AAAA  2001:db8:1::5
d1.test       A     10.1.1.1
d2.test       A     10.1.1.2
d3.test       A     10.1.1.3
nx.test       NXDOMAIN
sf.test       SERVFAIL
excl.test     A     10.1.2.1
incl.test     A     10.1.2.2
alias.test    CNAME target.test
target.test   A     10.1.3.1
target.test   AAAA  2001:db8:3::1
multi.test    A     10.1.4.1
multi.test    A     10.1.4.2
multi.test    AAAA  2001:db8:4::1
multi.test    AAAA  2001:db8:4::2
v4only.test   A     10.1.5.1
alone.test    A     10.1.6.1
ZONE
sf_start_dnsd "$SF_TMP/zone" "$SF_TMP/queries.log" -d 300

export SF_DNS_LOG="$SF_TMP/queries.log"
SF_PRELOAD_SHIM_ONLY="$(sf_preload "$B/libsfshim.so")"
export SF_PRELOAD_SHIM_ONLY
status=0
LD_PRELOAD="$(sf_preload "$B/libsfshim.so" "$B/tests/libsf_fakeres.so")" \
	"$B/tests/test_dns_real" || status=$?
echo "queries seen by sf_dnsd (all tests, baselines included):"
sort "$SF_DNS_LOG" | uniq -c | sed "s/^/   /"
exit $status
