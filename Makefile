# Stratus: build, image, run, test, bench.  `make help` lists the targets.
#
#   make run [ARCH=aarch64]      build everything, boot build/stratus.img in QEMU (serial here)
#   make debug [ARCH=...]        same, QEMU waits for gdb on :1234 (prints the gdb command)
#   make kernels | loader        cargo builds for both architectures
#   make example                 examples/my-kernel (outside the workspace) for both architectures
#   make image [LIMINE_DIR=dir]  build/stratus.img: one GPT image for both architectures
#   make cloud-images            build/cloud/: AWS raw + VMDK, GCP tar.gz, Azure VHD, checked
#   make cloud-commands          print the upload/launch commands for them (runs nothing)
#   make test                    setup, fmt, clippy, host tests, image checks, QEMU tests (both arches)
#   make bench                   boot times, sizes, disk reads beside a Linux guest
#   make fuzz                    long seeded run of every parser's fuzz target (FUZZ_ITERATIONS)
#   make clean
#
# Variables: ARCH (x86_64 | aarch64), CPUS (for run, default 4), HTTP_PORT (for run: host port on
# 127.0.0.1 forwarded to the guest's port 80, default 8080), CMDLINE (kernel command line in the image, default
# empty), LIMINE_DIR (genuine Limine's BOOTX64.EFI/BOOTAA64.EFI instead of our loader),
# CARGO_TARGET_DIR, CLIPPY_FLAGS (default -D warnings), V=1 (show cargo's full output).

SHELL := bash
, := ,
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ARCH ?= x86_64
ARCHES := x86_64 aarch64
CMDLINE ?=
LIMINE_DIR ?=
IMAGE := build/stratus.img
CLOUD_DIR := build/cloud
CLIPPY_FLAGS ?= -D warnings
PYTHON ?= python3

ifeq ($(filter $(ARCH),$(ARCHES)),)
$(error ARCH must be x86_64 or aarch64, not '$(ARCH)')
endif

# cargo lives in ~/.cargo/bin, which a bare shell's PATH lacks (same as `. ~/.cargo/env`).
ifeq ($(shell command -v cargo 2>/dev/null),)
export PATH := $(HOME)/.cargo/bin:$(PATH)
endif

TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
IMAGE_TOOL := $(TARGET_DIR)/release/stratus-image

# The command line reaches the image byte for byte, whatever it holds: its raw text
# ($(value), so make expands nothing in it) goes to the recipes through the
# environment, and the recipe hands "$$STRATUS_CMDLINE" to the tool as one argument
# (the shell expands nothing inside a variable's value). Pasting $(CMDLINE) into the
# recipe would let a `"` or `$` in it end the string or run a command. CMDLINE itself
# is not exported: make would expand it (running any $(shell ...) in it) to do so.
unexport CMDLINE
export STRATUS_CMDLINE := $(value CMDLINE)
KERNEL_TARGETS := $(foreach a,$(ARCHES),--target $(a)-unknown-none)
LOADER_TARGETS := $(foreach a,$(ARCHES),--target $(a)-unknown-uefi)

ifeq ($(V),1)
CARGO_Q :=
else
CARGO_Q := --quiet
endif

# Step headings: bold on a terminal, plain in CI logs.
sayi = if [ -t 1 ]; then printf '\033[1m==> %s\033[0m\n' "$(1)"; else printf '==> %s\n' "$(1)"; fi
say = @$(call sayi,$(1))

.PHONY: help setup kernels loader example tool image check-image cloud-images cloud-commands run debug \
        fmt clippy check host-test qemu-test test bench fuzz clean

help:
	@sed -n '3,18p' Makefile | sed 's/^# \{0,1\}//'

setup:
	@ci/setup.sh

# ---------------------------------------------------------------------------- builds --

kernels: setup
	$(call say,kernels: stratus-demo and stratus-hello for $(ARCHES) (release))
	@cargo build $(CARGO_Q) --release -p stratus-demo -p stratus-hello $(KERNEL_TARGETS)
	@for a in $(ARCHES); do echo "    $(TARGET_DIR)/$$a-unknown-none/release/stratus-demo"; done

