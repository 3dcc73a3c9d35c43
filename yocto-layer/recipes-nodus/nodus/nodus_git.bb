SUMMARY = "nodus appliance daemon for ARMv9 NUMA boards"
DESCRIPTION = "Applies the board profile, loads eBPF components (aya) and \
reports telemetry to the fleet over MQTT."
HOMEPAGE = "https://github.com/nodus-dev/nodus"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=70684b30008d9594f9dd2f11e743e37a"

# The nodus git repository: by default the one this layer lives in; set
# NODUS_GIT_URI (and SRCREV to a commit) to build from a server instead.
NODUS_SRC ?= "${LAYERDIR_nodus}/.."
NODUS_GIT_URI ?= "git://${NODUS_SRC};protocol=file"
NODUS_BRANCH ?= "main"
# The eBPF objects from `make ebpf` (target/ebpf). BPF bytecode is
# architecture-neutral: the firmware build needs neither nightly Rust nor
# bpf-linker, and appliance/build.rs refuses objects built from other sources.
NODUS_EBPF_DIR ?= "${NODUS_SRC}/target/ebpf"

# The committed tree only (never a build directory), at SRCREV.
SRC_URI = "${NODUS_GIT_URI};branch=${NODUS_BRANCH};destsuffix=nodus"
SRCREV ?= "${AUTOREV}"
PV = "0.1.0+git"
S = "${UNPACKDIR}/nodus"

inherit cargo cargo-update-recipe-crates systemd

CARGO_SRC_DIR = "appliance"
# Crate list generated with OE-Core's update_crates logic: `make yocto-crates`.
require nodus-crates.inc

export NODUS_EBPF_DIR

SYSTEMD_SERVICE:${PN} = "nodus.service"

do_install:append() {
    install -D -m 0644 ${S}/appliance/dist/nodus.service ${D}${systemd_system_unitdir}/nodus.service
}
