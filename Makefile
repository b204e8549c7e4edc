# twinroot: build, test, demo. Every target installs what it needs itself.
SHELL := /bin/bash
GO ?= go
BUILD := build
APT_PACKAGES := qemu-system-x86 ovmf grub-pc-bin grub-efi-amd64-bin grub2-common \
	squashfs-tools dosfstools mtools xorriso gdisk e2fsprogs cpio kmod util-linux awscli zstd \
	rauc rauc-service openssl dbus podman runc debootstrap busybox-static jq tzdata coreutils libc-bin \
	chromium
GO_TEST_TIMEOUT ?= 80m

.PHONY: all deps kernel grub s3-servers bins image iso demo demo-minimal test test-short bench bench-fleet reliability vet fmt clean

all: bins grub image

# Debian packages, installed only when one is missing (idempotent).
deps: $(BUILD)/.deps
$(BUILD)/.deps: Makefile
	@mkdir -p $(BUILD)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@

MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
VERSITYGW_VERSION := v1.8.0
GOBIN_DIR = $(or $(shell $(GO) env GOBIN),$(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin)

# S3 servers for the integration tests; each is built only when its binary is absent.
s3-servers:
	@test -x $(GOBIN_DIR)/minio || { echo "installing minio (takes minutes the first time)"; $(GO) install github.com/minio/minio@$(MINIO_VERSION); }
	@test -x $(GOBIN_DIR)/versitygw || $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

# Debian's kernel and its modules, unpacked (no root filesystem needed).
kernel: deps
	image/examples/minimal/fetch-kernel.sh $(BUILD)/kernel

# boot.img, core.img and BOOTX64.EFI, built once with grub-mkimage.
grub: deps
	$(GO) run ./cmd/installer build-grub --out $(BUILD)/grub

bins:
	@mkdir -p $(BUILD)/bin
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BUILD)/bin/updater ./cmd/updater
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BUILD)/bin/installer ./cmd/installer

# The minimal reference system, version 1.0.0: a slot image, and the same
# root as a release (build/minimal-v1) signed for channel stable by the key
# build/keys/release.key (made once), which the image trusts.
image: kernel bins
	$(GO) run ./image/examples/minimal/cmd/build-minimal --kernel-dir $(BUILD)/kernel \
		--updater $(BUILD)/bin/updater --version 1.0.0 --variant ok --out $(BUILD)/minimal-v1.img
	@mkdir -p $(BUILD)/keys
	@test -f $(BUILD)/keys/release.key || $(BUILD)/bin/updater keygen --out $(BUILD)/keys/release
	rm -rf $(BUILD)/minimal-v1.root $(BUILD)/minimal-v1
	unsquashfs -q -no-progress -d $(BUILD)/minimal-v1.root $(BUILD)/minimal-v1.img boot
	$(BUILD)/bin/updater build --rootfs $(BUILD)/minimal-v1.root --trust $(BUILD)/keys/release.pub \
		--version 1.0.0 --serial 1 --out $(BUILD)/minimal-v1
	$(BUILD)/bin/updater sign --image $(BUILD)/minimal-v1 --channel stable --key $(BUILD)/keys/release.key
	rm -rf $(BUILD)/minimal-v1.root

# The installer ISO of the minimal system (build/installer.iso): v1.0.0 and
# the demo's device config (image/examples/minimal/device.yaml). Booted, it
# asks on the console before it erases a disk.
iso: image grub
	install -m 0600 image/examples/minimal/device.yaml $(BUILD)/device.yaml
	$(BUILD)/bin/installer iso --image $(BUILD)/minimal-v1 --config $(BUILD)/device.yaml \
		--kernel-dir $(BUILD)/kernel --grub-dir $(BUILD)/grub --out $(BUILD)/installer.iso

# The whole mission on the Debian 13 reference system, against MinIO on
# 127.0.0.1: an installer ISO installs v1, whose bundled services come up
# healthy; v2 changes the web service's image and is taken at boot (the
# bytes fetched beside the object's size and the changed layer); v3's web
# never becomes healthy, so its trial fails the health gate and the device
# falls back to v2. debootstrap runs the first time (cached in build/debian).
demo: deps kernel grub bins s3-servers
	$(GO) run ./qemu/cmd/demo --system debian --debian-cache $(BUILD)/debian \
		--kernel-dir $(BUILD)/kernel --grub-dir $(BUILD)/grub \
		--updater $(BUILD)/bin/updater --work $(BUILD)/demo-debian