loader: setup
	$(call say,loader: stratus-loader for $(ARCHES) UEFI (release))
	@cargo build $(CARGO_Q) --release -p stratus-loader $(LOADER_TARGETS)
	@for a in $(ARCHES); do echo "    $(TARGET_DIR)/$$a-unknown-uefi/release/stratus-loader.efi"; done

# A kernel project outside the workspace, built the way its README tells a user to:
# plain `cargo build` in its own directory (its own Cargo.lock, no rustflags). It
# shares the workspace's target directory only so the library is not built twice.
EXAMPLE := examples/my-kernel
example: setup
	$(call say,example: $(EXAMPLE) for $(ARCHES) (plain cargo build, release))
	@cd $(EXAMPLE) && CARGO_TARGET_DIR="$(abspath $(TARGET_DIR))" \
	    cargo build $(CARGO_Q) --release $(KERNEL_TARGETS)
	@for a in $(ARCHES); do echo "    $(TARGET_DIR)/$$a-unknown-none/release/my-kernel"; done

tool: setup
	$(call say,tool: stratus-image (host, release))
	@cargo build $(CARGO_Q) --release -p stratus-image

# With LIMINE_DIR the loader is not needed (genuine Limine takes its place).
image: setup kernels tool $(if $(LIMINE_DIR),,loader)
	$(call say,image: $(IMAGE)$(if $(LIMINE_DIR), with Limine from $(LIMINE_DIR)))
	@"$(IMAGE_TOOL)" build "$(IMAGE)" --cmdline "$$STRATUS_CMDLINE" \
	    $(foreach a,$(ARCHES),--kernel-$(a) "$(TARGET_DIR)/$(a)-unknown-none/release/stratus-demo") \
	    $(if $(LIMINE_DIR),--limine-dir "$(LIMINE_DIR)",$(foreach a,$(ARCHES),--loader-$(a) "$(TARGET_DIR)/$(a)-unknown-uefi/release/stratus-loader.efi")) \
	    >/dev/null
	@echo "    $(IMAGE)"

# The image's checks, then a command line full of quotes and dollars through `make image`.
check-image: image
	$(call say,image checks)
	@ci/check-image.sh "$(IMAGE)"
	@ci/check-cmdline.sh

cloud-images: image
	$(call say,cloud images: $(CLOUD_DIR)/)
	@"$(IMAGE_TOOL)" cloud-images "$(IMAGE)" "$(CLOUD_DIR)" | sed 's/^/    /'
	@ci/check-cloud-images.sh "$(IMAGE)" "$(CLOUD_DIR)"

cloud-commands: tool
	@"$(IMAGE_TOOL)" cloud-commands "$(CLOUD_DIR)"

# --------------------------------------------------------------------------- running --

# CPUs of the machine `make run` boots (the tests use QEMU's default of 2 unless a case
# says otherwise).
# The machine has a virtio-net NIC on QEMU's user network; the guest's port 80 is
# forwarded to HTTP_PORT on 127.0.0.1 only (`make run CMDLINE=net=http`, then
# `curl http://127.0.0.1:8080/`).
CPUS ?= 4
HTTP_PORT ?= 8080
RUN_NET := -netdev user,id=net0,hostfwd=tcp:127.0.0.1:$(HTTP_PORT)-:80 -device virtio-net-pci,netdev=net0
run: image
	$(call say,run: $(ARCH) with $(CPUS) CPUs$(,) guest port 80 on 127.0.0.1:$(HTTP_PORT))
	@CARGO_TARGET_DIR="$(TARGET_DIR)" $(PYTHON) ci/qemu.py run --arch $(ARCH) "$(IMAGE)" -- -smp $(CPUS) $(RUN_NET)

debug: image
	$(call say,debug: $(ARCH))
	@CARGO_TARGET_DIR="$(TARGET_DIR)" $(PYTHON) ci/qemu.py debug --arch $(ARCH) "$(IMAGE)"

