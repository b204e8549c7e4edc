package qemu_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

// TestScenarioSlotIOErrors gives the guest a disk that fails it where slot
// B lies, through QEMU's blkdebug driver: real I/O errors in the guest's
// kernel, under SeaBIOS only (the firmware plays no part). The channel is
// a file:// store on the data partition, so no server is involved.
//
// At boot the updater applies 2.0.0 into slot B and one write fails; then
// `updater apply --read-back` writes the slot whole and the read back of
// one sector fails. Both times the error names the disk, nothing is armed,
// and the next boot is the committed slot A, whose bytes never changed.
func TestScenarioSlotIOErrors(t *testing.T) {
	l := testLab(t)
	start := time.Now()
	t.Cleanup(func() { t.Logf("scenario %s took %v", t.Name(), time.Since(start).Round(100*time.Millisecond)) })
	step := func(format string, a ...any) {
		t.Logf("%6.1fs  %s", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	ctx := t.Context()
	v1dir, err := l.Release(ctx, v1.version, v1.serial, v1.variant)
	if err != nil {
		t.Fatal(err)
	}
	v2dir, err := l.Release(ctx, v2.version, v2.serial, v2.variant)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "device.yaml")
	yaml := fmt.Sprintf("source: file:///data/channel\nchannel: %s\nreboot:\n  policy: now\ntrial_boots: 1\nstate_dir: /data/twinroot/state\n", lab.Channel)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	if err := l.InstallRelease(ctx, disk, v1dir, cfg); err != nil {
		t.Fatal(err)
	}
	layout := publishOnData(t, l, disk, v2dir)
	step("installed %s; %s published to file:///data/channel on the disk's data partition", v1.version, v2.version)

	// One write into slot B fails once (1 MiB in); a read of a sector in
	// the middle of the image fails every time.
	img, err := os.Stat(filepath.Join(v2dir, release.SlotFile))
	if err != nil {
		t.Fatal(err)
	}
	writeSector := (layout.B.Start + 1<<20) / 512
	readSector := (layout.B.Start + img.Size()/2) / 512
	faults := filepath.Join(dir, "faults.cfg")
	rules := fmt.Sprintf(`[inject-error]
event = "write_aio"
iotype = "write"
errno = "5"
sector = "%d"
once = "on"

[inject-error]
event = "read_aio"
iotype = "read"
errno = "5"
sector = "%d"
`, writeSector, readSector)
	if err := os.WriteFile(faults, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	slotA := slotSum(t, disk, layout.A)

	vm := qemu.StartT(t, qemu.Config{Name: "slot-io-errors", Firmware: qemu.BIOS,
		Drives: []qemu.Drive{{Path: disk, Blkdebug: faults}}})
	bootedWithData(t, vm, "a", "committed", v1.version)
	expect(t, vm, `twinroot: nothing-to-do: running committed slot a`)
	// The pattern runs to the line's end: the console matches lines as
	// they arrive, and a shorter one matched a line whose end had not.
	const ioErrorLine = `updater: write slot b: .*input/output error \(slot b stays unbootable[^)]*\)`
	line := expect(t, vm, ioErrorLine)
	wantDeviceError(t, line, "write /dev/vda at ")
	expect(t, vm, `twinroot-init: updater boot exit=1`)
	expect(t, vm, `twinroot-init: ready`)
	step("the write into slot b failed: %s", strings.TrimSpace(line))

	vm.Send("run apply --read-back")
	line = expect(t, vm, ioErrorLine)
	wantDeviceError(t, line, "from /dev/vda at ")
	expect(t, vm, `twinroot-init: run exit=1`)
	step("the read back of slot b failed: %s", strings.TrimSpace(line))
	if s, raw := guestStatusJSON(t, vm); s.Committed != "a" || s.Trial != "" || s.Slots["b"].State != bootstate.Writing {
		t.Errorf("status after the failed applies: committed %q, trial %q, slot b %q; want a, none, writing\n%s",
			s.Committed, s.Trial, s.Slots["b"].State, raw)
	}

	vm.Send("reboot")
	bootedWithData(t, vm, "a", "committed", v1.version)
	expect(t, vm, `twinroot: nothing-to-do: running committed slot a`)
	expect(t, vm, `twinroot-init: ready`)
	if con := vm.Console(); strings.Contains(con, "written and verified") || strings.Contains(con, "rebooting into the trial slot") {
		t.Errorf("a slot that failed its write or read back was armed:\n%s", con)
	}
	powerOff(t, vm)
	wantState(t, disk, bootstate.State{Committed: "a", A: bootstate.OK, B: bootstate.Writing})
	if got := slotSum(t, disk, layout.A); got != slotA {
		t.Error("slot A changed")
	}
	step("back on slot a after a reboot; slot a unchanged, slot b never armed")
}

// publishOnData publishes the release in dir to a file:// store at
// /channel of the disk's data partition, and returns the disk's layout.
func publishOnData(t *testing.T, l *lab.Lab, disk, dir string) partition.Layout {
	t.Helper()
	d, err := bootstate.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	layout := d.Layout
	d.Close()
	mnt, unmount, err := partition.MountData(disk, layout)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unmount(); err != nil {
			t.Error(err)
		}
	}()
	if err := os.Mkdir(filepath.Join(mnt, "channel"), 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := source.OpenStore(t.Context(), "file://"+filepath.Join(mnt, "channel"), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Publish(t.Context(), st, dir); err != nil {
		t.Fatal(err)
	}
	return layout
}

// wantDeviceError checks that an updater error line names the disk where
// it failed, in one line.
func wantDeviceError(t *testing.T, line, want string) {
	t.Helper()
	if !strings.Contains(line, want) || !strings.Contains(line, "slot b stays unbootable") {
		t.Errorf("error %q does not say %q and what was left", line, want)
	}
}

func slotSum(t *testing.T, disk string, p partition.Part) [sha256.Size]byte {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, p.Start, p.Size)); err != nil {
		t.Fatal(err)
	}
	return [sha256.Size]byte(h.Sum(nil))
}
