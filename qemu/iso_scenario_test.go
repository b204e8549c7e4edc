package qemu_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/testenv"
	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

// The installer ISO the scenarios boot: unattended (twinroot.yes=1), with a
// device config whose slot size fits the lab's disks.
var (
	isoOnce sync.Once
	isoPath string
	isoErr  error
)

const isoDeviceYAML = `source: file:///data/fleet
slot_size: 64M
`

// testISO builds the scenarios' ISO once per test binary.
func testISO(t *testing.T) (*lab.Lab, string) {
	t.Helper()
	l := testLab(t)
	isoOnce.Do(func() {
		start := time.Now()
		dir, err := os.MkdirTemp(l.Dir, "iso-")
		if err != nil {
			isoErr = err
			return
		}
		isoPath = filepath.Join(dir, "installer.iso")
		r, err := l.BuildISO(t.Context(), isoPath, lab.ISOOptions{Config: isoDeviceYAML, KernelArgs: "twinroot.yes=1"})
		if err != nil {
			isoErr = err
			return
		}
		t.Logf("installer ISO: %d bytes (%.1f MiB), initramfs %d bytes, built in %v (release and installer builds included)",
			r.Size, float64(r.Size)/(1<<20), r.Initrd, time.Since(start).Round(100*time.Millisecond))
	})
	if isoErr != nil {
		t.Fatal(isoErr)
	}
	return l, isoPath
}

