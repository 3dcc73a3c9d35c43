SUMMARY = "nodus appliance daemon for ARMv9 NUMA boards"
DESCRIPTION = "Applies the board profile, loads eBPF components (aya) and \
reports telemetry to the fleet over MQTT."
HOMEPAGE = "https://github.com/nodus-dev/nodus"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=70684b30008d9594f9dd2f11e743e37a"

# Point these at your nodus checkout (or use a git SRC_URI with SRCREV).
NODUS_SRC ?= "${LAYERDIR_nodus}/.."
# The eBPF objects from `make ebpf` (target/ebpf). BPF bytecode is
# architecture-neutral: the firmware build needs neither nightly Rust nor
# bpf-linker, and appliance/build.rs refuses objects built from other sources.
NODUS_EBPF_DIR ?= "${NODUS_SRC}/target/ebpf"

SRC_URI = "file://${NODUS_SRC};subdir=nodus"
S = "${UNPACKDIR}/nodus"

inherit cargo cargo-update-recipe-crates systemd

CARGO_SRC_DIR = "appliance"
# Crate list generated with `bitbake -c update_crates nodus`.
require nodus-crates.inc

export NODUS_EBPF_DIR

SYSTEMD_SERVICE:${PN} = "nodus.service"

do_install:append() {
    install -D -m 0644 ${S}/appliance/dist/nodus.service ${D}${systemd_system_unitdir}/nodus.service
}
