#!/bin/bash
# Debian's PHP (php8.2-cli, php8.2-curl, php8.2-fpm) under the shim.  PHP
# loads its extensions with RTLD_DEEPBIND, so curl.so's curl_easy_* bind to
# libcurl itself, past anything preloaded (LD_DEBUG=bindings shows it);
# shim/dl/ routes them through the shim anyway.
#
#  reach  one `php -r` doing curl_exec: the curl hook counts the call (one
#         leader) and libcurl's own getaddrinfo reaches the DNS hook; the
#         output is byte-identical to a run without the library.  With a
#         curl_share_init handle (DNS) the same, when the library
#         interposes the share interface.
#  cli    16 concurrent `php -r` processes, one URL, one scope
#         (SFSHIM_SCOPE): one origin request, every output identical to a
#         run without the library.
#  fpm    php-fpm8.2, pm=static with 8 workers (root, -R, a private
#         configuration in a temporary directory, LD_PRELOAD into the master
#         so that the forked workers inherit it; PHP empties environ, the
#         library reads its settings when loaded), 8 concurrent FastCGI
#         requests with cgi-fcgi: one origin request, identical outputs.
# Requests carry gate=NAME: the origin holds them until the script has seen
# the leader ("leading flight across processes") and every follower
# ("joined flight across processes") in the library's debug log.
# cli and fpm need scopes (SFSHIM_SCOPE): without scope support in the
# library they are skipped with a message.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
HOSTS_EXTRA="127.0.0.1 php.sfshim.test"
export HOSTS_EXTRA
sf_private_world "$0" "$@"

PHP=/usr/bin/php8.2
FPM=/usr/sbin/php-fpm8.2
CGI_FCGI=/usr/bin/cgi-fcgi
N_CLI=16
N_FPM=8
SIZE=300000
sf_scope_dirs

fail() {
	echo "FAIL: $*"
	exit 1
}

sf_x86_64_only 85-php
if [ -n "$SAN" ]; then
	# PHP passes RTLD_DEEPBIND, which the sanitizer runtimes refuse
	# (sanitizer_common's CheckNoDeepBind) before the library sees the
	# call: php cannot load curl.so under them at all.
	echo "85-php: SKIP under $SAN: the sanitizer runtime rejects PHP's RTLD_DEEPBIND dlopen"
	exit 0
fi
for f in "$PHP" "$FPM" "$CGI_FCGI"; do
	[ -x "$f" ] || fail "$f missing (scripts/install-deps.sh: php8.2-cli php8.2-curl php8.2-fpm libfcgi-bin)"
done
"$PHP" -m | grep -qx curl || fail "php has no curl extension (php8.2-curl)"

SHIM="$SF_ROOT/$B/libsfshim.so"
ORIGIN="$SF_TMP/origin.log"
sf_start_httpd "$ORIGIN"
URL_BASE="http://php.sfshim.test:$SF_HTTP_PORT"

# The PHP side: GET the URL, print status and body (what a page would).
cat >"$SF_TMP/get.php" <<'PHPEOF'
<?php
$url = PHP_SAPI === 'cli' ? $argv[1] : $_GET['u'];
$c = curl_init($url);
curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
$body = curl_exec($c);
if ($body === false) {
	echo "error: ", curl_errno($c), " ", curl_error($c), "\n";
	exit(1);
}
echo "status: ", curl_getinfo($c, CURLINFO_RESPONSE_CODE), "\n";
echo "length: ", strlen($body), "\n\n", $body;
PHPEOF

requests() { sf_grep_count "GET $1" "$ORIGIN"; }
# count_logs PAT FILE...: lines holding PAT in the FILEs
# FILE may be a glob in single quotes: it is expanded at each call, so
# files that appear while sf_wait_count polls are counted too.
count_logs() {
	local pat=$1
	shift
	# shellcheck disable=SC2068 # the globs are meant to expand here
	cat $@ 2>/dev/null | grep -cF -- "$pat" || true
}

# ---- reach -----------------------------------------------------------------
LD_DEBUG=bindings "$PHP" -r 'curl_init();' 2>"$SF_TMP/bindings" >/dev/null
grep -Eq 'binding file [^ ]*/curl\.so .* to [^ ]*libcurl\.so\.4 .*curl_easy_perform' \
	"$SF_TMP/bindings" ||
	fail "php's curl.so does not bind curl_easy_perform to libcurl directly (not the RTLD_DEEPBIND case)"