func emptyDisk(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := lab.EmptyDisk(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// installFromISO boots the guest with drives, expects an unattended
// install onto the disk named target and the power-off.
func installFromISO(t *testing.T, name string, fw qemu.Firmware, drives []qemu.Drive, target string) {
	t.Helper()
	vm := qemu.StartT(t, qemu.Config{Name: name, Firmware: fw, Drives: drives})
	expect(t, vm, `twinroot installer: release 1\.0\.0 \(serial 1, channel stable\), manifest signed`)
	expect(t, vm, `twinroot installer: plan: install 1\.0\.0 onto `+target)
	expect(t, vm, `twinroot installer: writing slot A: 100%`)
	expect(t, vm, `twinroot installer: installed 1\.0\.0 on `+target)
	expect(t, vm, `twinroot installer: done: remove the installer medium; powering off`)
	if err := vm.Wait(stepTimeout); err != nil {
		t.Fatalf("the installer did not power off: %v", err)
	}
}

// bootInstalled boots the installed disk alone and checks v1 runs from
// slot A, committed, with the device config on its data partition.
func bootInstalled(t *testing.T, disk string, fw qemu.Firmware) {
	t.Helper()
	vm := boot(t, disk, fw)
	expect(t, vm, `twinroot: booting slot a \(committed`)
	expect(t, vm, `twinroot-init: data partition \S+ on /data`)
	expect(t, vm, `twinroot-init: slot=a version=1\.0\.0 `)
	expect(t, vm, `twinroot-init: ready`)
	vm.Send("run status -o json")
	expect(t, vm, `"committed": "a"`)
	expect(t, vm, `twinroot-init: run exit=0`)
	powerOff(t, vm)
	wantState(t, disk, bootstate.Initial())
}

// TestISOInstall boots the installer ISO as a user would, unattended, from
// a CD drive and as a raw disk (a USB stick written with dd), under SeaBIOS
// and OVMF; each install is then booted and runs v1 from slot A. The raw
// disk cases attach the ISO writable, and as the first disk in the BIOS
// case (a fixed disk, not a removable one): the installer must still pick
// the other disk and leave the ISO's bytes as they were.
func TestISOInstall(t *testing.T) {
	_, iso := testISO(t)
	for _, tc := range []struct {
		name   string
		fw     qemu.Firmware
		medium qemu.Drive // Path set below
		target string
	}{
		{"bios-cd", qemu.BIOS, qemu.Drive{Media: "cdrom", BootOrder: 1}, "/dev/vda"},
		{"uefi-cd", qemu.UEFI, qemu.Drive{Media: "cdrom", BootOrder: 1}, "/dev/vda"},
		{"bios-raw-disk", qemu.BIOS, qemu.Drive{Interface: "virtio", BootOrder: 1}, "/dev/vdb"},
		{"uefi-usb-stick", qemu.UEFI, qemu.Drive{Interface: "usb", BootOrder: 1}, "/dev/vda"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			t.Cleanup(func() { t.Logf("scenario %s took %v", t.Name(), time.Since(start).Round(100*time.Millisecond)) })
			disk := emptyDisk(t, "disk.img")
			medium := tc.medium
			medium.Path = iso
			var before string
			if medium.Media != "cdrom" {
				// A stick the guest could write to: its own copy.
				medium.Path = filepath.Join(t.TempDir(), "stick.img")
				copyFile(t, iso, medium.Path)
				before = testenv.FileSHA256(t, medium.Path)
			} else {
				medium.ReadOnly = true
			}
			// In the raw disk case the ISO is vda and the target vdb.
			drives := []qemu.Drive{medium, {Path: disk}}
			installFromISO(t, "install-"+tc.name, tc.fw, drives, tc.target)
			if before != "" {
				if after := testenv.FileSHA256(t, medium.Path); after != before {
					t.Errorf("the installer medium changed: sha256 %s before, %s after", before, after)
				}
			}
			bootInstalled(t, disk, tc.fw)
		})
	}
}

// TestISORefuses boots the ISO where it must not install: onto a disk that
// already holds twinroot (no twinroot.wipe-data=1), and with a bundled
// image one flipped byte away from its signed manifest. Each failure is a
// one-line reason on the console; the installer powers off only when Enter
// is pressed.
func TestISORefuses(t *testing.T) {
	l, iso := testISO(t)
	t.Run("holds-twinroot", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		t.Cleanup(func() { t.Logf("scenario %s took %v", t.Name(), time.Since(start).Round(100*time.Millisecond)) })
		disk := filepath.Join(t.TempDir(), "disk.img")
		if err := l.Install(t.Context(), disk, "1.0.0"); err != nil {
			t.Fatal(err)
		}
		before := testenv.FileSHA256(t, disk)
		vm := qemu.StartT(t, qemu.Config{Name: "refuse-holds-twinroot", Drives: []qemu.Drive{
			{Path: iso, Media: "cdrom", ReadOnly: true, BootOrder: 1}, {Path: disk}}})
		line := failureLine(t, vm)
		if !strings.Contains(line, "holds twinroot data") || !strings.Contains(line, "twinroot.wipe-data=1") {
			t.Errorf("failure line %q, want the reason (holds twinroot data) and the way out (twinroot.wipe-data=1)", line)
		}
		vm.Send("")
		if err := vm.Wait(stepTimeout); err != nil {
			t.Fatalf("Enter did not power off: %v", err)
		}
		if after := testenv.FileSHA256(t, disk); after != before {
			t.Errorf("the refused disk changed: sha256 %s before, %s after", before, after)
		}
	})
	t.Run("corrupt-image", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		t.Cleanup(func() { t.Logf("scenario %s took %v", t.Name(), time.Since(start).Round(100*time.Millisecond)) })
		bad := filepath.Join(t.TempDir(), "corrupt.iso")
		copyFile(t, iso, bad)
		flipImageByte(t, bad)
		disk := emptyDisk(t, "disk.img")
		vm := qemu.StartT(t, qemu.Config{Name: "refuse-corrupt-image", Drives: []qemu.Drive{
			{Path: bad, Media: "cdrom", ReadOnly: true, BootOrder: 1}, {Path: disk}}})
		line := failureLine(t, vm)
		if !strings.Contains(line, "SHA-256") {
			t.Errorf("failure line %q, want a SHA-256 mismatch", line)
		}
		vm.Send("")
		if err := vm.Wait(stepTimeout); err != nil {
			t.Fatalf("Enter did not power off: %v", err)
		}
		// No GRUB: no boot code in the MBR, and no boot state that marks
		// slot A good.
		f, err := os.Open(disk)
		if err != nil {
			t.Fatal(err)
		}
		mbr := make([]byte, 440)
		f.ReadAt(mbr, 0)
		f.Close()
		if !bytes.Equal(mbr, make([]byte, 440)) {
			t.Error("the disk has boot code in its MBR after a refused image")
		}
		if st, err := lab.State(disk); err == nil && st.A == bootstate.OK {
			t.Errorf("boot state after a refused image = %+v: slot A is marked ok", st)
		}
	})
}

