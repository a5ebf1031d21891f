# seqd — plain Makefile. `make` builds ./seqd, `make test` runs the Criterion
# suite (one binary), `make deps` installs the Debian packages it needs.
CC ?= cc
# The one place the version is written: seqd --version, the man page, the
# library's file name and seqd.pc read it; debian/changelog must agree
# (tests/test_install.sh checks).
VERSION := $(shell cat VERSION)
PKGS := libevent libevent_pthreads libxxhash libcrypto
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -DSEQD_BUILD -iquote $(CURDIR) -Wall -Wextra -Werror -O2 -g
ifeq ($(SAN),1)
CFLAGS_BASE += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
BUILD := build-san
else
BUILD := build
endif

# man-db and systemd: tests/test_install.sh checks the man page with
# `man --warnings` and the unit with `systemd-analyze verify`.
DEPS_PKGS := build-essential pkg-config libevent-dev libxxhash-dev libcriterion-dev libssl-dev iproute2 \
  python3-prometheus-client \
  man-db systemd
HAVE_PKGS := $(shell pkg-config --exists $(PKGS) criterion 2>/dev/null && echo yes)

CFLAGS += $(CFLAGS_BASE) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcrypto's headers only: net/auth.c loads the library with dlopen when
# `serve` or `init` first needs it, so `seqd fetch` never pays its load
# (measured: it doubled the process time of a short command).
LIBS := $(shell pkg-config --libs $(filter-out libcrypto,$(PKGS)) 2>/dev/null) -lpthread -lm -ldl
LIBCRYPTO_SONAME := libcrypto.so.$(shell pkg-config --modversion libcrypto 2>/dev/null | cut -d. -f1)
CFLAGS += -DSEQD_LIBCRYPTO_SONAME='"$(LIBCRYPTO_SONAME)"'
TEST_LIBS := $(shell pkg-config --libs criterion 2>/dev/null)

