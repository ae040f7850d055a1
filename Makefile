# EphemeralML in C: one plain GNU make file, no generated build system.
#
# Conventions (adding a file never needs an edit here):
#   lib/*.c                    -> libeml.a (every program and test links it)
#   <program dir>/*.c          -> one binary per directory (see PROGRAMS)
#   tests/unit/test-*.c        -> one cmocka binary each, run by `make check`
#   tests/integration/*.test   -> one bash script each, run by `make check`
#   tests/fuzz/fuzz-*.c        -> one libFuzzer target each (`make fuzz`; smoke run in check)
#   tests/bench/bench-*.c      -> one benchmark each (`make bench`)
#
# Trees: build/release (normal flags, `make all`), build/asan (ASan+UBSan, `make check`),
# build/fuzz (clang, libFuzzer).

SHELL := /bin/bash
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.SECONDARY:

VERSION := 0.1.0
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
CATALOGDIR ?= $(PREFIX)/lib/systemd/catalog
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d

CC ?= cc
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 2

# pkg-config modules every build needs; tools/bootstrap.sh maps each to its Debian package.
PKGS := libsystemd openssl libcurl libcbor json-c libutf8proc yaml-0.1 hogweed nettle gmp libmicrohttpd
TEST_PKGS := cmocka

# Evaluated at first use in a recipe, once (not when the Makefile is read): on a fresh machine pkg-config and the
# -dev packages only exist after the deps target has run tools/bootstrap.sh. The rule templates below say $$(...)
# for the same reason.
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null))$(PKG_LIBS)
TEST_CFLAGS = $(eval TEST_CFLAGS := $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null))$(TEST_CFLAGS)
TEST_LIBS = $(eval TEST_LIBS := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null))$(TEST_LIBS)

WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2 -Wmissing-prototypes
BASE_CFLAGS := -std=gnu11 -g -pthread $(WARN) -Ilib -D_GNU_SOURCE -DEML_VERSION=\"$(VERSION)\"
RELEASE_CFLAGS := -O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong
ASAN_CFLAGS := -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -DEML_ASAN=1
FUZZ_CFLAGS := -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -DEML_FUZZ=1
EXTRA_LIBS := -lm -lpthread

# binary name : source directory
PROGRAMS := \
	eml:tools/eml \
	eml-nsm-sim:tools/dev/nsm-sim \
	eml-kms-local:tools/dev/kms-local \
	eml-blind-relay:daemons/blind-relay \
	eml-kms-relay:daemons/kms-relay \
	eml-vsock-proxy:daemons/vsock-proxy \
	eml-init:enclave-image/init \
	eml-inferenced:enclave-image/inferenced

