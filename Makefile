# sfshim - see README.md.  `make` builds build/libsfshim.so, `make check`
# runs every test, `make check-all` adds the ASan+UBSan and TSan runs, the
# man page lint and the Debian package test.

# The one version source: the library (-DSF_VERSION), the installed
# launcher and the man pages take it from here; debian/changelog must match
# (make check-version, run by lint-man and deb).
VERSION := 0.1.0
# The library's soname: a package installs it under this name, so that
# LD_PRELOAD=libsfshim.so.0 works without a path.
SONAME := libsfshim.so.0

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
# The installed library's file name (debian/rules installs it as $(SONAME)).
LIBFILE ?= libsfshim.so
# What a package build adds to the library's flags (debian/rules passes
# dpkg-buildflags: hardening, file prefix maps).
PKG_CFLAGS ?=
PKG_LDFLAGS ?=

CC ?= cc
# Only what must be root (installing packages, namespaces) is elevated.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# SAN= (none), asan (AddressSanitizer + UBSan) or tsan (ThreadSanitizer);
# each variant builds into its own directory.
SAN ?=
ifeq ($(SAN),asan)
  B ?= build/asan
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  SAN_RUNTIME := $(shell $(CC) -print-file-name=libasan.so) $(shell $(CC) -print-file-name=libubsan.so)
  # GCC 12's ASan trips its own CHECK in __asan_handle_no_return when a
  # thread is cancelled out of instrumented frames (stale stack poison, see
  # google/sanitizers#1010); fake stacks keep locals off the real stack.
  SAN_ENV := ASAN_OPTIONS="detect_stack_use_after_return=1:$${ASAN_OPTIONS:-}"
else ifeq ($(SAN),tsan)
  B ?= build/tsan
  SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
  SAN_RUNTIME := $(shell $(CC) -print-file-name=libtsan.so)
else
  B ?= build
  SANFLAGS :=
  SAN_RUNTIME :=
endif

OPT ?= -O2
WARN := -Wall -Wextra -Werror
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
CURL_LIBS := $(shell pkg-config --libs libcurl 2>/dev/null)

BASE_CFLAGS := -std=gnu11 $(WARN) $(OPT) -g -pthread $(SANFLAGS) -D_GNU_SOURCE \
  -DCURL_DISABLE_TYPECHECK -DCURL_DISABLE_DEPRECATION $(CURL_CFLAGS) \
  -DSF_VERSION='"$(VERSION)"'
# -fexceptions: pthread_cleanup_push then unwinds with the cancellation
# (attribute cleanup) instead of setjmp, which sanitizers follow correctly.
SHIM_CFLAGS := $(BASE_CFLAGS) -Ishim -fexceptions -fPIC -fvisibility=hidden $(PKG_CFLAGS)
TEST_CFLAGS := $(BASE_CFLAGS) -Ishim $(CHECK_CFLAGS)