# ---------------------------------------------------------------------------- checks --

fmt: setup
	$(call say,fmt: cargo fmt --check)
	@cargo fmt --all --check
	@cargo fmt --check --manifest-path $(EXAMPLE)/Cargo.toml

# Host (default members, with their tests), the kernels for both bare-metal targets
# (which lints the arch, platform and kernel-core crates as they are built there) and
# the loader for both UEFI targets.
clippy: setup
	@rc=0; \
	$(call sayi,clippy: host (default members, all targets)); \
	cargo clippy $(CARGO_Q) --all-targets -- $(CLIPPY_FLAGS) || rc=1; \
	$(call sayi,clippy: stratus-demo and stratus-hello for $(ARCHES)); \
	cargo clippy $(CARGO_Q) -p stratus-demo -p stratus-hello $(KERNEL_TARGETS) -- $(CLIPPY_FLAGS) || rc=1; \
	$(call sayi,clippy: stratus-loader for UEFI $(ARCHES)); \
	cargo clippy $(CARGO_Q) -p stratus-loader $(LOADER_TARGETS) -- $(CLIPPY_FLAGS) || rc=1; \
	$(call sayi,clippy: $(EXAMPLE) for $(ARCHES)); \
	(cd $(EXAMPLE) && CARGO_TARGET_DIR="$(abspath $(TARGET_DIR))" \
	    cargo clippy $(CARGO_Q) $(KERNEL_TARGETS) -- $(CLIPPY_FLAGS)) || rc=1; \
	exit $$rc

check: fmt clippy

host-test: setup
	$(call say,host tests: cargo test)
	@set +e; cargo test $(CARGO_Q) $(TEST_ARGS) 2>&1 \
	    | grep -vE '^$$|^running 0 tests$$|ok\. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out'; \
	    exit $${PIPESTATUS[0]}

qemu-test: image example
	$(call say,QEMU boot tests: $(ARCHES))
	@CARGO_TARGET_DIR="$(TARGET_DIR)" STRATUS_IMAGE="$(IMAGE)" $(PYTHON) ci/qemu_test.py

# Every step runs even when an earlier one failed (so one run shows the whole state);
# `make test` fails if any step failed.
TEST_STEPS := fmt clippy host-test check-image cloud-images qemu-test
test: setup
	@start=$$(date +%s); failed=""; summary=""; \
	for t in $(TEST_STEPS); do \
	    s=$$(date +%s); \
	    if $(MAKE) $$t; then r=ok; else r=FAILED; failed="$$failed $$t"; fi; \
	    summary="$$summary$$(printf '    %-12s %-6s %4d s' $$t $$r $$(( $$(date +%s) - s )))\n"; \
	done; \
	echo "==> make test summary"; printf "$$summary"; \
	if [ -n "$$failed" ]; then \
	    echo "make test: FAILED ($${failed# }) after $$(( $$(date +%s) - start )) s" >&2; exit 1; \
	fi; \
	echo "make test: all passed in $$(( $$(date +%s) - start )) s"

bench: image
	$(call say,bench)
	@CARGO_TARGET_DIR="$(TARGET_DIR)" STRATUS_IMAGE="$(IMAGE)" $(PYTHON) ci/bench.py
	@CARGO_TARGET_DIR="$(TARGET_DIR)" $(PYTHON) ci/net_bench.py

# Every parser that takes outside input has a `fuzz_*` test (ci/fuzz): `make test` runs a
# short seeded pass of each; this runs a long one, optimised.
FUZZ_ITERATIONS ?= 300000
fuzz: setup
	$(call say,fuzz: $(FUZZ_ITERATIONS) inputs per target (STRATUS_FUZZ_SEED=$${STRATUS_FUZZ_SEED:-0}))
	@STRATUS_FUZZ_ITERATIONS=$(FUZZ_ITERATIONS) CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
	    CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
	    cargo test $(CARGO_Q) --release fuzz_ -- --nocapture

clean:
	$(call say,clean)
	@cargo clean $(CARGO_Q)
	@rm -rf build
