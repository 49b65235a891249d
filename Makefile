# SPDX-License-Identifier: GPL-2.0
#
# vdisk: top-level build.
#
#   make                 module for KDIR (kmod/vdisk.ko) and vdiskctl
#   make modules-all     the module for every supported kernel, in build/<kver>/
#   make check           install deps, build, unit tests, VM suite on each kernel
#   make demo            install deps, build, walk-through in a VM
#   make stress          fault injection, stress and netlink fuzz tests, long profile
#   make install         module, vdiskctl, udev rules, systemd units, man pages
#   make dkms-install    the module through DKMS, for every installed kernel
#
# KDIR defaults to the running kernel's build tree, else the newest Debian
# headers under /usr/src.

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))

KVER ?= $(shell uname -r)
KDIR ?= $(or $(wildcard /lib/modules/$(KVER)/build),\
	     $(lastword $(sort $(wildcard /usr/src/linux-headers-*-amd64))))

# Every Debian kernel installed with its headers: the supported set here.
KERNELS ?= $(sort $(foreach v,$(patsubst /boot/vmlinuz-%,%,$(wildcard /boot/vmlinuz-6.*)),\
	     $(if $(wildcard /usr/src/linux-headers-$(v)),$(v))))

BUILD := $(TOP)/build
KMOD_SRCS := $(wildcard $(TOP)/kmod/*.[ch] $(TOP)/kmod/*/*.[ch] $(TOP)/kmod/*/*/*.[ch]) \
	     $(TOP)/kmod/Kbuild $(TOP)/include/uapi/linux/vdisk.h

.PHONY: all module tools modules-all clean check demo deps bench stress fuzz \
	unit install uninstall help print-kernels install-module install-tools \
	uninstall-module uninstall-tools dkms-src dkms-install dkms-uninstall \
	boot-test

all: module tools

module:
	@test -n "$(KDIR)" -a -d "$(KDIR)" || { echo "No kernel build tree; install linux-headers or pass KDIR=" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(TOP) W=1 modules

tools:
	$(MAKE) -C $(TOP)/tools/vdiskctl
	$(MAKE) -C $(TOP)/selftests/vdisk

# One out-of-tree build per kernel, from a symlink copy of the sources, so
# objects of different kernels never mix.
modules-all: $(foreach k,$(KERNELS),$(BUILD)/$(k)/kmod/vdisk.ko)

$(BUILD)/%/kmod/vdisk.ko: $(KMOD_SRCS)
	@mkdir -p $(BUILD)/$*
	@find $(BUILD)/$* -type l -delete
	@cd $(TOP) && for f in Kbuild $(patsubst $(TOP)/%,%,$(KMOD_SRCS)); do \
		case $$f in *.mod.c) continue;; esac; \
		mkdir -p $(BUILD)/$*/$$(dirname $$f); ln -sf $(TOP)/$$f $(BUILD)/$*/$$f; done
	$(MAKE) -C /usr/src/linux-headers-$* M=$(BUILD)/$* W=1 modules 2>&1 | tee $(BUILD)/$*/build.log
	@! grep -E 'warning:|error:' $(BUILD)/$*/build.log || { echo "module build for $* has warnings" >&2; rm -f $@; exit 1; }
	@$(TOP)/tools/testing/make-modindex $* $@ $(BUILD)/$*/modroot

deps:
	@$(TOP)/tools/testing/install-deps

check: deps
	@$(TOP)/tools/testing/run-check

demo: deps
	@$(TOP)/tools/testing/run-demo

# The fault, stress and netlink fuzz tests with the full profile on every
# kernel (Documentation/reliability.rst; VDISK_KERNELS, VDISK_TESTS).
stress: deps
	@$(TOP)/tools/testing/run-stress