# The layers, as folders: core/ (singleflight, knows nothing of DNS or curl),
# common/ (configuration, log, stats, real symbols: what both hooks use),
# dns/, curl/ and dl/ (the hooks; dl/ reaches the other two's wrappers
# through the dynamic linker only, never by including them).  Arrows point from hooks to core, never back:
# `make check-layers` enforces it.
SHIM_DIRS := core common dns curl dl
SHIM_SRC := $(sort $(foreach d,$(SHIM_DIRS),$(wildcard shim/$(d)/*.c)))
SHIM_OBJ := $(SHIM_SRC:shim/%.c=$(B)/shim/%.o)
SHIM_HDR := $(foreach d,$(SHIM_DIRS),$(wildcard shim/$(d)/*.h))
LIB := $(B)/libsfshim.so

# The singleflight core and its support code, linked into unit tests
# without any preloading.
CORE_SRC := $(wildcard shim/core/*.c) shim/common/sf_config.c shim/common/sf_log.c \
  shim/common/sf_stats.c shim/common/sf_text.c shim/dns/sf_addrinfo.c \
  shim/common/sf_trace.c shim/common/sf_json.c shim/common/sf_scope.c
CORE_OBJ := $(patsubst shim/%.c,$(B)/shim/%.o,$(filter $(SHIM_SRC),$(CORE_SRC)))

UNIT_TESTS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))
# Unit tests of the curl hook: linked with the shim's objects minus its
# exported wrappers (a test's own libcurl calls must reach libcurl).
# test_curl_method drives the real libcurl against the HTTP fixture, so an
# integration script runs it (31-curl-method.sh).  test_handover is the
# hand-over harness over the response owner (sf_curl_response.c).
# test_got drives the GOT patcher on the binding fixture and libcurl (the
# exported dlopen entry is left out, as the exported wrappers are).
CURL_UNIT_TESTS := $(B)/tests/test_curl_method $(B)/tests/test_curl_handle \
  $(B)/tests/test_handover $(B)/tests/test_got $(B)/tests/test_curl_xfile
UNIT_TESTS := $(filter-out $(B)/tests/test_curl_method,$(UNIT_TESTS))
CURL_UNIT_OBJ := $(filter-out $(B)/shim/curl/sf_curl_api.o $(B)/shim/curl/sf_curl_share_api.o \
  $(B)/shim/dns/sf_hook_getaddrinfo.o $(B)/shim/dl/sf_dl_entry.o,$(SHIM_OBJ))
PRELOAD_TESTS := $(patsubst tests/preload/%.c,$(B)/tests/%,$(wildcard tests/preload/test_*.c))
FIXTURES := $(patsubst tests/fixtures/%.c,$(B)/tests/%,$(filter-out tests/fixtures/lib%,$(wildcard tests/fixtures/*.c)))
FIXTURE_LIBS := $(patsubst tests/fixtures/lib%.c,$(B)/tests/lib%.so,$(wildcard tests/fixtures/lib*.c))

.PHONY: all check check-layers check-unit check-integration check-asan check-tsan check-all \
  check-curl8 \
  install uninstall clean bench demo deps version check-version lint-man deb deb-test \
  check-report
.DELETE_ON_ERROR:

all: $(LIB)

$(B)/shim/%.o: shim/%.c $(SHIM_HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(SHIM_CFLAGS) -c $< -o $@

# Only libc (and libdl/libpthread where older glibc keeps them apart):
# never libcurl.  -z defs: nothing may stay unresolved at link time.
$(LIB): $(SHIM_OBJ) shim/sfshim.map
	$(CC) $(SHIM_CFLAGS) $(PKG_LDFLAGS) -shared -Wl,-z,defs \
	  -Wl,--version-script=shim/sfshim.map -Wl,-soname,$(SONAME) \
	  -o $@ $(SHIM_OBJ) -ldl -lpthread

$(B)/tests/test_%: tests/unit/test_%.c $(CORE_OBJ) $(wildcard tests/unit/*.h)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(CORE_OBJ) $(CHECK_LIBS) -ldl

$(CURL_UNIT_TESTS): $(B)/tests/test_%: tests/unit/test_%.c $(CURL_UNIT_OBJ)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(CURL_UNIT_OBJ) $(CHECK_LIBS) $(CURL_LIBS) -ldl

# test_got loads the binding fixture and the plugin: make check-unit runs
# before tests-build, so they are built with it.
$(B)/tests/test_got: | $(B)/tests/libsf_binding_openssl.so $(B)/tests/rpath/libsf_rpath_plugin.so

$(B)/tests/test_%: tests/preload/test_%.c $(wildcard tests/preload/*.h)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(CHECK_LIBS) $(CURL_LIBS) -ldl

$(B)/tests/%: tests/fixtures/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -o $@ $< $(CURL_LIBS) -ldl

$(B)/tests/lib%.so: tests/fixtures/lib%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -fPIC -shared -o $@ $< -ldl

# The binding fixtures model a language binding (pycurl-like): linked with
# one libcurl flavour each, and dlopen()ed RTLD_LOCAL by a client that is
# linked with no libcurl at all.
CURL_GNUTLS_SO := $(firstword $(wildcard /usr/lib/*/libcurl-gnutls.so.4))
FIXTURES := $(filter-out $(B)/tests/sf_dlopen_client,$(FIXTURES))
FIXTURE_LIBS := $(filter-out $(B)/tests/libsf_binding.so,$(FIXTURE_LIBS)) \
  $(B)/tests/sf_dlopen_client $(B)/tests/libsf_binding_openssl.so \
  $(B)/tests/libsf_binding_gnutls.so

$(B)/tests/sf_dlopen_client: tests/fixtures/sf_dlopen_client.c tests/fixtures/sf_binding.h
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -o $@ $< -ldl

$(B)/tests/libsf_binding_openssl.so: tests/fixtures/libsf_binding.c tests/fixtures/sf_binding.h
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -fPIC -shared -fvisibility=hidden -o $@ $< $(CURL_LIBS)

$(B)/tests/libsf_binding_gnutls.so: tests/fixtures/libsf_binding.c tests/fixtures/sf_binding.h
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -fPIC -shared -fvisibility=hidden -o $@ $< $(CURL_GNUTLS_SO)

# The RTLD_DEEPBIND fixtures (84-dl-deepbind.sh): a client that, like
# PHP, is not linked with libcurl; a loader library that finds its plugin
# by bare name through its own RUNPATH ($ORIGIN/rpath), and that plugin.
FIXTURES := $(filter-out $(B)/tests/sf_deepbind_client,$(FIXTURES))
FIXTURE_LIBS := $(filter-out $(B)/tests/libsf_rpath_plugin.so,$(FIXTURE_LIBS)) \
  $(B)/tests/sf_deepbind_client $(B)/tests/rpath/libsf_rpath_plugin.so

$(B)/tests/sf_deepbind_client: tests/fixtures/sf_deepbind_client.c tests/fixtures/sf_binding.h
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -o $@ $< -ldl

$(B)/tests/libsf_rpath_loader.so: tests/fixtures/libsf_rpath_loader.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -fPIC -shared -fvisibility=hidden -o $@ $< -ldl \
	  -Wl,--enable-new-dtags -Wl,-rpath,'$$ORIGIN/rpath'

$(B)/tests/rpath/libsf_rpath_plugin.so: tests/fixtures/libsf_rpath_plugin.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -fPIC -shared -fvisibility=hidden -o $@ $<

# The option table on its own, for the header comparison.
OPT_TABLE_OBJ := $(B)/shim/curl/sf_curl_opts.o $(B)/shim/curl/sf_curl_opts_table.o
$(B)/tests/sf_curl_optdump: tests/fixtures/sf_curl_optdump.c $(OPT_TABLE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -Ishim -o $@ $< $(OPT_TABLE_OBJ)

# The library once more with another shared layout (SF_XLAYOUT=2): the
# scope test shows that two layout versions side by side never share.
XLAYOUT2_LIB := $(B)/xlayout2/libsfshim.so
$(XLAYOUT2_LIB): $(SHIM_SRC) $(SHIM_HDR) shim/sfshim.map
	@mkdir -p $(@D)
	$(CC) $(SHIM_CFLAGS) -DSF_XLAYOUT=2 -shared -Wl,-z,defs \
	  -Wl,--version-script=shim/sfshim.map -Wl,-soname,$(SONAME) \
	  -o $@ $(SHIM_SRC) -ldl -lpthread

tests-build: $(LIB) $(XLAYOUT2_LIB) $(UNIT_TESTS) $(CURL_UNIT_TESTS) $(PRELOAD_TESTS) $(FIXTURES) $(FIXTURE_LIBS)
.PHONY: tests-build

check: check-layers check-unit check-integration

# The core includes only the core; common/ includes no hook; dl/ no other
# hook.
check-layers:
	@bad=$$(grep -HnE '#include "(common|dns|curl|dl)/' shim/core/*.[ch]; \
	  grep -HnE '#include "(dns|curl|dl)/' shim/common/*.[ch]; \
	  grep -HnE '#include "(dns|curl)/' shim/dl/*.[ch]); \
	if [ -n "$$bad" ]; then echo "check-layers: include against the layering:"; \
	  echo "$$bad"; exit 1; fi; echo "check-layers: ok"

check-unit: $(UNIT_TESTS)
	@$(SAN_ENV) B=$(B) tests/run-unit.sh $(UNIT_TESTS)

# Integration tests need root for their private network namespaces; a user
# gets them through sudo, after building as himself.
check-integration: tests-build
	@$(SUDO) env $(SAN_ENV) B=$(B) SAN=$(SAN) SAN_RUNTIME="$(SAN_RUNTIME)" tests/run-integration.sh

check-asan:
	$(MAKE) SAN=asan check

check-tsan:
	$(MAKE) SAN=tsan check

# The curl tests a second time, against libcurl 8.14 from Debian's
# bookworm-backports (fetched into $(B)/curl8 once, never installed; skipped
# with a message when the archive cannot be reached): scripts/curl8.sh.
check-curl8: tests-build $(B)/tests/sf_curl_version
	B=$(B) scripts/curl8.sh check

check-all: check check-asan check-tsan check-curl8 lint-man deb-test check-report

# The HTML report (scripts/sfshim-report) in headless chromium, from a real
# run; SF_SCREENSHOT=FILE.png also saves what the browser drew.
check-report: tests-build
	B=$(B) tests/report/check-report.sh

bench: $(LIB) $(FIXTURES) $(FIXTURE_LIBS)
	B=$(B) scripts/bench.sh
	B=$(B) scripts/bench_curl.sh

# The demo needs a private network namespace: demo.sh gets one as root,
# through an unprivileged user namespace, or through sudo, in that order.
demo: $(LIB) $(B)/tests/sf_dnsd $(B)/tests/sf_httpd
	B=$(B) scripts/demo.sh

# Installs what is missing (apt-get), with sudo only when not root.
deps:
	scripts/install-deps.sh

version:
	@echo $(VERSION)

check-version:
	@v=$$(sed -n '1s/^sfshim (\([^)]*\)).*/\1/p' debian/changelog); \
	if [ "$$v" != "$(VERSION)" ]; then \
	  echo "check-version: debian/changelog says '$$v', Makefile VERSION is $(VERSION)"; \
	  exit 1; fi; echo "check-version: $(VERSION)"

MAN_PAGES := scripts/man/sfshim.1 scripts/man/sfshim.7

# mandoc -Tlint, every level down to style; the only message let through
# is about Xr references to pages this machine has not installed (the
# answer depends on the machine, not on the page).
lint-man: check-version
	@out=$$(mandoc -Tlint $(MAN_PAGES) 2>&1 | \
	  grep -vE 'referenced manual not found|outdated mandoc.db' || true); \
	if [ -n "$$out" ]; then echo "$$out"; echo "lint-man: mandoc -Tlint found problems"; \
	  exit 1; fi; echo "lint-man: ok ($(MAN_PAGES))"

install: $(LIB)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(MANDIR)/man7
	install -m 0644 $(LIB) $(DESTDIR)$(LIBDIR)/$(LIBFILE)
	sed -e 's|^SFSHIM_LIB_DEFAULT=.*|SFSHIM_LIB_DEFAULT="$(LIBDIR)/$(LIBFILE)"|' \
	  -e 's|^SFSHIM_VERSION=.*|SFSHIM_VERSION="$(VERSION)"|' \
	  scripts/sfshim > $(DESTDIR)$(BINDIR)/sfshim
	chmod 0755 $(DESTDIR)$(BINDIR)/sfshim
	install -m 0644 scripts/man/sfshim.1 $(DESTDIR)$(MANDIR)/man1/sfshim.1
	install -m 0644 scripts/man/sfshim.7 $(DESTDIR)$(MANDIR)/man7/sfshim.7

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(LIBFILE) $(DESTDIR)$(BINDIR)/sfshim \
	  $(DESTDIR)$(MANDIR)/man1/sfshim.1 $(DESTDIR)$(MANDIR)/man7/sfshim.7

# The Debian package, built from a copy of the tree in build/deb/ (so the
# working tree stays clean); dpkg-buildpackage writes its results into the
# parent directory, here build/deb/: they are moved to build/.
DEB_ARCH = $(shell dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)
DEB := build/sfshim_$(VERSION)_$(DEB_ARCH).deb

deb: check-version
	rm -rf build/deb && mkdir -p build/deb/src
	tar -c --exclude=./build --exclude=./.git . | tar -x -C build/deb/src
	cd build/deb/src && dpkg-buildpackage -us -uc -b
	mv build/deb/sfshim*_$(VERSION)_* build/
	rm -rf build/deb
	@echo "deb: $(DEB)"

# Builds the package, checks it with lintian (errors fail), installs it,
# runs the installed launcher on a real program, removes it.  Needs root
# for dpkg -i (sudo otherwise).
deb-test: deb $(B)/tests/libsf_fakeres.so
	SUDO="$(SUDO)" B=$(B) scripts/deb-test.sh $(DEB)

clean:
	rm -rf build

# ---- fuzzing (clang's libFuzzer) ------------------------------------------
# `make fuzz` builds every harness of tests/fuzz/ with clang-14, libFuzzer,
# ASan and UBSan, and runs each for FUZZ_SECONDS from its seed corpus
# (tests/fuzz/corpus/<harness>/, committed; what a run finds goes to
# build/fuzz/work/<harness>/, not committed).  A crash leaves its input as
# build/fuzz/crash-* and fails the target.  check-all runs it with the
# default bound.  A new harness: add tests/fuzz/fuzz_NAME.c, its name to
# FUZZ_HARNESSES, the shim sources it needs as FUZZ_SRC_NAME, and seeds.
FUZZ_CC ?= clang-14
FUZZ_SECONDS ?= 20
FUZZ_HARNESSES := config curl_key addrinfo stream
FUZZ_CFLAGS := -std=gnu11 -g -O1 -Wall -Wextra -pthread -D_GNU_SOURCE \
  -DCURL_DISABLE_TYPECHECK -DCURL_DISABLE_DEPRECATION $(CURL_CFLAGS) -Ishim \
  -DSF_VERSION='"$(VERSION)"' -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=all
# What a harness needs beyond its own file: the common and core layers
# whole (they are small, and this keeps up with files added to them).
FUZZ_SRC_common := $(wildcard shim/common/*.c shim/core/*.c)
FUZZ_SRC_config := $(FUZZ_SRC_common)
FUZZ_SRC_addrinfo := shim/dns/sf_addrinfo.c
FUZZ_SRC_stream := shim/core/sf_stream.c
# The key needs the record and the option table, which reach into the rest
# of the curl hook: take the hook's sources whole (its exported wrappers are
# never called in the harness).
FUZZ_SRC_curl_key := $(wildcard shim/curl/*.c shim/common/*.c shim/core/*.c)
FUZZ_BINS := $(FUZZ_HARNESSES:%=build/fuzz/fuzz_%)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

define FUZZ_RULE
build/fuzz/fuzz_$(1): tests/fuzz/fuzz_$(1).c $$(FUZZ_SRC_$(1)) $$(SHIM_HDR) Makefile
	@mkdir -p $$(@D)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -o $$@ $$< $$(FUZZ_SRC_$(1)) -ldl
endef
$(foreach h,$(FUZZ_HARNESSES),$(eval $(call FUZZ_RULE,$(h))))

fuzz: $(FUZZ_BINS)
	@for h in $(FUZZ_HARNESSES); do \
	  mkdir -p build/fuzz/work/$$h || exit 1; \
	  echo "fuzz: $$h for $(FUZZ_SECONDS)s"; \
	  build/fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -timeout=20 \
	    -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/crash-$$h- \
	    build/fuzz/work/$$h tests/fuzz/corpus/$$h \
	    >build/fuzz/$$h.log 2>&1 || \
	    { tail -n 60 build/fuzz/$$h.log; echo "fuzz: $$h FAILED"; exit 1; }; \
	  grep -E '^stat::number_of_executed_units' build/fuzz/$$h.log; \
	done; echo "fuzz: ok"

# ---- soak -----------------------------------------------------------------
# Many threads over many keys, DNS and curl, for SOAK_SECONDS (at most 120);
# RSS and open descriptors must level off.  check-all runs it with 30 s.
SOAK_SECONDS ?= 30
.PHONY: soak
soak: tests-build
	B=$(B) SOAK_SECONDS=$(SOAK_SECONDS) scripts/soak.sh

# ---- lint -----------------------------------------------------------------
# shellcheck over scripts/ and tests/, clang-format over shim/ and tests/
# (`make format` rewrites what is off), clang-tidy over shim/ with the
# checks of .clang-tidy (zero findings).
CLANG_FORMAT ?= clang-format-14
CLANG_TIDY ?= clang-tidy-14
SHELL_SCRIPTS := $(wildcard scripts/*.sh tests/*.sh tests/*/*.sh \
  tests/integration/*.bash) scripts/sfshim .ci/run
FORMAT_EXCLUDE :=
FORMAT_SRC := $(filter-out $(FORMAT_EXCLUDE),$(wildcard shim/*/*.[ch] tests/*/*.[ch]))
TIDY_SRC := $(SHIM_SRC)
# FILE:CHECK pairs: FILE is checked with CHECK off, each with why (none
# today).
TIDY_RELAX :=
TIDY_RELAXED := $(foreach r,$(TIDY_RELAX),$(firstword $(subst :, ,$(r))))

.PHONY: lint shellcheck format-check format tidy
lint: shellcheck format-check tidy

shellcheck:
	shellcheck -x $(SHELL_SCRIPTS)
	@echo "shellcheck: ok"

format-check:
	@$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_SRC) && echo "format-check: ok"

format:
	$(CLANG_FORMAT) -i $(FORMAT_SRC)

# Every finding is an error (WarningsAsErrors in .clang-tidy).
tidy:
	@mkdir -p build; \
	  $(CLANG_TIDY) --quiet $(filter-out $(TIDY_RELAXED),$(TIDY_SRC)) \
	  -- $(filter-out -Werror,$(SHIM_CFLAGS)) >build/tidy.log 2>&1; rc=$$?; \
	  for r in $(TIDY_RELAX); do \
	    $(CLANG_TIDY) --quiet --checks=-$${r#*:} $${r%%:*} -- \
	      $(filter-out -Werror,$(SHIM_CFLAGS)) >>build/tidy.log 2>&1 || rc=1; \
	  done; \
	  grep -v 'warnings\? generated\.$$' build/tidy.log; \
	  [ $$rc = 0 ] && echo "tidy: ok"

# CI runs exactly `make check-all`: lint and a bounded fuzz and soak too.
check-all: lint fuzz soak
