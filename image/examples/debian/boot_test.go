package debian_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/qemu"
)

// stepTimeout bounds each expected console line: TCG on two busy cores.
const stepTimeout = 5 * time.Minute

// TestBoot builds a release of the Debian reference system with the
// project's binaries (build/bin and build/grub when `make bins grub` made
// them),
// installs it on a sparse disk with device.yaml, and boots it under QEMU:
// twice under SeaBIOS (the second boot in the same QEMU after a reboot),
// then under OVMF. Each boot must reach multi-user.target and a login prompt
// on the serial console, run updater boot, have /data mounted with
// /var/lib/containers and the journal on it, and the same machine-id. The
// store in device.yaml is not there, so updater boot's check for a release
// fails after its outcome line: that is logged, not asserted.
func TestBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boot: skipped with -short")
	}
	updater, installer, grubDir := tools(t)
	root := assembledWith(t, updater)
	work := t.TempDir()
	runCmd(t, updater, "keygen", "--out", filepath.Join(work, "release"))
	rel := filepath.Join(work, "v1")
	start := time.Now()
	runCmd(t, updater, "build", "--rootfs", root, "--trust", filepath.Join(work, "release.pub"),
		"--version", "1.0.0", "--serial", "1", "--out", rel)
	fi, err := os.Stat(filepath.Join(rel, "slot.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("slot image (squashfs, xz): %d bytes (%.1f MB), built in %v", fi.Size(), float64(fi.Size())/1e6, time.Since(start).Round(time.Second))

	disk := filepath.Join(work, "disk.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cfg := filepath.Join(work, "device.yaml")
	b, err := os.ReadFile("device.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	runCmd(t, installer, "install", "--disk", disk, "--image", rel, "--config", cfg,
		"--grub-dir", grubDir, "--slot-size", "1G", "--yes")

	var machineID string
	// check follows one boot on the console, logs in on it and checks the
	// running system from its shell.
	check := func(t *testing.T, vm *qemu.VM, fw qemu.Firmware, boot int) {
		t.Helper()
		started := time.Now()
		expect(t, vm, `twinroot-initramfs: data partition on /data`)
		// updater boot runs after multi-user.target, the getty with it:
		// either may come first.
		const outcome, login = `twinroot: nothing-to-do: running committed slot a`, `twinroot login:`
		i, _, err := vm.ExpectAny(stepTimeout, outcome, login)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			expect(t, vm, login)
		} else {
			expect(t, vm, outcome)
		}
		t.Logf("%s boot %d: login prompt and updater boot after %v", fw, boot, time.Since(started).Round(100*time.Millisecond))
		send(t, vm, "root")
		expect(t, vm, `root@twinroot`)
		send(t, vm, `echo "ID=$(cat /etc/machine-id) DATA=$(findmnt -n -o FSTYPE /data) DEV=$(stat -c %d /data)-$(stat -c %d /var/lib/containers)-$(stat -c %d /var/log/journal) RO=$(findmnt -n -o OPTIONS / | cut -d, -f1) MU=$(systemctl is-active multi-user.target)@$(systemctl show -P ActiveEnterTimestampMonotonic multi-user.target) BOOT=$(systemctl show -P ActiveState twinroot-boot.service) END"`)
		// Up to END: Expect returns a line as far as it has arrived.
		line := expect(t, vm, `ID=[0-9a-f]{32} DATA=.* END`)
		m := regexp.MustCompile(`ID=([0-9a-f]{32}) DATA=(\S*) DEV=(\d+)-(\d+)-(\d+) RO=(\S*) MU=(\S*)@(\d+) BOOT=(\S*)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected check line %q", line)
		}
		t.Logf("%s boot %d: %s", fw, boot, line)
		if m[2] != "ext4" {
			t.Errorf("/data is %q, want ext4", m[2])
		}
		if m[3] != m[4] || m[3] != m[5] {
			t.Errorf("/data, /var/lib/containers, /var/log/journal on devices %s, %s, %s: want all on the data partition", m[3], m[4], m[5])
		}
		if m[6] != "ro" {
			t.Errorf("root mounted %q, want ro", m[6])
		}
		if m[7] != "active" {
			t.Errorf("multi-user.target is %s, want active", m[7])
		}
		us, _ := strconv.ParseInt(m[8], 10, 64)
		t.Logf("%s boot %d: multi-user.target reached %.1fs after the kernel started (systemd's clock)", fw, boot, float64(us)/1e6)
		if machineID == "" {
			machineID = m[1]
		} else if m[1] != machineID {
			t.Errorf("machine-id %s on %s boot %d, want %s as before", m[1], fw, boot, machineID)
		}
	}

	t.Run("bios", func(t *testing.T) {
		vm := qemu.StartT(t, qemu.Config{Name: "debian-bios", Drives: []qemu.Drive{{Path: disk}},
			MemoryMB: 1024, CPUs: 2, NetDev: "user,id=n,restrict=on"})
		check(t, vm, qemu.BIOS, 1)
		send(t, vm, "systemctl reboot")
		shutdown := time.Now()
		expect(t, vm, `reboot: Restarting system`)
		t.Logf("bios boot 1: shutdown took %v", time.Since(shutdown).Round(100*time.Millisecond))
		for _, l := range regexp.MustCompile(`(?m)^.*(stop job is running|Failed to|FAILED|Timed out).*$`).FindAllString(vm.Console(), -1) {
			t.Logf("bios boot 1: %s", l)
		}
		check(t, vm, qemu.BIOS, 2)
		send(t, vm, "systemctl poweroff")
		if err := vm.Wait(stepTimeout); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("uefi", func(t *testing.T) {
		vm := qemu.StartT(t, qemu.Config{Name: "debian-uefi", Firmware: qemu.UEFI, Drives: []qemu.Drive{{Path: disk}},
			MemoryMB: 1024, CPUs: 2, NetDev: "user,id=n,restrict=on"})
		check(t, vm, qemu.UEFI, 3)
		send(t, vm, "systemctl poweroff")
		if err := vm.Wait(stepTimeout); err != nil {
			t.Fatal(err)
		}
	})
}

func expect(t *testing.T, vm *qemu.VM, pattern string) string {
	t.Helper()
	line, err := vm.Expect(pattern, stepTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

func send(t *testing.T, vm *qemu.VM, line string) {
	t.Helper()
	if err := vm.Send(line); err != nil {
		t.Fatal(err)
	}
}

func runCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

// tools returns the updater and installer binaries and the GRUB images:
// those of `make bins grub` (build/bin, build/grub or $TWINROOT_GRUB_DIR)
// when present, else built for this test.
func tools(t *testing.T) (updater, installer, grubDir string) {
	t.Helper()
	bin := filepath.Join(repoRoot(t), "build", "bin")
	updater, installer = filepath.Join(bin, "updater"), filepath.Join(bin, "installer")
	for _, p := range []*string{&updater, &installer} {
		if _, err := os.Stat(*p); err == nil {
			continue
		}
		name := filepath.Base(*p)
		*p = filepath.Join(t.TempDir(), name)
		cmd := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-o", *p, "github.com/twinroot/twinroot/cmd/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	grubDir = os.Getenv("TWINROOT_GRUB_DIR")
	if grubDir == "" {
		grubDir = filepath.Join(repoRoot(t), "build", "grub")
	}
	if _, err := os.Stat(filepath.Join(grubDir, "BOOTX64.EFI")); err != nil {
		grubDir = filepath.Join(t.TempDir(), "grub")
		if err := grub.BuildImages(t.Context(), grubDir); err != nil {
			t.Fatal(err)
		}
	}
	return updater, installer, grubDir
}
