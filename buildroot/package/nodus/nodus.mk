################################################################################
#
# nodus
#
################################################################################

# The source release (`make dist` in the nodus tree): the committed tree
# plus the prebuilt eBPF objects in ebpf/prebuilt. BPF bytecode is the same
# for every architecture, so this package needs neither nightly Rust nor
# bpf-linker nor clang. Before a release is published, point Buildroot at
# the tarball `make dist` wrote, BR2_PRIMARY_SITE="file://<nodus>/target/dist".
# Buildroot checks a cargo package's hash on the tarball after vendoring;
# a release publishes that hash (nodus.hash cannot be committed inside the
# tarball it describes), so before one, builds run without
# BR2_DOWNLOAD_FORCE_CHECK_HASHES (docs/packaging.md).
NODUS_VERSION = 0.1.0
NODUS_SOURCE = nodus-$(NODUS_VERSION)-src.tar.gz
NODUS_SITE = https://github.com/nodus-dev/nodus/releases/download/v$(NODUS_VERSION)
NODUS_LICENSE = Apache-2.0
NODUS_LICENSE_FILES = LICENSE
# The cargo infrastructure vendors every crate at the download step (so
# the build runs offline) and builds this crate of the workspace.
NODUS_SUBDIR = appliance

NODUS_CARGO_ENV = NODUS_EBPF_DIR=$(@D)/ebpf/prebuilt

# The objects must be the ones the release shipped.
define NODUS_CHECK_EBPF_OBJECTS
	cd $(@D)/ebpf/prebuilt && sha256sum --quiet -c SHA256SUMS
endef
NODUS_PRE_BUILD_HOOKS += NODUS_CHECK_EBPF_OBJECTS

# The embedded defaults, every key documented, as the board's config.
define NODUS_INSTALL_CONFIG
	$(INSTALL) -D -m 0644 $(@D)/appliance/src/config/defaults.toml \
		$(TARGET_DIR)/etc/nodus/nodus.toml
endef
NODUS_POST_INSTALL_TARGET_HOOKS += NODUS_INSTALL_CONFIG

define NODUS_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(NODUS_PKGDIR)/S90nodus \
		$(TARGET_DIR)/etc/init.d/S90nodus
endef

define NODUS_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/appliance/dist/nodus.service \
		$(TARGET_DIR)/usr/lib/systemd/system/nodus.service
endef

$(eval $(cargo-package))