LIB_SRCS := $(sort $(wildcard lib/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/test-*.c))
UNIT_HELPERS := $(filter-out tests/unit/test-%,$(sort $(wildcard tests/unit/*.c)))
# Helper programs of the integration tests and benchmarks (tests/integration/NAME.c -> build/TREE/testbin/NAME).
TESTBIN_SRCS := $(sort $(wildcard tests/integration/*.c))
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz-*.c))
BENCH_SRCS := $(sort $(wildcard tests/bench/bench-*.c))
INTEGRATION_TESTS := $(sort $(wildcard tests/integration/*.test))
MAN_PAGES := $(sort $(wildcard man/*.[1-8]))

prog_name = $(word 1,$(subst :, ,$(1)))
prog_dir = $(word 2,$(subst :, ,$(1)))
# Programs whose directory has no source yet are simply not built.
BUILT_PROGRAMS := $(foreach p,$(PROGRAMS),$(if $(wildcard $(call prog_dir,$(p))/*.c),$(p)))

# Quiet rules unless V=1.
Q := $(if $(V),,@)
E := $(if $(V),@true,@printf '  %-6s %s\n')

# $(1) = tree name, $(2) = cflags, $(3) = ldflags, $(4) = compiler
define TREE
build/$(1)/%.o: %.c | deps
	@mkdir -p $$(@D)
	$(E) CC.$(1) $$<
	$(Q)$(4) $(BASE_CFLAGS) $(2) $$(PKG_CFLAGS) $$(TEST_CFLAGS) -MMD -MP -c $$< -o $$@

build/$(1)/libeml.a: $(patsubst %.c,build/$(1)/%.o,$(LIB_SRCS))
	@rm -f $$@
	$(E) AR $$@
	$(Q)ar rcs $$@ $$^

$(foreach p,$(BUILT_PROGRAMS),$(eval $(call PROGRAM,$(1),$(call prog_name,$(p)),$(call prog_dir,$(p)),$(2) $(3),$(4))))

build/$(1)/tests/%: build/$(1)/tests/unit/%.o $(patsubst %.c,build/$(1)/%.o,$(UNIT_HELPERS)) build/$(1)/libeml.a
	@mkdir -p $$(@D)
	$(E) LD $$@
	$(Q)$(4) $(2) $(3) -o $$@ $$^ $$(PKG_LIBS) $$(TEST_LIBS) $(EXTRA_LIBS)

build/$(1)/testbin/%: build/$(1)/tests/integration/%.o build/$(1)/libeml.a
	@mkdir -p $$(@D)
	$(E) LD $$@
	$(Q)$(4) $(2) $(3) -o $$@ $$^ $$(PKG_LIBS) $(EXTRA_LIBS)

build/$(1)/bench/%: build/$(1)/tests/bench/%.o build/$(1)/libeml.a
	@mkdir -p $$(@D)
	$(E) LD $$@
	$(Q)$(4) $(2) $(3) -o $$@ $$^ $$(PKG_LIBS) $(EXTRA_LIBS)

-include $(shell find build/$(1) -name '*.d' 2>/dev/null)
endef

# $(1) = tree, $(2) = binary, $(3) = dir, $(4) = flags, $(5) = compiler
define PROGRAM
build/$(1)/bin/$(2): $(patsubst %.c,build/$(1)/%.o,$(sort $(wildcard $(3)/*.c))) build/$(1)/libeml.a
	@mkdir -p $$(@D)
	$(E) LD $$@
	$(Q)$(5) $(4) -o $$@ $$^ $$(PKG_LIBS) $(EXTRA_LIBS)
build/$(1)/programs: build/$(1)/bin/$(2)
endef

$(eval $(call TREE,release,$(RELEASE_CFLAGS),,$(CC)))
$(eval $(call TREE,asan,$(ASAN_CFLAGS),,$(CC)))
$(eval $(call TREE,fuzz,$(FUZZ_CFLAGS),,$(FUZZ_CC)))

build/%/programs:
	@true
.PHONY: build/release/programs build/asan/programs

RELEASE_BINS := $(foreach p,$(BUILT_PROGRAMS),build/release/bin/$(call prog_name,$(p)))
ASAN_BINS := $(foreach p,$(BUILT_PROGRAMS),build/asan/bin/$(call prog_name,$(p)))
ASAN_TESTS := $(patsubst tests/unit/%.c,build/asan/tests/%,$(UNIT_SRCS))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/fuzzers/%,$(FUZZ_SRCS))
BENCH_BINS := $(patsubst tests/bench/%.c,build/release/bench/%,$(BENCH_SRCS))
ASAN_TESTBINS := $(patsubst tests/integration/%.c,build/asan/testbin/%,$(TESTBIN_SRCS))
RELEASE_TESTBINS := $(patsubst tests/integration/%.c,build/release/testbin/%,$(TESTBIN_SRCS))

build/fuzz/fuzzers/%: build/fuzz/tests/fuzz/%.o build/fuzz/libeml.a
	@mkdir -p $(@D)
	$(E) LD $@
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS) $(EXTRA_LIBS)

.PHONY: all deps check check-unit check-integration check-fuzz-smoke fuzz bench demo load install clean \
	release-bins asan-bins oracle bench-peers

all: $(RELEASE_BINS)

# Installs missing Debian packages (as root) or says which command to run.
deps:
	@tools/bootstrap.sh

export EML_SRCDIR := $(CURDIR)
export EML_TALLY := $(CURDIR)/build/check-tally

# Each runner appends "NAME passed failed" to build/check-tally; the last line of `make check` sums them.
check: deps
	@mkdir -p build && rm -f build/check-tally
	@rc=0; $(MAKE) --no-print-directory -k check-unit check-integration check-fuzz-smoke vm-test || rc=1; \
	 awk '{p+=$$2; f+=$$3} END {printf "check: %d passed, %d failed\n", p, f}' build/check-tally; exit $$rc

check-unit: $(ASAN_TESTS)
	@tests/run-unit.sh $(ASAN_TESTS)

check-integration: $(ASAN_BINS) $(ASAN_TESTBINS) build/release/bin/eml
	@EML_BUILD=$(CURDIR)/build/asan tests/run-integration.sh $(INTEGRATION_TESTS)

# Only the test of the daemons against a private systemd-journald (root: unshare -m); check runs it too.
.PHONY: check-journal
check-journal: $(ASAN_BINS) $(ASAN_TESTBINS)
	@EML_BUILD=$(CURDIR)/build/asan tests/run-integration.sh tests/integration/journal.test

check-fuzz-smoke: deps-fuzz $(FUZZ_BINS)
	@FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) tests/run-fuzz.sh $(FUZZ_BINS)

fuzz: deps deps-fuzz $(FUZZ_BINS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run-fuzz.sh $(FUZZ_BINS)

.PHONY: deps-fuzz
deps-fuzz:
	@tools/bootstrap.sh fuzz

# Enclave image: the enclave's programs linked statically (libc plus the static libraries they need; Debian has
# no libsystemd.a and enclave code never uses libsystemd), two deterministic cpio ramdisks and the EIF with its
# PCRs, all under build/enclave-image. KERNEL=path/to/bzImage pins the kernel (default: Debian's, fetched once).
# eml-inferenced cannot link statically (Debian 12 ships libcbor and libsystemd without static archives): the
# release binary goes into the application ramdisk with its exact shared-library closure (enclave-image/closure.sh,
# recorded in build/enclave-image/libs.txt).
ENCLAVE_PROGRAMS := eml-init:enclave-image/init
ENCLAVE_BUILT := $(filter $(ENCLAVE_PROGRAMS),$(BUILT_PROGRAMS))
STATIC_LIBS := -lcrypto -lpthread
STATIC_BINS := $(foreach p,$(ENCLAVE_BUILT),build/release/static/$(call prog_name,$(p)))

define STATIC_PROGRAM
build/release/static/$(1): $(patsubst %.c,build/release/%.o,$(sort $(wildcard $(2)/*.c))) build/release/libeml.a
	@mkdir -p $$(@D)
	$(CC) -static -s $(RELEASE_CFLAGS) -o $$@ $$^ $(STATIC_LIBS)
endef
$(foreach p,$(ENCLAVE_BUILT),$(eval $(call STATIC_PROGRAM,$(call prog_name,$(p)),$(call prog_dir,$(p)))))

.PHONY: enclave-image enclave-static vm-test
enclave-static: $(STATIC_BINS)

enclave-image: deps $(STATIC_BINS) build/release/bin/eml build/release/bin/eml-inferenced
	@EML=build/release/bin/eml STATIC_DIR=build/release/static INFERENCED=build/release/bin/eml-inferenced \
		KERNEL="$(KERNEL)" \
		enclave-image/build.sh build/enclave-image

# Rebuilds the image to check it is reproducible, then boots it under qemu (software emulation): eml-init as PID 1,
# the image's eml-inferenced serving a session to the host with a sealed model loaded through the host's KMS relay;
# see tests/vm/image-repro.sh, tests/vm/session-test.sh and tests/vm/vm-test.sh.
vm-test: enclave-image build/release/bin/eml-nsm-sim build/release/bin/eml-kms-local build/release/bin/eml-kms-relay
	@tools/bootstrap.sh vm
	@tests/vm/image-repro.sh build/enclave-image
	@tests/vm/session-test.sh build/enclave-image

bench: deps $(BENCH_BINS) $(RELEASE_BINS) $(RELEASE_TESTBINS)
	@EML_BUILD=$(CURDIR)/build/release tests/run-bench.sh $(BENCH_BINS)

demo: deps $(RELEASE_BINS)
	@EML_BUILD=$(CURDIR)/build/release tools/demo/demo.sh

# 64 clients for 60 s against the whole stack (CLIENTS=, LOAD_SECONDS=); not part of check.
load: deps $(RELEASE_BINS) $(RELEASE_TESTBINS)
	@EML_BUILD=$(CURDIR)/build/release tests/load/load.sh

install: $(RELEASE_BINS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR)
	install -m 0755 build/release/bin/eml $(DESTDIR)$(BINDIR)/
	for b in $(filter-out build/release/bin/eml,$(RELEASE_BINS)); do install -m 0755 $$b $(DESTDIR)$(BINDIR)/; done
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CATALOGDIR)
	for u in $(wildcard units/*.service units/*.socket units/*.target); do install -m 0644 $$u $(DESTDIR)$(UNITDIR)/; done
	install -m 0644 units/eml.catalog $(DESTDIR)$(CATALOGDIR)/eml.catalog
	$(if $(wildcard units/*.tmpfiles),install -d $(DESTDIR)$(TMPFILESDIR) && for f in $(wildcard units/*.tmpfiles); do install -m 0644 $$f $(DESTDIR)$(TMPFILESDIR)/$$(basename $$f .tmpfiles).conf; done)
	$(if $(wildcard units/*.sysusers),install -d $(DESTDIR)$(SYSUSERSDIR) && for f in $(wildcard units/*.sysusers); do install -m 0644 $$f $(DESTDIR)$(SYSUSERSDIR)/$$(basename $$f .sysusers).conf; done)
	for m in $(MAN_PAGES); do s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s; install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done

clean:
	rm -rf build

# The independent PyTorch oracle (Debian's python3-torch; not needed by check): regenerates the committed
# fixture tests/oracle/fixture.json from the deterministic random MiniLM-shaped model.
ORACLE_PYTHON ?= /usr/bin/python3
ORACLE_MODEL := build/oracle/model
$(ORACLE_MODEL)/model.safetensors: build/release/bin/eml
	@mkdir -p $(@D)
	cp tests/vectors/models/all-MiniLM-L6-v2/config.json tests/vectors/models/all-MiniLM-L6-v2/vocab.txt $(@D)/
	build/release/bin/eml model random --config $(@D)/config.json --seed 1 -o $@

oracle: $(ORACLE_MODEL)/model.safetensors
	@tools/bootstrap.sh oracle
	$(ORACLE_PYTHON) tests/oracle/oracle.py --model $(ORACLE_MODEL) --sentences tests/oracle/sentences.json \
		-o tests/oracle/fixture.json

# Our encoder and onnxruntime (npm onnxruntime-node) on the same weights, same shapes, one run. Not in check.
bench-peers: $(ORACLE_MODEL)/model.safetensors
	@tools/bootstrap.sh oracle
	EML_BUILD=$(CURDIR)/build/release ORACLE_PYTHON=$(ORACLE_PYTHON) tests/peers/bench-peers.sh $(ORACLE_MODEL)