echo "--- LD_DEBUG=bindings: curl.so binds curl_easy_perform to libcurl.so.4 itself"

path="/bytes/$SIZE?reach=1"
"$PHP" "$SF_TMP/get.php" "$URL_BASE$path" >"$SF_TMP/reach.plain" ||
	fail "php without the library failed"
SFSHIM_LOG=debug SFSHIM_STATS=stderr LD_PRELOAD="$SHIM" \
	"$PHP" "$SF_TMP/get.php" "$URL_BASE$path" >"$SF_TMP/reach.shim" 2>"$SF_TMP/reach.err" ||
	{ cat "$SF_TMP/reach.err"; fail "php with the library failed"; }
grep -E 'dl: |(dns|curl): calls' "$SF_TMP/reach.err" | sed 's/^/    /'
cmp "$SF_TMP/reach.plain" "$SF_TMP/reach.shim" || fail "reach: output differs"
head -2 "$SF_TMP/reach.shim" | grep -qx "status: 200" || fail "reach: not a 200"
grep -q "curl: calls=1 leaders=1 " "$SF_TMP/reach.err" ||
	fail "reach: the curl hook did not see php's curl_exec"
grep -q "dns: calls=1 leaders=1 " "$SF_TMP/reach.err" ||
	fail "reach: libcurl's getaddrinfo did not reach the DNS hook"
grep -q "dl: .*/curl.so: .* routed through the shim" "$SF_TMP/reach.err" ||
	fail "reach: no routing line for curl.so"
echo "--- reach: ok (curl_exec seen by the hook; output identical)"

# PHP's curl_share_init (a share handle holding the DNS cache) reaches the
# share hook too, when the library interposes it: the easy handle then
# coalesces instead of passing through.
if nm -D --defined-only "$SHIM" | grep -qw curl_share_init; then
	cat >"$SF_TMP/share.php" <<'PHPEOF'
<?php
$sh = curl_share_init();
curl_share_setopt($sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
$c = curl_init($argv[1]);
curl_setopt($c, CURLOPT_SHARE, $sh);
curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
$body = curl_exec($c);
echo "status: ", curl_getinfo($c, CURLINFO_RESPONSE_CODE), "\n";
echo "length: ", strlen($body), "\n\n", $body;
PHPEOF
	"$PHP" "$SF_TMP/share.php" "$URL_BASE$path" >"$SF_TMP/share.plain"
	SFSHIM_LOG=debug SFSHIM_STATS=stderr LD_PRELOAD="$SHIM" \
		"$PHP" "$SF_TMP/share.php" "$URL_BASE$path" >"$SF_TMP/share.shim" 2>"$SF_TMP/share.err" ||
		{ cat "$SF_TMP/share.err"; fail "share: php with the library failed"; }
	cmp "$SF_TMP/share.plain" "$SF_TMP/share.shim" || fail "share: output differs"
	grep -q "curl: calls=1 leaders=1 .* passthrough=0 " "$SF_TMP/share.err" ||
		{ grep -E 'dl: |curl: ' "$SF_TMP/share.err"; fail "share: the easy handle with PHP's share handle did not coalesce"; }
	echo "--- reach: ok with curl_share_init (DNS): coalesced, output identical"
fi

if ! grep -aq SFSHIM_SCOPE "$SHIM"; then
	echo "85-php: SKIP cli and fpm: this library has no scope support (SFSHIM_SCOPE): the cross-process work of issue 8 is not merged"
	echo "85-php: ok (reach only)"
	exit 0
fi

# expect NAME PATH N PLAIN OUTS...: one request for PATH, every output equal
# to PLAIN.
expect() {
	local name=$1 path=$2 n=$3 plain=$4 f got
	shift 4
	got=$(requests "$path")
	echo "    origin saw $got request(s) for $n clients"
	[ "$got" -eq 1 ] || fail "$name: origin saw $got requests, expected 1"
	for f in "$@"; do
		cmp -s "$plain" "$f" || { head -3 "$f"; fail "$name: $(basename "$f") differs from the run without the library"; }
	done
}

# ---- cli -------------------------------------------------------------------
path="/bytes/$SIZE?gate=cli"
"$PHP" "$SF_TMP/get.php" "$URL_BASE/bytes/$SIZE?cli=plain" >"$SF_TMP/cli.plain"
pids=()
for i in $(seq 1 $N_CLI); do
	SFSHIM_SCOPE=php-cli SFSHIM_LOG=debug LD_PRELOAD="$SHIM" \
		timeout -s KILL 300 "$PHP" "$SF_TMP/get.php" "$URL_BASE$path" \
		>"$SF_TMP/cli.$i.out" 2>"$SF_TMP/cli.$i.err" &
	pids+=($!)
done
sf_wait_count 1 count_logs "leading flight across processes" "$SF_TMP/cli.*.err" ||
	fail "cli: no leader"
sf_wait_count $((N_CLI - 1)) count_logs "joined flight across processes" "$SF_TMP/cli.*.err" ||
	{ tail -n 3 "$SF_TMP"/cli.*.err; fail "cli: followers did not join"; }
sf_wait_count 1 requests "$path" || fail "cli: the leader's request did not arrive"
sf_open_gate cli
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ "$rc" -eq 0 ] || { tail -n 5 "$SF_TMP"/cli.*.err; fail "cli: a php process failed"; }
echo "--- cli: $N_CLI php processes in one scope"
# The plain run (another query string: the origin's body does not depend
# on it) is the reference for cli and fpm alike.
expect cli "$path" "$N_CLI" "$SF_TMP/cli.plain" "$SF_TMP"/cli.*.out

