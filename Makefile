# SPDX-License-Identifier: GPL-2.0
#
# vdisk: top-level build.
#
#   make                 module for KDIR (kmod/vdisk.ko) and vdiskctl
#   make modules-all     the module for every supported kernel, in build/<kver>/
#   make check           install deps, build, unit tests, VM suite on each kernel
#   make demo            install deps, build, walk-through in a VM
#   make install         see Documentation/admin-guide.rst (DESTDIR, PREFIX)
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
	unit install uninstall help print-kernels

all: module tools

module:
	@test -n "$(KDIR)" -a -d "$(KDIR)" || { echo "No kernel build tree; install linux-headers or pass KDIR=" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(TOP) W=1 modules

tools:
	$(MAKE) -C $(TOP)/tools/vdiskctl

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

# libFuzzer over whole qcow2 images (FUZZ_SECONDS, default 600).
fuzz:
	$(MAKE) -C $(TOP)/tools/qcow2 fuzz

print-kernels:
	@echo $(KERNELS)

# Userspace tests; grows with the qcow2 format core.
unit:
	@$(TOP)/tools/testing/run-unit

help:
	@sed -n '3,12p' $(TOP)/Makefile | sed 's/^# \{0,1\}//'

clean:
	-$(MAKE) -C $(KDIR) M=$(TOP) clean 2>/dev/null
	-$(MAKE) -C $(TOP)/tools/vdiskctl clean
	rm -rf $(BUILD)