# The quick story on the minimal system: v1 installed by booting
# build/installer.iso (the installer asks, the demo types yes) takes v2
# from MinIO at boot and commits it, then takes a v3 whose health check
# fails and falls back to v2; printed as a timeline.
demo-minimal: iso s3-servers
	$(GO) run ./qemu/cmd/demo --kernel-dir $(BUILD)/kernel --grub-dir $(BUILD)/grub \
		--updater $(BUILD)/bin/updater --work $(BUILD)/demo \
		--iso $(BUILD)/installer.iso --key $(BUILD)/keys/release.key

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go mod tidy would change go.mod or go.sum:"; $(GO) mod tidy -diff; exit 1; }

# Everything, QEMU scenarios included; each scenario prints its duration.
TEST_ENV = TWINROOT_KERNEL_DIR=$(CURDIR)/$(BUILD)/kernel TWINROOT_GRUB_DIR=$(CURDIR)/$(BUILD)/grub \
	TWINROOT_DEBIAN_CACHE=$(CURDIR)/$(BUILD)/debian
test: deps kernel grub s3-servers vet
	$(TEST_ENV) $(GO) test -count=1 -timeout $(GO_TEST_TIMEOUT) $$(go list ./... | grep -v '/qemu$$')
	$(TEST_ENV) $(GO) test -count=1 -timeout $(GO_TEST_TIMEOUT) -v ./qemu

# Without QEMU boots (for a quick local loop).
test-short: deps grub s3-servers vet
	$(GO) test -short -count=1 ./...

# Release pipeline figures on a generated 200 MiB root: updater build beside
# mksquashfs alone, updater publish beside aws s3 cp to MinIO and versitygw on
# 127.0.0.1, as ratios of medians (3 to 5 minutes). BENCH_FLAGS="-o json" for machines.
# Then the device side (root: loop devices): updater apply of 512 MiB and
# 2 GiB images, as the first apply after install, beside each stage alone
# (GET, zstd -d, SHA-256, dd oflag=direct) as apply / limit, and its peak RSS;
# on the 512 MiB image the same apply without slot A's index (a scan), the
# aws s3 cp | zstd -d | tee >(sha256sum) | dd pipeline and RAUC's rauc install
# of a plain bundle of the same image (local file and http from MinIO); bytes
# of a no-change check (5 minutes on a quiet machine: each measure waits for
# one). APPLY_BENCH_FLAGS="-sizes 512" skips the 2 GiB image; "-o json" for machines.
# Then the delta (root: dpkg in a chroot): the bytes a device fetches for two
# updates of a real Debian 13 root beside casync's and the changed files' xz
# size; roots and images cached in build/delta (about 5 minutes the first
# time, under a minute after). DELTA_BENCH_FLAGS="-o json" for machines.
# Then the fleet (make bench-fleet).
bench: deps s3-servers
	@command -v casync >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq casync
	$(GO) run ./bench/release $(BENCH_FLAGS)
	$(GO) run ./bench/apply $(APPLY_BENCH_FLAGS)
	$(GO) run ./bench/delta $(DELTA_BENCH_FLAGS)
	$(GO) run ./bench/fleet $(FLEET_BENCH_FLAGS)

# 10,000 simulated devices (the real checker, slot engine and reporter)
# against one MinIO on 127.0.0.1, then a distributed MinIO of 4 processes:
# requests per second and bytes at the store (its audit log), check
# latency, a rollout's share at each quarter of an hour, and how soon
# rollout watch pauses a release failing on 10 % of the devices (about 20
# minutes). FLEET_BENCH_FLAGS="-devices 1000 -stores single" for a quick
# run, "-o json" for machines.
bench-fleet: deps s3-servers
	$(GO) run ./bench/fleet $(FLEET_BENCH_FLAGS)

# The reliability campaign, written to docs/reliability.md with the machine
# it ran on and, for each figure, the command that reproduces it. Fuzzing:
# every fuzz target of the module (found by go test -list), 10 million
# executions each, one target at a time on every core (hours); an input that
# fails is kept in the package's testdata/fuzz as a regression test, and
# the run exits 1. make test runs every seed corpus (the short form).
# Store faults: the store-fault table against MinIO and versitygw, 20 rounds.
# Power cuts: 250 kills of each updater command and of the installer on a
# loop device (as root; about a quarter of an hour), 16 each in make test.
# QEMU power cuts: 20 power-offs of the minimal system, then of the Debian
# system, during an update under each firmware (about an hour), 4 and 2 each
# in make test.
# RELIABILITY_FLAGS="-short" for a quick run, "-parts fuzz" to pick parts,
# "-fuzz-match bootstate" to pick targets, "-keep" to keep the rest from
# the report's JSON twin (the campaign in slices), "-o json" for machines.
reliability: deps kernel grub s3-servers
	$(TEST_ENV) $(GO) run ./bench/reliability $(RELIABILITY_FLAGS)

clean:
	rm -rf $(BUILD)
