#!/usr/bin/env bash
# deb-test.sh - checks the Debian package that `make deb` built: lintian
# finds no error, `dpkg -i` installs it, the installed launcher and library
# (and nothing from the source tree but a test program and the counting
# stand-in resolver) coalesce a herd of lookups, the library is found by its
# soname alone, the man pages are there, and `dpkg -r` removes it all.
#
#   scripts/deb-test.sh build/sfshim_VERSION_ARCH.deb
#
# dpkg needs root: SUDO (from the Makefile: empty as root, else sudo) runs it.
set -euo pipefail

deb=$(readlink -f -- "${1:?usage: deb-test.sh PACKAGE.deb}")
repo=$(dirname -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")")
B=${B:-build}
fake=$repo/$B/tests/libsf_fakeres.so
SUDO=${SUDO-}
N=20

fail() { printf 'deb-test: FAIL: %s\n' "$*"; exit 1; }
say() { printf 'deb-test: %s\n' "$*"; }

[[ -f $deb ]] || fail "no package $deb (make deb)"
[[ -f $fake ]] || fail "no $fake (make tests-build)"
version=$(dpkg-deb -f "$deb" Version)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libpath=/usr/lib/$multiarch/libsfshim.so.0

# lintian: errors fail, warnings are shown.
# (As root, lintian says it would rather not be; that line is dropped.)
lint=$(lintian --fail-on error "$deb" 2>&1) ||
	{ printf '%s\n' "$lint"; fail "lintian reports errors"; }
lint=$(grep -v '^running with root privileges' <<<"$lint" || true)
say "lintian: ${lint:-clean}"

# One package test at a time on this machine (other trees may run theirs):
# they install and remove the same package.
exec 9>>/tmp/sfshim-deb-test.lock
flock 9

# Never replace or remove a package someone installed on purpose.
if dpkg-query -W -f='${db:Status-Status}' sfshim 2>/dev/null | grep -qx installed; then
	fail "package sfshim is already installed here; remove it first (dpkg -r sfshim)"
fi

tmp=$(mktemp -d /tmp/sfshim-deb.XXXXXX)
installed=0
cleanup()
{
	if ((installed)); then
		$SUDO dpkg -r sfshim >/dev/null || say "dpkg -r sfshim failed"
	fi
	rm -rf -- "$tmp"
}
trap cleanup EXIT

$SUDO dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i"; }
installed=1
say "installed $(basename -- "$deb")"

for f in /usr/bin/sfshim "$libpath" /usr/share/man/man1/sfshim.1.gz \
	/usr/share/man/man7/sfshim.7.gz; do
	[[ -e $f ]] || fail "$f is not installed"
done

# From outside the source tree, with a clean environment: the launcher must
# find the installed library by itself.
cd "$tmp"
clean_env=(env -i PATH=/usr/bin:/bin HOME="$tmp" LANG=C)
out=$("${clean_env[@]}" /usr/bin/sfshim --version)
[[ $out == "sfshim $version"$'\n'"library: $libpath (libsfshim $version)" ]] ||
	fail "sfshim --version: $out"
say "sfshim --version: ${out//$'\n'/; }"

# The soname alone is enough for LD_PRELOAD (ldconfig knows the library).
stats=$("${clean_env[@]}" LD_PRELOAD=libsfshim.so.0 SFSHIM_STATS=stderr \
	getent ahosts localhost 2>&1 >/dev/null)
grep -q '^sfshim\[[0-9]*\]: dns: calls=1 leaders=1 ' <<<"$stats" ||
	fail "LD_PRELOAD=libsfshim.so.0: no stats line: $stats"
say "LD_PRELOAD=libsfshim.so.0 loads: $(grep -o 'dns: calls=1 leaders=1' <<<"$stats")"

# A herd: N python threads resolve one name through the installed launcher,
# with the counting stand-in resolver after the shim.  The stand-in holds the
# one real lookup on its gate until the N-1 followers have joined (the shim's
# debug lines), so the outcome does not depend on timing.
cat >"$tmp/herd.py" <<'PY'
import ctypes, os, socket, sys, threading

n = int(sys.argv[1])
fake = ctypes.CDLL(None)
fake.sf_fake_wait_parked.restype = ctypes.c_uint
fake.sf_fake_wait_parked.argtypes = [ctypes.c_uint, ctypes.c_uint]
fake.sf_fake_calls_for.restype = ctypes.c_ulong
fake.sf_fake_calls_for.argtypes = [ctypes.c_char_p]

# The shim logs to fd 2: read it through a pipe to see followers join.
r, w = os.pipe()
saved = os.dup(2)
os.dup2(w, 2)
os.close(w)
log, joined = [], threading.Semaphore(0)

def reader():
    with os.fdopen(r, "rb") as f:
        for line in f:
            log.append(line.decode(errors="replace"))
            if b"joined flight" in line:
                joined.release()

rt = threading.Thread(target=reader)
rt.start()

answers = [None] * n
def resolve(i):
    infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    answers[i] = tuple(ai[4][0] for ai in infos)

fake.sf_fake_gate_close()
threads = [threading.Thread(target=resolve, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
ok = fake.sf_fake_wait_parked(1, 30000) == 1
ok = ok and all(joined.acquire(timeout=30) for _ in range(n - 1))
fake.sf_fake_gate_open()
for t in threads:
    t.join()
os.dup2(saved, 2)
rt.join()
calls = fake.sf_fake_calls_for(b"localhost")
print("threads=%d answers=%d distinct=%d resolver_calls=%d joined=%s" %
      (n, sum(a is not None for a in answers), len(set(answers)), calls, ok))
if not ok or calls != 1 or len(set(answers)) != 1:
    sys.stderr.write("".join(log[-20:]))
    sys.exit(1)
PY
out=$("${clean_env[@]}" LD_PRELOAD="$fake" /usr/bin/sfshim --log=debug \
	--stats="$tmp/stats" -- /usr/bin/python3 "$tmp/herd.py" "$N") ||
	fail "herd under the installed launcher: $out"
[[ $out == "threads=$N answers=$N distinct=1 resolver_calls=1 joined=True" ]] ||
	fail "herd: $out"
grep -q "^sfshim\[[0-9]*\]: libsfshim $version summary" "$tmp/stats" ||
	fail "stats summary without version $version: $(cat "$tmp/stats")"
line=$(grep '^sfshim\[[0-9]*\]: dns: ' "$tmp/stats") || fail "no dns stats line"
[[ $line == *" dns: calls=$N leaders=1 followers=$((N - 1)) "* ]] ||
	fail "stats: $line"
say "herd: $out"
say "stats: $line"

$SUDO dpkg -r sfshim >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -r"; }
installed=0
for f in /usr/bin/sfshim "$libpath" /usr/share/man/man1/sfshim.1.gz; do
	[[ ! -e $f ]] || fail "$f is still there after dpkg -r"
done
say "removed; ok"
