# nodus: the entry points. Every target runs `setup` first, which is quick
# (well under 10 s) when the machine already has everything.
#
#   make run      build and run nodus in the foreground with the embedded defaults
#   make test     fmt, clippy, unit and root integration tests (real kernel, real peers)
#   make bench    benchmarks, printed as ratios (see docs/benchmarks.md)
#   make build    release binary at target/release/nodus
#   make ebpf     eBPF objects at target/ebpf (what firmware builds take prebuilt)

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

EBPF_DIR := $(CURDIR)/target/ebpf
# The appliance embeds prebuilt objects from here (the firmware path), so the
# make build exercises exactly what Yocto and Buildroot do.
export NODUS_EBPF_DIR := $(EBPF_DIR)

CARGO := cargo
NODUS := target/release/nodus

.PHONY: setup ebpf build run test lint unit bench clean

setup:
	@./xtask/setup.sh

ebpf: setup
	@$(CARGO) xtask build-ebpf --out $(EBPF_DIR)

build: ebpf
	$(CARGO) build --release -p nodus

run: build
	@echo "nodus: starting in the foreground with $$(test -f /etc/nodus/nodus.toml && echo /etc/nodus/nodus.toml || echo 'the embedded defaults')."
	@echo "nodus: control socket /run/nodus/control.sock; in another terminal: $(NODUS) status"
	@echo "nodus: stop with Ctrl-C (SIGINT) or SIGTERM."
	$(NODUS) run

lint: ebpf
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path ebpf/programs/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: ebpf
	$(CARGO) test --workspace

test: lint unit

bench: build
	$(CARGO) bench -p nodus --benches

clean:
	$(CARGO) clean