# ---- fpm -------------------------------------------------------------------
FPMDIR="$SF_TMP/fpm"
mkdir -p "$FPMDIR"
cat >"$FPMDIR/fpm.conf" <<FPMEOF
[global]
pid = $FPMDIR/fpm.pid
error_log = $FPMDIR/fpm.log
daemonize = no
log_limit = 8192

[pool]
listen = $FPMDIR/fpm.sock
pm = static
pm.max_children = $N_FPM
catch_workers_output = yes
decorate_workers_output = no
clear_env = no
FPMEOF
SFSHIM_SCOPE=php-fpm SFSHIM_LOG=debug LD_PRELOAD="$SHIM" \
	"$FPM" -F -R -y "$FPMDIR/fpm.conf" 2>"$FPMDIR/master.err" &
SF_PIDS+=($!)
sf_wait_count 1 count_logs "ready to handle connections" "$FPMDIR/fpm.log" ||
	{ cat "$FPMDIR/master.err" "$FPMDIR/fpm.log"; fail "fpm did not start"; }
grep -q "dl: .*/curl.so: .* routed through the shim" "$FPMDIR/master.err" ||
	{ cat "$FPMDIR/master.err"; fail "fpm: curl.so was not routed in the master"; }

# fcgi_get OUT QUERY: one FastCGI GET of get.php; the body part of the
# answer (after the CGI headers) goes to OUT.
fcgi_get() {
	env -i SCRIPT_FILENAME="$SF_TMP/get.php" SCRIPT_NAME=/get.php \
		REQUEST_METHOD=GET QUERY_STRING="$2" \
		timeout -s KILL 300 "$CGI_FCGI" -bind -connect "$FPMDIR/fpm.sock" >"$1.raw" || return 1
	sed '1,/^\r\{0,1\}$/d' "$1.raw" >"$1"
}
q="u=$URL_BASE/bytes/$SIZE%3Fgate%3Dfpm"
path="/bytes/$SIZE?gate=fpm"
pids=()
for i in $(seq 1 $N_FPM); do
	fcgi_get "$SF_TMP/fpm.$i.out" "$q" &
	pids+=($!)
done
sf_wait_count 1 count_logs "leading flight across processes" "$FPMDIR/fpm.log" ||
	{ cat "$FPMDIR/fpm.log"; fail "fpm: no leader"; }
sf_wait_count $((N_FPM - 1)) count_logs "joined flight across processes" "$FPMDIR/fpm.log" ||
	{ tail -n 20 "$FPMDIR/fpm.log"; fail "fpm: followers did not join"; }
sf_wait_count 1 requests "$path" || fail "fpm: the leader's request did not arrive"
sf_open_gate fpm
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ "$rc" -eq 0 ] || fail "fpm: a FastCGI request failed"
echo "--- fpm: $N_FPM workers, $N_FPM concurrent FastCGI requests"
expect fpm "$path" "$N_FPM" "$SF_TMP/cli.plain" "$SF_TMP"/fpm.*.out
echo "85-php: ok (curl.so reached despite RTLD_DEEPBIND; $N_CLI php-cli processes and $N_FPM php-fpm workers: 1 request each, identical output)"
