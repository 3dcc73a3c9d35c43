SUMMARY = "nodus appliance daemon for ARMv9 NUMA boards"
DESCRIPTION = "Applies the board profile, loads eBPF components (aya) and \
               reports telemetry to the fleet over MQTT."
HOMEPAGE = "https://github.com/nodus-dev/nodus"
BUGTRACKER = "https://github.com/nodus-dev/nodus/issues"
SECTION = "admin"
CVE_PRODUCT = "nodus"
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
# nooelint: oelint.vars.mispell.unknown - nodus's own variable, read by its build.rs
NODUS_EBPF_DIR ?= "${NODUS_SRC}/target/ebpf"

# The committed tree only (never a build directory), at SRCREV.
PV = "0.1.0+git"
SRC_URI = "${NODUS_GIT_URI};branch=${NODUS_BRANCH};destsuffix=nodus"
SRC_URI += "file://run-ptest"
# The branch head by default, so the layer builds the tree it lives in; an
# image that must be reproducible sets SRCREV to a commit.
# nooelint: oelint.vars.autorev
SRCREV ?= "${AUTOREV}"
S = "${UNPACKDIR}/nodus"

inherit cargo cargo-update-recipe-crates systemd ptest

# A daemon for the target board: a -native or nativesdk nodus has no use.
BBCLASSEXTEND = ""

CARGO_SRC_DIR = "appliance"
# Crate list generated with OE-Core's update_crates logic: `make yocto-crates`.
require nodus-crates.inc

export NODUS_EBPF_DIR

SYSTEMD_SERVICE:${PN} = "nodus.service"
# The embedded defaults, every key documented, as the board's config; an
# image's own /etc/nodus/nodus.toml survives package upgrades.
CONFFILES:${PN} = "${sysconfdir}/nodus/nodus.toml"

do_install:append() {
    install -D -m 0644 ${S}/appliance/dist/nodus.service ${D}${systemd_system_unitdir}/nodus.service
    install -D -m 0644 ${S}/appliance/src/config/defaults.toml ${D}${sysconfdir}/nodus/nodus.toml
}

# ptest: nodus's own checks on the target (files/run-ptest).
do_install_ptest() {
    install -m 0755 ${UNPACKDIR}/run-ptest ${D}${PTEST_PATH}/run-ptest
}
