# nodus: the entry points. Every target runs `setup` first, which is quick
# (well under 10 s) when the machine already has everything.
#
#   make run      build and run nodus in the foreground with the embedded defaults
#                 (and a loopback mosquitto on 1883 for its fleet link, if none answers)
#   make test     fmt, clippy, unit and root integration tests (real kernel, real peers)
#   make test-packaging  yocto-check-layer on the Yocto layer (about 18 min, so not in make test)
#   make bench    benchmarks, printed as ratios (see docs/benchmarks.md)
#   make bench-sched  the layered scheduler's bench alone, on the QEMU board
#   make bench-numa   NUMA locality's bench alone, on the QEMU board
#   make build    release binary at target/release/nodus
#   make ebpf     eBPF objects at target/ebpf (what firmware builds take prebuilt)
#   make aarch64  static aarch64 binary for the boards (docs/aarch64.md)
#   make hil      boot the aarch64 build on the QEMU board and run hil-tests/scenarios
#                 (and, booted with a counting PMU, hil-tests/scenarios-pmu)
#   make cross    aarch64 musl and gnu builds with cross-rs in a local podman image (target/cross)
#   make yocto-crates  regenerate the Yocto recipe's crate list from Cargo.lock
#   make dist     the source release firmware builds download: target/dist/nodus-<v>-src.tar.gz

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

EBPF_DIR := $(CURDIR)/target/ebpf
# The appliance embeds prebuilt objects from here (the firmware path), so the
# make build exercises exactly what Yocto and Buildroot do.
export NODUS_EBPF_DIR := $(EBPF_DIR)

CARGO := cargo
NODUS := target/release/nodus
AARCH64_TARGET := aarch64-unknown-linux-musl
NODUS_AARCH64 := target/$(AARCH64_TARGET)/release/nodus

.PHONY: setup ebpf build aarch64 cross run test test-packaging lint unit hil bench bench-sched bench-numa clean yocto-crates dist

setup:
	@./xtask/setup.sh

ebpf: setup
	@$(CARGO) xtask build-ebpf --out $(EBPF_DIR)

build: ebpf
	$(CARGO) build --release -p nodus --features sched

# libbpf (the scheduler's loader) is compiled by libbpf-sys with Debian's
# musl wrapper for the cross gcc, against a libelf xtask builds for musl and
# the cross toolchain's kernel headers (docs/aarch64.md).
LIBELF_MUSL := $(CURDIR)/target/libelf/$(AARCH64_TARGET)
aarch64: ebpf
	@$(CARGO) xtask build-libelf $(AARCH64_TARGET)
	LIBBPF_SYS_EXTRA_CFLAGS="-I$(LIBELF_MUSL)/include -idirafter $(LIBELF_MUSL)/kernel-include" \
	LIBBPF_SYS_LIBRARY_PATH_aarch64_unknown_linux_musl=$(LIBELF_MUSL) \
	CC_aarch64_unknown_linux_musl=aarch64-linux-musl-gcc \
	CFLAGS_aarch64_unknown_linux_musl=-mno-outline-atomics \
	$(CARGO) build --release --target $(AARCH64_TARGET) -p nodus --features sched
	@file -b $(NODUS_AARCH64)
	@echo "nodus: $(NODUS_AARCH64) is $$(stat -c %s $(NODUS_AARCH64)) bytes ($$(numfmt --to=iec-i --suffix=B $$(stat -c %s $(NODUS_AARCH64))))"

hil: aarch64
	hil-tests/run.sh
	hil-tests/run.sh --pmu --scenarios hil-tests/scenarios-pmu --out target/hil-pmu
	hil-tests/selftest.sh

# cross-rs with podman and an image made here (cross/image.sh; docs/packaging.md).
cross: ebpf
	cross/build.sh

run: build
	@./xtask/local-broker.sh
	@echo "nodus: starting in the foreground with $$(test -f /etc/nodus/nodus.toml && echo /etc/nodus/nodus.toml || echo 'the embedded defaults')."
	@echo "nodus: control socket /run/nodus/control.sock; in another terminal: $(NODUS) status"
	@echo "nodus: live telemetry: $(NODUS) telemetry watch --broker mqtt://127.0.0.1:1883"
	@echo "nodus: stop with Ctrl-C (SIGINT) or SIGTERM."
	$(NODUS) run

lint: ebpf
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path ebpf/programs/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --features nodus/sched -- -D warnings
	$(CARGO) xtask clippy-ebpf

# As root, with every root-only test required to run (not skipped).
unit: ebpf
	NODUS_REQUIRE_ROOT=1 $(CARGO) test --workspace --features nodus/sched

test: lint unit hil

# OE-Core's yocto-check-layer parses and signs every recipe twice: about 18
# minutes on 2 cores, which would take CI from about 27 to about 45 of its
# 60 minutes; everything else about the packaging is in make test.
test-packaging: setup
	yocto-layer/check-layer.sh

bench: build aarch64
	$(CARGO) bench -p nodus --benches
	hil-tests/bench-sched.sh
	hil-tests/bench-numa.sh
	BENCH_WORKER=quiet BENCH_CONDS="kernel nodus" hil-tests/bench-numa.sh 3 60

# The scheduler's bench alone (the QEMU board, about 10 minutes).
bench-sched: aarch64
	hil-tests/bench-sched.sh

# NUMA locality's bench alone (the QEMU board, about 8 minutes, then
# about 5 with a worker that sleeps after writing its memory).
bench-numa: aarch64
	hil-tests/bench-numa.sh
	BENCH_WORKER=quiet BENCH_CONDS="kernel nodus" hil-tests/bench-numa.sh 3 60

# The Yocto recipe's crate list, from the committed Cargo.lock files with
# OE-Core's own update_crates logic (OE_CORE: an OpenEmbedded-Core checkout,
# else unpacked from the release tarball in NODUS_TREES).
NODUS_TREES ?= $(CURDIR)/../shared/trees
OE_CORE ?= $(CURDIR)/target/oe-core/openembedded-core-wrynose
dist: ebpf
	xtask/dist.sh $(EBPF_DIR) $(CURDIR)/target/dist

yocto-crates:
	@test -d $(OE_CORE) || { mkdir -p $(CURDIR)/target/oe-core && tar xf $(NODUS_TREES)/openembedded-core-wrynose-ef022bf82d.tar.xz -C $(CURDIR)/target/oe-core; }
	yocto-layer/update-crates.sh $(OE_CORE)

clean:
	$(CARGO) clean