// failureLine waits for the installer's failure and returns its whole
// "install failed: " line (Expect may return a line not yet complete).
func failureLine(t *testing.T, vm *qemu.VM) string {
	t.Helper()
	expect(t, vm, `^install failed: `)
	expect(t, vm, `press Enter to power off`)
	for _, l := range strings.Split(vm.Console(), "\n") {
		if strings.HasPrefix(l, "install failed: ") {
			t.Logf("console: %s", strings.TrimSpace(l))
			return strings.TrimSpace(l)
		}
	}
	t.Fatal("no install failed line on the console")
	return ""
}

// flipImageByte flips one byte in the middle of the slot image inside the
// ISO file: the only squashfs in it ("hsqs" at a sector start; bytes_used,
// a little-endian u64, at byte 40 of the superblock).
func flipImageByte(t *testing.T, isoFile string) {
	t.Helper()
	b, err := os.ReadFile(isoFile)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+4096 <= len(b); off += 2048 {
		if string(b[off:off+4]) != "hsqs" {
			continue
		}
		used := binary.LittleEndian.Uint64(b[off+40:])
		b[off+int(used/2)] ^= 0x01
		if err := os.WriteFile(isoFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("no squashfs slot image in the ISO")
}

// TestISOAsks boots an ISO built without twinroot.yes=1, as a user's
// would be: the installer shows its plan and asks on the console. Any
// answer but "yes" refuses, the empty disk stays all zeros, and Enter
// powers off; booted again and answered "yes", it installs, and the disk
// runs v1 from slot A. BIOS only: the prompt is the installer's, the same
// under either firmware.
func TestISOAsks(t *testing.T) {
	l := testLab(t)
	start := time.Now()
	t.Cleanup(func() { t.Logf("scenario %s took %v", t.Name(), time.Since(start).Round(100*time.Millisecond)) })
	iso := filepath.Join(t.TempDir(), "installer-asks.iso")
	if _, err := l.BuildISO(t.Context(), iso, lab.ISOOptions{Config: isoDeviceYAML}); err != nil {
		t.Fatal(err)
	}
	disk := emptyDisk(t, "disk.img")
	before := testenv.FileSHA256(t, disk)
	drives := []qemu.Drive{{Path: iso, Media: "cdrom", ReadOnly: true, BootOrder: 1}, {Path: disk}}
	const prompt = `type yes and Enter to erase everything on /dev/vda and install 1\.0\.0: `

	vm := qemu.StartT(t, qemu.Config{Name: "asks-no", Drives: drives})
	expect(t, vm, `twinroot installer: plan: install 1\.0\.0 onto /dev/vda`)
	expect(t, vm, prompt)
	vm.Send("no")
	line := failureLine(t, vm)
	if !strings.Contains(line, "not confirmed") || !strings.Contains(line, `"no"`) {
		t.Errorf("failure line %q, want not confirmed, quoting the answer", line)
	}
	vm.Send("")
	if err := vm.Wait(stepTimeout); err != nil {
		t.Fatalf("Enter did not power off: %v", err)
	}
	if after := testenv.FileSHA256(t, disk); after != before {
		t.Errorf("the disk changed after the answer no: sha256 %s before, %s after", before, after)
	}

	vm = qemu.StartT(t, qemu.Config{Name: "asks-yes", Drives: drives})
	expect(t, vm, prompt)
	vm.Send("yes")
	expect(t, vm, `twinroot installer: writing slot A: 100%`)
	expect(t, vm, `twinroot installer: installed 1\.0\.0 on /dev/vda`)
	expect(t, vm, `twinroot installer: done: remove the installer medium; powering off`)
	if err := vm.Wait(stepTimeout); err != nil {
		t.Fatalf("the installer did not power off: %v", err)
	}
	bootInstalled(t, disk, qemu.BIOS)
}