LIB_SRC := $(wildcard client/*.c core/*.c net/*.c quorum/*.c storage/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard bench/*.c)
BIN := seqd$(if $(filter 1,$(SAN)),-san,)
TEST_BIN := $(BUILD)/seqd_tests

.PHONY: all test deps check-deps bench-log demo clean

all: check-deps $(BIN)

check-deps:
ifneq ($(HAVE_PKGS),yes)
	@for p in libevent:libevent-dev libevent_pthreads:libevent-dev libxxhash:libxxhash-dev criterion:libcriterion-dev libcrypto:libssl-dev; do \
	  pkg-config --exists $${p%%:*} 2>/dev/null || { echo "missing library $${p%%:*}: run 'make deps' (installs Debian package $${p##*:})" >&2; exit 1; }; done
endif

deps:
	@if pkg-config --exists $(PKGS) criterion 2>/dev/null && command -v cc >/dev/null && \
	  command -v man >/dev/null && command -v systemd-analyze >/dev/null && /usr/bin/python3 -c "import prometheus_client" 2>/dev/null; then \
	  echo "deps: all present"; else \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEPS_PKGS); fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/seqd.o: CFLAGS += -DSEQD_VERSION='"$(VERSION)"'
$(BUILD)/seqd.o: VERSION

$(BIN): $(BUILD)/seqd.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(TEST_BIN): $(TEST_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(TEST_LIBS)

# The real-process tests find the server binary through SEQD_BIN.
test: check-deps $(BIN) $(TEST_BIN)
	SEQD_BIN=$(CURDIR)/$(BIN) LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp $(TEST_BIN) $(TEST_ARGS)

$(BUILD)/bench/%: bench/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

bench-log: check-deps $(BUILD)/bench/bench_log
	$(BUILD)/bench/bench_log $(BENCH_ARGS)

# The README's first command: set-up, build, a local three-member cluster.
demo: deps
	$(MAKE) all
	scripts/cluster.sh demo

clean:
	rm -rf build build-san seqd seqd-san

# (-type f, and not build/deb: a package's tree has directories such as sysusers.d)
-include $(shell find build build-san -path build/deb -prune -o -name '*.d' -type f -print 2>/dev/null)

# ---- tools: standalone test programs, one per tests/tools/*.c (e.g. faultproxy) ----
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(wildcard tests/tools/*.c))
.PHONY: tools
tools: check-deps $(TOOLS)

$(BUILD)/tools/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS)
# ---- end tools ----

# ---- faults: the fault campaign (tests/test_faults.c, suite faults) ----
# `make faults` runs every scenario in its long form, one at a time, and ends
# with a table of their summary lines (kept in $(BUILD)/faults-summary.txt);
# `make faults FAULTS=partition_one` runs one scenario (FAULTS is a Criterion
# --filter glob on the test name, e.g. FAULTS='partition_*'). The short forms
# run in `make test`, which therefore also needs the fault proxy.
FAULTS ?= *
FAULTS_SUMMARY := $(BUILD)/faults-summary.txt
.PHONY: faults
faults: check-deps $(BIN) $(TEST_BIN) tools
	@rm -f $(FAULTS_SUMMARY)
	@# A private copy: Criterion re-executes the binary for every test, and a
	@# rebuild during the minutes this takes must not swap it mid-run.
	@cp $(TEST_BIN) $(BUILD)/faults_tests
	@start=$$(date +%s); \
	SEQD_BIN=$(CURDIR)/$(BIN) SEQD_FAULTPROXY=$(CURDIR)/$(BUILD)/tools/faultproxy \
	SEQD_FAULTS_FULL=1 SEQD_FAULTS_SUMMARY=$(CURDIR)/$(FAULTS_SUMMARY) \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  $(BUILD)/faults_tests --filter='faults/$(FAULTS)' -j1 $(TEST_ARGS); rc=$$?; \
	scripts/faults_table.sh $(FAULTS_SUMMARY); \
	echo "faults: $$(( $$(date +%s) - start )) s, exit $$rc"; exit $$rc
test: tools
# ---- end faults ----

# ---- bench: rr_seq's matrix on a local cluster, and seqd beside its peers ----
# (bench/bench_cluster.c, bench/peers.sh, bench/peer_driver.c: the etcd and
# replicated-Redis load). `make bench BENCH_ARGS="--seconds 2"`;
# `make bench-peers PEERS_RUNS=1 PEERS_SECONDS=3` for a quick look.
.PHONY: bench bench-peers deps-peers
PEERS_PKGS := redis-server postgresql etcd-server etcd-client
BENCH_CLUSTER := $(BUILD)/bench/bench_cluster
PEER_DRIVER := $(BUILD)/bench/peer_driver

bench: check-deps $(BIN) $(BENCH_CLUSTER) $(PEER_DRIVER)
	$(BENCH_CLUSTER) --seqd ./$(BIN) --dir $(BUILD)/bench-data $(BENCH_ARGS)
	SEQD_BIN=$(CURDIR)/$(BIN) BENCH_BIN=$(CURDIR)/$(BENCH_CLUSTER) PEER_DRIVER=$(CURDIR)/$(PEER_DRIVER) \
	  BENCH_DIR=$(CURDIR)/$(BUILD)/bench-data bash bench/http.sh

bench-peers: check-deps $(BIN) $(BENCH_CLUSTER) $(PEER_DRIVER)
	SEQD_BIN=$(CURDIR)/$(BIN) BENCH_BIN=$(CURDIR)/$(BENCH_CLUSTER) PEER_DRIVER=$(CURDIR)/$(PEER_DRIVER) \
	  BENCH_DIR=$(CURDIR)/$(BUILD)/bench-data bash bench/peers.sh

# Issue 13's scale figures (bench/bench_scale.c): 1M and 10M sequences,
# 1,000 and 10,000 connections, on three fresh --fsync always members.
# SCALE_SEQUENCES / SCALE_CONNECTIONS choose the sizes ("0" skips a part):
# `make bench-scale SCALE_SEQUENCES=100000 SCALE_CONNECTIONS=1000` for a
# quick look. The 10M case takes many minutes and ~6 GiB of disk.
.PHONY: bench-scale
BENCH_SCALE := $(BUILD)/bench/bench_scale
bench-scale: check-deps $(BIN) $(BENCH_SCALE)
	$(if $(SCALE_SEQUENCES),SCALE_SEQUENCES="$(SCALE_SEQUENCES)") $(if $(SCALE_CONNECTIONS),SCALE_CONNECTIONS="$(SCALE_CONNECTIONS)") \
	  $(BENCH_SCALE) --seqd ./$(BIN) --dir $(BUILD)/bench-data/scale

# Redis, PostgreSQL and etcd from Debian packages (redis-benchmark, pgbench
# and etcdctl come with them); nothing is installed when they are present.
# The packages do not start their own services here (no init system); if a
# host's policy does, those listen on the default ports, not the bench's.
deps-peers:
	@if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v pgbench >/dev/null && \
	  command -v etcd >/dev/null && command -v etcdctl >/dev/null; then \
	  echo "deps-peers: all present"; else \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(PEERS_PKGS); fi
# ---- end bench ----

# ---- fuzz: libFuzzer targets (tests/fuzz/*.c), clang + ASan + UBSan ----
# `make fuzz` runs each target for FUZZ_SECONDS (default 600) and prints, per
# target, libFuzzer's final stats (execs) and its last cov:/ft:/corp: line;
# `make fuzz FUZZ_SECONDS=30` is the CI form, `make -j2 fuzz` runs the
# targets side by side. Seeds: tests/fuzz/corpus/<target>/ (read only; made
# by `make fuzz-corpus`); what a run finds goes to build-fuzz/corpus/<target>/.
# A crash leaves its input in build-fuzz/crashes/ and fails the run. Found
# product bugs: minimal reproducers in tests/fuzz/crashes-found/.
# fuzz_auth: the MSG_AUTH exchange and the frame MAC (net/auth.c, net/mac.c),
# libcrypto opened with dlopen as in seqd (its headers only at build time).
.PHONY: fuzz fuzz-build fuzz-corpus deps-fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 600
FUZZ_BUILD := build-fuzz
FUZZ_TARGETS := frame log auth
FUZZ_PKGS := libevent libxxhash
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -DSEQD_BUILD -iquote $(CURDIR) -Wall -Wextra -g -O1 -fno-omit-frame-pointer \
  -fno-sanitize-recover=all $(shell pkg-config --cflags $(FUZZ_PKGS) libcrypto 2>/dev/null) \
  -DSEQD_LIBCRYPTO_SONAME='"$(LIBCRYPTO_SONAME)"'
FUZZ_LIBS := $(shell pkg-config --libs $(FUZZ_PKGS) 2>/dev/null) -lpthread -ldl
FUZZ_SRC_frame := net/frame.c
FUZZ_SRC_log := storage/log.c storage/table.c storage/map.c
FUZZ_SRC_auth := net/auth.c net/mac.c net/frame.c
FUZZ_MAXLEN_frame := 16384
FUZZ_MAXLEN_log := 8192
FUZZ_MAXLEN_auth := 4096
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

fuzz-build: $(FUZZ_BINS)

# Extra prerequisites per target (no .SECONDEXPANSION: it would change the
# meaning of $$ in every section after this one).
FUZZ_HDRS := $(wildcard net/*.h storage/*.h proto.h)
$(FUZZ_BUILD)/fuzz_frame: $(FUZZ_SRC_frame) $(FUZZ_HDRS)
$(FUZZ_BUILD)/fuzz_log: $(FUZZ_SRC_log) $(FUZZ_HDRS)
$(FUZZ_BUILD)/fuzz_auth: $(FUZZ_SRC_auth) $(FUZZ_HDRS)
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_SRC_$*) $(FUZZ_LIBS)

$(FUZZ_BUILD)/gen_corpus: tests/fuzz/gen_corpus.c net/frame.c storage/log.c storage/table.c storage/map.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

# Rewrites the seed corpora from the encoder and the log itself.
fuzz-corpus: $(FUZZ_BUILD)/gen_corpus
	rm -rf tests/fuzz/corpus/frame tests/fuzz/corpus/log tests/fuzz/corpus/auth
	mkdir -p tests/fuzz/corpus/frame tests/fuzz/corpus/log tests/fuzz/corpus/auth
	$(FUZZ_BUILD)/gen_corpus tests/fuzz/corpus

# One run per target; its whole output is kept in build-fuzz/<target>.log.
fuzz-run-%: $(FUZZ_BUILD)/fuzz_%
	@mkdir -p $(FUZZ_BUILD)/corpus/$* $(FUZZ_BUILD)/crashes
	@echo "fuzz $*: $(FUZZ_SECONDS) s (log: $(FUZZ_BUILD)/$*.log)"
	@$(FUZZ_BUILD)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  -max_len=$(FUZZ_MAXLEN_$*) -artifact_prefix=$(FUZZ_BUILD)/crashes/$*- \
	  $(FUZZ_BUILD)/corpus/$* tests/fuzz/corpus/$* >$(FUZZ_BUILD)/$*.log 2>&1; \
	rc=$$?; echo $$rc >$(FUZZ_BUILD)/$*.rc; \
	[ $$rc = 0 ] || { echo "fuzz $*: FAILED (exit $$rc), last lines of $(FUZZ_BUILD)/$*.log:"; tail -n 40 $(FUZZ_BUILD)/$*.log; }

fuzz: $(FUZZ_TARGETS:%=fuzz-run-%)
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  log=$(FUZZ_BUILD)/$$t.log; rc=$$(cat $(FUZZ_BUILD)/$$t.rc 2>/dev/null || echo 1); \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -n 1); \
	  last=$$(grep -E '^#[0-9]+.*cov: ' $$log | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [^ ]+'); \
	  crashes=$$(ls $(FUZZ_BUILD)/crashes 2>/dev/null | grep -c "^$$t-" || true); \
	  echo "fuzz $$t: execs $${execs:-?} $${last:-cov: ?} crashes $$crashes exit $$rc"; \
	  [ "$$rc" = 0 ] && [ "$$crashes" = 0 ] || fail=1; done; \
	  exit $$fail

# clang and Debian's libFuzzer runtime; nothing is installed when present.
deps-fuzz:
	@if command -v $(FUZZ_CC) >/dev/null && echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; (void)n; return 0; }' | \
	  $(FUZZ_CC) -x c -fsanitize=fuzzer,address -o /dev/null - 2>/dev/null; then \
	  echo "deps-fuzz: all present"; else \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clang && \
	  v=$$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libfuzzer-$$v-dev libclang-rt-$$v-dev 2>/dev/null || \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libfuzzer-$$v-dev; fi
# ---- end fuzz ----

# ---- install: the client library, the man page, make install / uninstall ----
# `make install [PREFIX=/usr/local] [DESTDIR=...]` installs bin/seqd, the
# client library (lib/libseqd.so.0 with its soname, libseqd.so, libseqd.a,
# include/seqd/*.h, lib/pkgconfig/seqd.pc), share/man/man1/seqd.1, the
# systemd unit and its sysusers.d entry, and /etc/default/seqd when there
# is none yet. Paths inside installed files name PREFIX, never DESTDIR.
# `make uninstall` with the same variables removes them again (and
# /etc/default/seqd only while it is unchanged). tests/test_install.sh
# checks all of it (`make test-install`, part of `make test`).
.PHONY: lib man install uninstall check-build-deps test-install
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR ?= /etc
INSTALL ?= install

# The library is the client and what it needs (client_admin.h's calls stay
# inside: not in the map); nothing of the member.
LIBSEQD_SRC := client/client.c client/client_async.c client/policy.c client/stream.c client/token.c \
  net/addr.c net/auth.c net/conn.c net/frame.c net/mac.c
LIBSEQD_HDRS := client/client.h client/client_async.h client/stream.h proto.h
LIBSEQD_MAP := client/libseqd.map
LIBSEQD_SOVERSION := 0
LIBSEQD_SONAME := libseqd.so.$(LIBSEQD_SOVERSION)
LIBSEQD_SO := $(BUILD)/libseqd.so.$(VERSION)
LIBSEQD_A := $(BUILD)/libseqd.a
LIBSEQD_PIC := $(LIBSEQD_SRC:%.c=$(BUILD)/pic/%.o)
# libcrypto is not linked: net/auth.c opens it with dlopen, and only an
# authenticated (admin) connection, never a fetch, gets that far.
LIBSEQD_LIBS := $(shell pkg-config --libs libevent 2>/dev/null) -lpthread -ldl
MAN_PAGE := $(BUILD)/seqd.1

all: lib man

check-build-deps:
	@for p in libevent:libevent-dev libevent_pthreads:libevent-dev libxxhash:libxxhash-dev libcrypto:libssl-dev; do \
	  pkg-config --exists $${p%%:*} 2>/dev/null || { echo "missing library $${p%%:*}: run 'make deps' (installs Debian package $${p##*:})" >&2; exit 1; }; done

lib: $(LIBSEQD_SO) $(LIBSEQD_A)
man: $(MAN_PAGE)

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -MMD -MP -c $< -o $@

# Exports only what the map lists (-Wl,--no-undefined: every dependency is
# named here, so the .pc's Requires are complete).
$(LIBSEQD_SO): $(LIBSEQD_PIC) $(LIBSEQD_MAP)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(LIBSEQD_SONAME) -Wl,--version-script=$(LIBSEQD_MAP) \
	  -Wl,--no-undefined -Wl,--as-needed -o $@ $(LIBSEQD_PIC) $(LIBSEQD_LIBS)
	ln -sf $(notdir $@) $(BUILD)/$(LIBSEQD_SONAME)
	ln -sf $(LIBSEQD_SONAME) $(BUILD)/libseqd.so

# One relocatable object whose only globals are the map's, so that a static
# link cannot collide with the library's insides (addr_split, conn_send, ...).
$(BUILD)/libseqd.syms: $(LIBSEQD_MAP)
	sed -n 's/^ *\([a-z_][a-z_0-9]*\);$$/\1/p' $< > $@
$(LIBSEQD_A): $(LIBSEQD_PIC) $(BUILD)/libseqd.syms
	$(LD) -r -o $(BUILD)/libseqd-all.o $(LIBSEQD_PIC)
	objcopy --keep-global-symbols=$(BUILD)/libseqd.syms $(BUILD)/libseqd-all.o
	rm -f $@
	$(AR) rcs $@ $(BUILD)/libseqd-all.o

# seqd(1) from the command table that also prints `--help`.
$(MAN_PAGE): $(BIN)
	./$(BIN) --man > $@.tmp && mv $@.tmp $@

# Text files with the install paths written in (never DESTDIR).
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
  -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|g' \
  -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|g'

install: check-build-deps $(BIN) lib man
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/seqd \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/default
	$(INSTALL) -m 755 $(BIN) $(DESTDIR)$(BINDIR)/seqd
	$(INSTALL) -m 644 $(LIBSEQD_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(LIBSEQD_SO)) $(DESTDIR)$(LIBDIR)/$(LIBSEQD_SONAME)
	ln -sf $(LIBSEQD_SONAME) $(DESTDIR)$(LIBDIR)/libseqd.so
	$(INSTALL) -m 644 $(LIBSEQD_A) $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 644 $(LIBSEQD_HDRS) $(DESTDIR)$(INCLUDEDIR)/seqd/
	$(SUBST) dist/seqd.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/seqd.pc
	$(INSTALL) -m 644 $(MAN_PAGE) $(DESTDIR)$(MANDIR)/man1/seqd.1
	$(SUBST) dist/seqd.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/seqd.service
	$(INSTALL) -m 644 dist/seqd.sysusers $(DESTDIR)$(SYSUSERSDIR)/seqd.conf
	@# The operator's flags: never overwritten.
	[ -e $(DESTDIR)$(SYSCONFDIR)/default/seqd ] || $(INSTALL) -m 644 dist/seqd.default $(DESTDIR)$(SYSCONFDIR)/default/seqd

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/seqd $(DESTDIR)$(LIBDIR)/libseqd.so.$(VERSION) \
	  $(DESTDIR)$(LIBDIR)/$(LIBSEQD_SONAME) $(DESTDIR)$(LIBDIR)/libseqd.so $(DESTDIR)$(LIBDIR)/libseqd.a \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/seqd.pc $(DESTDIR)$(MANDIR)/man1/seqd.1 \
	  $(DESTDIR)$(SYSTEMDUNITDIR)/seqd.service $(DESTDIR)$(SYSUSERSDIR)/seqd.conf
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/seqd/,$(notdir $(LIBSEQD_HDRS)))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/seqd 2>/dev/null
	! cmp -s dist/seqd.default $(DESTDIR)$(SYSCONFDIR)/default/seqd || rm -f $(DESTDIR)$(SYSCONFDIR)/default/seqd
# Not under SAN=1: the sanitizer build's objects would need the sanitizer
# runtime in the test program; what is checked here does not change with it.
test-install: $(BIN) lib man tools
	SEQD_SDNOTIFY_LISTEN=$(CURDIR)/$(BUILD)/tools/sdnotify_listen bash tests/test_install.sh
ifneq ($(SAN),1)
test: test-install
endif
# /metrics through Debian's Prometheus parser (python3-prometheus-client, in
# DEPS_PKGS), against three real members; /usr/bin/python3 is Debian's, whose
# dist-packages hold it (a pyenv python3 on PATH would not see them).
test-metrics: $(BIN)
	SEQD_BIN=$(CURDIR)/$(BIN) /usr/bin/python3 tests/test_metrics.py
test: test-metrics
# The HTTP/JSON API and client tokens (issue 12) against real members, the
# README's Python and Node examples run as written.
test-http-api: $(BIN)
	SEQD_BIN=$(CURDIR)/$(BIN) /usr/bin/python3 tests/test_http_api.py
test: test-http-api
# A member under `prlimit --nofile=64` with far more connections than that
# held open: it neither dies nor spins on accept, and serves again after.
test-nofile: $(BIN)
	SEQD_BIN=$(CURDIR)/$(BIN) /usr/bin/python3 tests/test_nofile.py
test: test-nofile
# ---- end install ----

# ---- deb: the Debian packages (debian/), and lintian on them ----
# `make deb` builds seqd_<version>_<arch>.deb, libseqd0_... and
# libseqd-dev_... in build/deb/ (dpkg-buildpackage on a copy of the tree:
# it writes its output beside the source, and that must not be ..).
# `make deb-check` also runs lintian on them and fails on any error or
# warning (what it still says is overridden, with the reasons, in
# debian/seqd.lintian-overrides).
.PHONY: deb deb-check deps-deb print-libcrypto-soname
DEB_DIR := build/deb
DEB_SRC := $(DEB_DIR)/seqd-$(VERSION)
DEB_ARCH = $(shell dpkg-architecture -qDEB_HOST_ARCH)

deb:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_SRC)
	@# The files git knows (and new ones it does not ignore); a tree without git: all but the builds.
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git ls-files -z -co --exclude-standard | tar -cf - --null -T - --ignore-failed-read; else \
	  tar -cf - --exclude=./.git --exclude='./build*' --exclude=./seqd --exclude=./seqd-san --exclude=./.seqd-cluster .; \
	fi | tar -xf - -C $(DEB_SRC)
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b >../build.log 2>&1 || { tail -n 40 ../build.log; exit 1; }
	@ls $(DEB_DIR)/*.deb

deb-check: deb
	lintian --fail-on error,warning --display-info --info $(DEB_DIR)/seqd_$(VERSION)_$(DEB_ARCH).changes
	@echo "deb-check: lintian found no error, warning or info tag (overridden: debian/seqd.lintian-overrides)"

# The packages on a fresh debootstrap'd machine, booted with systemd-nspawn
# (tests/test_deb_fresh.sh: ~2 min, network; `apt-get install debootstrap
# systemd-container` first). Not in CI.
.PHONY: deb-fresh
deb-fresh: deb
	DEB_DIR=$(CURDIR)/$(DEB_DIR) bash tests/test_deb_fresh.sh

# What dpkg-buildpackage and lintian need; nothing is installed when present.
deps-deb:
	@if command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null && command -v lintian >/dev/null; then \
	  echo "deps-deb: all present"; else \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dpkg-dev debhelper lintian; fi

# debian/rules: the package that holds this soname is a dependency of seqd.
print-libcrypto-soname:
	@echo $(LIBCRYPTO_SONAME)
# ---- end deb ----

# ---- tsan: the stream tests under ThreadSanitizer ----
# `make test-tsan` builds the stream suite (tests/test_stream.c and the
# library it drives) with -fsanitize=thread in build-tsan/ and runs it;
# TSAN_TESTS picks tests by a glob on suite/name (e.g. TSAN_TESTS='stream/fast_*').
# TSan cannot share a build with ASan (SAN=1), hence a tree of its own; run
# it without SAN=1. Criterion does not start under TSan (Snaipe/Criterion
# issue 274), so the file is built with -DSEQD_STREAM_NO_CRITERION: its own
# small runner, one child process per test. The real-cluster tests start
# the ordinary ./seqd, uninstrumented: what is checked is the client side.
# A TSan report fails the test (exitcode).
.PHONY: test-tsan clean-tsan
TSAN_BUILD := build-tsan
TSAN_TESTS ?= stream/*
TSAN_CFLAGS := -std=c11 -D_GNU_SOURCE -DSEQD_BUILD -iquote $(CURDIR) -Wall -Wextra -Werror -O1 -g \
  -fsanitize=thread -fno-omit-frame-pointer $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
  -DSEQD_LIBCRYPTO_SONAME='"$(LIBCRYPTO_SONAME)"'
TSAN_OBJ := $(patsubst %.c,$(TSAN_BUILD)/%.o,tests/test_stream.c tests/procs.c tests/history.c $(LIB_SRC))

$(TSAN_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) -MMD -MP -c $< -o $@
$(TSAN_BUILD)/tests/test_stream.o: TSAN_CFLAGS += -DSEQD_STREAM_NO_CRITERION

$(TSAN_BUILD)/stream_tests: $(TSAN_OBJ)
	$(CC) -fsanitize=thread -o $@ $^ $(LIBS)

test-tsan: check-deps seqd $(TSAN_BUILD)/stream_tests
	SEQD_BIN=$(CURDIR)/seqd TSAN_OPTIONS='exitcode=66 second_deadlock_stack=1' \
	  $(TSAN_BUILD)/stream_tests '$(TSAN_TESTS)'

clean-tsan:
	rm -rf $(TSAN_BUILD)
clean: clean-tsan

-include $(shell find $(TSAN_BUILD) -name '*.d' -type f -print 2>/dev/null)
# ---- end tsan ----
