################################################################################
#
# nodus
#
################################################################################

# Built from the nodus source tree this BR2_EXTERNAL lives in.
NODUS_VERSION = 0.1.0
NODUS_SITE = $(BR2_EXTERNAL_NODUS_PATH)/..
NODUS_SITE_METHOD = local
NODUS_LICENSE = Apache-2.0
NODUS_LICENSE_FILES = LICENSE
NODUS_SUBDIR = appliance

NODUS_EBPF_DIR = $(call qstrip,$(BR2_PACKAGE_NODUS_EBPF_DIR))
NODUS_CARGO_ENV = NODUS_EBPF_DIR=$(NODUS_EBPF_DIR)

# Checked when the package is built, not when the tree is parsed: a
# BR2_EXTERNAL that stops every Buildroot build at parse time (package off
# included) is worse than no package.
define NODUS_CHECK_EBPF_DIR
	@if [ -z "$(NODUS_EBPF_DIR)" ]; then \
		echo "nodus: BR2_PACKAGE_NODUS_EBPF_DIR is empty: run 'make ebpf' in the nodus tree and point it at target/ebpf" >&2; \
		exit 1; \
	fi
endef
NODUS_PRE_BUILD_HOOKS += NODUS_CHECK_EBPF_DIR

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