# fio matrix vdisk vs loop, the bare file and qemu-nbd in one VM boot, memory
# per device, attach/detach vs losetup (Documentation/performance.rst).
# BENCH_RUNTIME, BENCH_ROUNDS, BENCH_KERNEL, BENCH_QUICK=1: tools/testing/bench.
bench: deps
	@$(TOP)/tools/testing/bench

# libFuzzer over whole qcow2 images (FUZZ_SECONDS, default 600).
fuzz:
	$(MAKE) -C $(TOP)/tools/qcow2 fuzz

print-kernels:
	@echo $(KERNELS)

# Userspace tests; grows with the qcow2 format core.
unit:
	@$(TOP)/tools/testing/run-unit

# Boot Debian's kernels with systemd as init: vdisktab, fstab UUID= mounts
# of file systems in images, clean detach at shutdown.
boot-test:
	@$(TOP)/tools/testing/run-boot-test $(if $(VDISK_KERNELS),$(VDISK_KERNELS),$(KERNELS))

# ---------------------------------------------------------------------------
# Installation (Documentation/admin-guide.rst, "Install").
#
#   make install [DESTDIR=] [PREFIX=/usr/local] [KDIR=|KVER=] [MODULE_KO=]
#
# The module goes to /lib/modules/$(MODULE_KVER)/updates/ (MODULE_KVER: the
# release of KDIR's kernel, UTS_RELEASE), then depmod; with DESTDIR set depmod is left
# to the target system (packagers run it in postinst).  MODULE_KO installs
# a module built elsewhere (e.g. build/<kver>/kmod/vdisk.ko) instead of
# building kmod/vdisk.ko for KDIR.  vdiskctl, the man pages and the bash
# completion go under PREFIX; the udev rules, the systemd unit and the
# generator go where udev and systemd look (pkg-config, else /lib), since
# neither reads /usr/local.  `make uninstall` with the same variables
# removes exactly those files.

VERSION := $(shell cat $(TOP)/VERSION)
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/vdisk
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# Each asked once, and only by the targets that need it.
pkgvar = $(shell pkg-config --variable=$(2) $(1) 2>/dev/null)
once = $(eval $(1) := $(2))$($(1))
UDEVDIR ?= $(call once,UDEVDIR,$(or $(call pkgvar,udev,udevdir),/lib/udev))
SYSTEMDUNITDIR ?= $(call once,SYSTEMDUNITDIR,$(or $(call pkgvar,systemd,systemdsystemunitdir),/lib/systemd/system))
SYSTEMDGENERATORDIR ?= $(call once,SYSTEMDGENERATORDIR,$(or $(call pkgvar,systemd,systemdsystemgeneratordir),/lib/systemd/system-generators))
# The release the module is built for is UTS_RELEASE (Debian's 6.1 headers
# say 6.1.192 in kernel.release but 6.1.0-N-amd64 there and in vermagic).
MODULE_KVER ?= $(call once,MODULE_KVER,$(or $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"/\1/p' \
	$(KDIR)/include/generated/utsrelease.h 2>/dev/null),$(KVER)))
MODULE_DIR ?= /lib/modules/$(MODULE_KVER)/updates
ifeq ($(origin MODULE_KO),undefined)
MODULE_KO := $(TOP)/kmod/vdisk.ko
MODULE_KO_DEP := module
endif

INSTALLED_TOOLS = $(SBINDIR)/vdiskctl $(UDEVDIR)/rules.d/60-vdisk.rules \
	$(SYSTEMDUNITDIR)/vdisk@.service $(SYSTEMDGENERATORDIR)/vdisk-generator \
	$(MANDIR)/man8/vdiskctl.8 $(MANDIR)/man5/vdisktab.5 \
	$(BASHCOMPDIR)/vdiskctl $(DOCDIR)/vdisktab.example

install: install-module install-tools

install-module: $(MODULE_KO_DEP)
	@test -n "$(MODULE_KVER)" || { echo "install: no kernel release; pass KDIR= or KVER=" >&2; exit 1; }
	install -D -m 644 $(MODULE_KO) $(DESTDIR)$(MODULE_DIR)/vdisk.ko
ifeq ($(DESTDIR),)
	depmod -a $(MODULE_KVER)
else
	@echo "DESTDIR is set: run 'depmod -a $(MODULE_KVER)' on the target system"
endif

install-tools: tools
	install -D -m 755 $(TOP)/tools/vdiskctl/vdiskctl $(DESTDIR)$(SBINDIR)/vdiskctl
	install -D -m 644 $(TOP)/packaging/udev/60-vdisk.rules $(DESTDIR)$(UDEVDIR)/rules.d/60-vdisk.rules
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSTEMDGENERATORDIR)
	sed 's|@SBINDIR@|$(SBINDIR)|g' $(TOP)/packaging/systemd/vdisk@.service.in \
		>$(DESTDIR)$(SYSTEMDUNITDIR)/vdisk@.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/vdisk@.service
	ln -sfn $(SBINDIR)/vdiskctl $(DESTDIR)$(SYSTEMDGENERATORDIR)/vdisk-generator
	install -D -m 644 $(TOP)/Documentation/man/vdiskctl.8 $(DESTDIR)$(MANDIR)/man8/vdiskctl.8
	install -D -m 644 $(TOP)/Documentation/man/vdisktab.5 $(DESTDIR)$(MANDIR)/man5/vdisktab.5
	install -D -m 644 $(TOP)/packaging/bash-completion/vdiskctl $(DESTDIR)$(BASHCOMPDIR)/vdiskctl
	install -D -m 644 $(TOP)/packaging/vdisktab.example $(DESTDIR)$(DOCDIR)/vdisktab.example

uninstall: uninstall-module uninstall-tools

uninstall-module:
	rm -f $(DESTDIR)$(MODULE_DIR)/vdisk.ko
ifeq ($(DESTDIR),)
	if [ -d /lib/modules/$(MODULE_KVER)/kernel ]; then depmod -a $(MODULE_KVER); fi
endif

uninstall-tools:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_TOOLS))
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null

