# sfshim - see README.md.  `make` builds build/libsfshim.so, `make check`
# runs every test, `make check-all` adds the ASan+UBSan and TSan runs.

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
BINDIR ?= $(PREFIX)/bin

CC ?= cc
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
  -DCURL_DISABLE_TYPECHECK -DCURL_DISABLE_DEPRECATION $(CURL_CFLAGS)
# -fexceptions: pthread_cleanup_push then unwinds with the cancellation
# (attribute cleanup) instead of setjmp, which sanitizers follow correctly.
SHIM_CFLAGS := $(BASE_CFLAGS) -Ishim -fexceptions -fPIC -fvisibility=hidden
TEST_CFLAGS := $(BASE_CFLAGS) -Ishim $(CHECK_CFLAGS)

# The layers, as folders: core/ (singleflight, knows nothing of DNS or curl),
# common/ (configuration, log, stats, real symbols: what both hooks use),
# dns/ and curl/ (the hooks).  Arrows point from hooks to core, never back:
# `make check-layers` enforces it.
SHIM_DIRS := core common dns curl
SHIM_SRC := $(sort $(foreach d,$(SHIM_DIRS),$(wildcard shim/$(d)/*.c)))
SHIM_OBJ := $(SHIM_SRC:shim/%.c=$(B)/shim/%.o)
SHIM_HDR := $(foreach d,$(SHIM_DIRS),$(wildcard shim/$(d)/*.h))
LIB := $(B)/libsfshim.so

# The singleflight core and its support code, linked into unit tests
# without any preloading.
CORE_SRC := $(wildcard shim/core/*.c) shim/common/sf_config.c shim/common/sf_log.c \
  shim/common/sf_stats.c shim/dns/sf_addrinfo.c
CORE_OBJ := $(patsubst shim/%.c,$(B)/shim/%.o,$(filter $(SHIM_SRC),$(CORE_SRC)))

UNIT_TESTS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))
PRELOAD_TESTS := $(patsubst tests/preload/%.c,$(B)/tests/%,$(wildcard tests/preload/test_*.c))
FIXTURES := $(patsubst tests/fixtures/%.c,$(B)/tests/%,$(filter-out tests/fixtures/lib%,$(wildcard tests/fixtures/*.c)))
FIXTURE_LIBS := $(patsubst tests/fixtures/lib%.c,$(B)/tests/lib%.so,$(wildcard tests/fixtures/lib*.c))

.PHONY: all check check-layers check-unit check-integration check-asan check-tsan check-all \
  install uninstall clean bench demo
.DELETE_ON_ERROR:

all: $(LIB)

$(B)/shim/%.o: shim/%.c $(SHIM_HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(SHIM_CFLAGS) -c $< -o $@

# Only libc (and libdl/libpthread where older glibc keeps them apart):
# never libcurl.  -z defs: nothing may stay unresolved at link time.
$(LIB): $(SHIM_OBJ) shim/sfshim.map
	$(CC) $(SHIM_CFLAGS) -shared -Wl,-z,defs -Wl,--version-script=shim/sfshim.map \
	  -o $@ $(SHIM_OBJ) -ldl -lpthread

$(B)/tests/test_%: tests/unit/test_%.c $(CORE_OBJ) $(wildcard tests/unit/*.h)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(CORE_OBJ) $(CHECK_LIBS) -ldl

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

tests-build: $(LIB) $(UNIT_TESTS) $(PRELOAD_TESTS) $(FIXTURES) $(FIXTURE_LIBS)
.PHONY: tests-build

check: check-layers check-unit check-integration

# The core includes only the core; common/ includes no hook.
check-layers:
	@bad=$$(grep -HnE '#include "(common|dns|curl)/' shim/core/*.[ch]; \
	  grep -HnE '#include "(dns|curl)/' shim/common/*.[ch]); \
	if [ -n "$$bad" ]; then echo "check-layers: include against the layering:"; \
	  echo "$$bad"; exit 1; fi; echo "check-layers: ok"

check-unit: $(UNIT_TESTS)
	@$(SAN_ENV) B=$(B) tests/run-unit.sh $(UNIT_TESTS)

check-integration: tests-build
	@$(SAN_ENV) B=$(B) SAN=$(SAN) SAN_RUNTIME="$(SAN_RUNTIME)" tests/run-integration.sh

check-asan:
	$(MAKE) SAN=asan check

check-tsan:
	$(MAKE) SAN=tsan check

check-all: check check-asan check-tsan

bench: $(LIB) $(FIXTURES) $(FIXTURE_LIBS)
	B=$(B) scripts/bench.sh
	B=$(B) scripts/bench_curl.sh

demo: $(LIB) $(B)/tests/sf_dnsd
	B=$(B) scripts/demo.sh

install: $(LIB)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR)
	install -m 0755 $(LIB) $(DESTDIR)$(LIBDIR)/libsfshim.so
	sed 's|^SFSHIM_LIB_DEFAULT=.*|SFSHIM_LIB_DEFAULT="$(LIBDIR)/libsfshim.so"|' \
	  scripts/sfshim > $(DESTDIR)$(BINDIR)/sfshim
	chmod 0755 $(DESTDIR)$(BINDIR)/sfshim

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libsfshim.so $(DESTDIR)$(BINDIR)/sfshim

clean:
	rm -rf build
