#!/usr/bin/env bash
# install-deps.sh - installs what sfshim's build, tests and demo need on
# Debian or Ubuntu, with apt-get.  Installs only what is missing and prints
# nothing when everything is already there.  Needs root (uses sudo if not).
set -euo pipefail

# "a|b": either package will do (Ubuntu 24.04 renamed the gnutls flavour's
# runtime for the 64-bit time_t transition); the first one apt can install
# is chosen.
packages=(
	build-essential     # gcc, make, libc headers; gcc brings the sanitizer runtimes
	pkg-config
	check               # unit test framework
	libcurl4-openssl-dev
	curl
	"libcurl3-gnutls|libcurl3t64-gnutls"
	python3
	python3-pycurl      # a libcurl binding loaded RTLD_LOCAL (gnutls flavour)
	iproute2            # ip
	util-linux          # unshare
	mount               # mount
	mandoc              # make lint-man: mandoc -Tlint on the man pages
	dpkg-dev            # make deb: dpkg-buildpackage
	debhelper           # make deb: dh, debhelper-compat 13
	fakeroot            # make deb as a user: dpkg-buildpackage -rfakeroot
	lintian             # make deb-test: no errors in the package
	"php8.2-cli|php-cli" # a real PHP, which empties environ before it exits
	"php8.2-curl|php-curl" # PHP's curl.so, loaded with RTLD_DEEPBIND (85-php.sh)
	"php8.2-fpm|php-fpm" # a prefork pool of PHP workers (85-php.sh)
	libfcgi-bin         # cgi-fcgi: a FastCGI client to drive php-fpm
	chromium            # make check-report: the HTML report in a real browser
	fonts-dejavu-core   # ...and a font for it to draw text with
	locales             # locale sources: a test builds de_DE (decimal comma)
	clang-14            # make fuzz: libFuzzer harnesses
	libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes for clang-14
	shellcheck          # make lint
	clang-format-14     # make format-check
	clang-tidy-14       # make tidy
)

installed()
{
	local status
	status=$(dpkg-query -W -f='${db:Status-Status}\n' "$1" 2>/dev/null) || return 1
	[[ $'\n'$status$'\n' == *$'\n'installed$'\n'* ]]
}

missing=()
for entry in "${packages[@]}"; do
	found=0
	IFS='|' read -r -a alts <<<"$entry"
	for p in "${alts[@]}"; do
		if installed "$p"; then
			found=1
			break
		fi
	done
	((found)) || missing+=("$entry")
done
((${#missing[@]})) || exit 0

command -v apt-get >/dev/null 2>&1 ||
	{ echo "install-deps: apt-get not found: install ${missing[*]} by hand" >&2; exit 1; }

sudo=()
if ((EUID != 0)); then
	command -v sudo >/dev/null 2>&1 ||
		{ echo "install-deps: run as root (missing: ${missing[*]})" >&2; exit 1; }
	sudo=(sudo)
fi

apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q
	-o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef
	-o Dpkg::Options::=--force-confold)

echo "install-deps: installing ${missing[*]}"
"${apt[@]}" update -qq

# Pick, for each entry, the first alternative that has an install candidate.
want=()
for entry in "${missing[@]}"; do
	IFS='|' read -r -a alts <<<"$entry"
	pick=${alts[0]}
	for p in "${alts[@]}"; do
		policy=$(apt-cache policy "$p" 2>/dev/null) || policy=
		if [[ $policy == *'Candidate: '[!\(]* ]]; then
			pick=$p
			break
		fi
	done
	want+=("$pick")
done

"${apt[@]}" install -y --no-install-recommends "${want[@]}"