# DKMS: the module sources in /usr/src/vdisk-$(VERSION), then dkms add,
# build and install for DKMS_KERNELS (default: every kernel with headers).
DKMS_SRC = $(DESTDIR)/usr/src/vdisk-$(VERSION)
DKMS_KERNELS ?= $(notdir $(patsubst %/build,%,$(wildcard /lib/modules/*/build)))

dkms-src:
	rm -rf $(DKMS_SRC)
	install -d $(DKMS_SRC)
	cd $(TOP) && cp --parents Kbuild VERSION \
		$$(find kmod include -name Kbuild -o -name '*.[ch]' ! -name '*.mod.c') $(DKMS_SRC)/
	sed 's/^PACKAGE_VERSION=.*/PACKAGE_VERSION="$(VERSION)"/' \
		$(TOP)/packaging/dkms.conf >$(DKMS_SRC)/dkms.conf

dkms-install: dkms-src
	@command -v dkms >/dev/null || { echo "dkms-install: dkms is not installed (apt-get install dkms)" >&2; exit 1; }
	dkms status -m vdisk -v $(VERSION) | grep -q . || dkms add -m vdisk -v $(VERSION)
	set -e; for k in $(DKMS_KERNELS); do \
		dkms build -m vdisk -v $(VERSION) -k $$k; \
		dkms install -m vdisk -v $(VERSION) -k $$k --force; \
	done

dkms-uninstall:
	-dkms remove -m vdisk -v $(VERSION) --all
	rm -rf $(DKMS_SRC)

help:
	@sed -n '3,14p' $(TOP)/Makefile | sed 's/^# \{0,1\}//'

clean:
	-$(MAKE) -C $(KDIR) M=$(TOP) clean 2>/dev/null
	-$(MAKE) -C $(TOP)/tools/vdiskctl clean
	-$(MAKE) -C $(TOP)/selftests/vdisk clean
	rm -rf $(BUILD)
