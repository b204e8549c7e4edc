package qemu_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twinroot/twinroot/image/examples/minimal"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/testenv"
	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

// stepTimeout bounds every expected console line: TCG on two busy cores,
// UEFI slowest.
const stepTimeout = 3 * time.Minute

var (
	labOnce sync.Once
	theLab  *lab.Lab
	labErr  error
	labDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if labDir != "" {
		os.RemoveAll(labDir)
	}
	os.Exit(code)
}

func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// testLab returns the shared Lab; scenarios are skipped with -short, and
// fail (never skip) in CI when the kernel or GRUB images are missing.
func testLab(t *testing.T) *lab.Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("QEMU scenario: skipped with -short")
	}
	labOnce.Do(func() {
		kernel := os.Getenv("TWINROOT_KERNEL_DIR")
		if kernel == "" {
			kernel = filepath.Join(repoRoot(), "build", "kernel")
		}
		labDir, labErr = os.MkdirTemp("", "twinroot-lab-")
		if labErr != nil {
			return
		}
		grubDir := os.Getenv("TWINROOT_GRUB_DIR")
		if grubDir == "" {
			grubDir = filepath.Join(labDir, "grub")
			if labErr = grub.BuildImages(context.Background(), grubDir); labErr != nil {
				return
			}
		}
		theLab, labErr = lab.New(context.Background(), labDir, kernel, grubDir, "")
		if theLab != nil {
			// The Debian base root is cached across runs (debootstrap takes
			// minutes): build/debian, as make debian leaves it.
			theLab.DebianCache = os.Getenv("TWINROOT_DEBIAN_CACHE")
			if theLab.DebianCache == "" {
				theLab.DebianCache = filepath.Join(repoRoot(), "build", "debian")
			}
		}
	})
	if labErr != nil {
		testenv.Missing(t, fmt.Sprintf("QEMU scenario: %v", labErr))
	}
	return theLab
}

var firmwares = []qemu.Firmware{qemu.BIOS, qemu.UEFI}

// forEachFirmware runs a scenario under SeaBIOS and under OVMF, the two
// guests side by side (each TCG guest keeps one core busy), and prints each
// one's duration. Nothing may follow it in the calling test: the guests run
// once that test's function has returned.
func forEachFirmware(t *testing.T, f func(t *testing.T, fw qemu.Firmware)) {
	for _, fw := range firmwares {
		t.Run(string(fw), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			// A cleanup runs after parallel subtests too.
			t.Cleanup(func() { t.Logf("scenario %s took %v", t.Name(), time.Since(start).Round(100*time.Millisecond)) })
			f(t, fw)
		})
	}
}

func installed(t *testing.T, l *lab.Lab) string {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := l.Install(t.Context(), disk, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	return disk
}

// boot starts the disk with a watchdog (i6300esb, which resets the guest),
// as a device that arms one on trial boots has.
func boot(t *testing.T, disk string, fw qemu.Firmware, extra ...string) *qemu.VM {
	t.Helper()
	return qemu.StartT(t, qemu.Config{Name: filepath.Base(t.Name()), Firmware: fw, Drives: []qemu.Drive{{Path: disk}},
		ExtraArgs: append(slices.Clip(watchdogArgs), extra...)})
}

var watchdogArgs = []string{"-device", "i6300esb", "-action", "watchdog=reset"}

func expect(t *testing.T, vm *qemu.VM, pattern string) string {
	t.Helper()
	line, err := vm.Expect(pattern, stepTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// bootedInto expects GRUB's choice and the guest's identity line.
func bootedInto(t *testing.T, vm *qemu.VM, slot, mode, version string) {
	t.Helper()
	expect(t, vm, fmt.Sprintf(`twinroot: booting slot %s \(%s`, slot, regexp.QuoteMeta(mode)))
	expect(t, vm, fmt.Sprintf(`twinroot-init: slot=%s version=%s `, slot, regexp.QuoteMeta(version)))
}

// powerOff powers the guest off; call it after init printed ready (or after
// a command's exit line).
func powerOff(t *testing.T, vm *qemu.VM) {
	t.Helper()
	if err := vm.Send("poweroff"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(stepTimeout); err != nil {
		t.Fatalf("power off: %v", err)
	}
}

func wantState(t *testing.T, disk string, want bootstate.State) {
	t.Helper()
	got, err := lab.State(disk)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("boot state = %+v, want %+v", got, want)
	}
}

func stage(t *testing.T, l *lab.Lab, disk string, running bootstate.Slot, version string, v minimal.Variant) {
	t.Helper()
	if _, err := l.Stage(t.Context(), disk, running, version, v, 1); err != nil {
		t.Fatal(err)
	}
}

func TestScenarioFreshInstall(t *testing.T) {
	l := testLab(t)
	forEachFirmware(t, func(t *testing.T, fw qemu.Firmware) {
		disk := installed(t, l)
		vm := boot(t, disk, fw)
		bootedInto(t, vm, "a", "committed", "1.0.0")
		expect(t, vm, `twinroot: nothing-to-do: running committed slot a`)
		expect(t, vm, `twinroot-init: ready`)
		// The guest's updater finds its own disk and reads the running slot
		// from the kernel command line.
		vm.Send("run status -o json")
		expect(t, vm, `"running": "a"`)
		expect(t, vm, `"committed": "a"`)
		expect(t, vm, `twinroot-init: run exit=0`)
		powerOff(t, vm)
		wantState(t, disk, bootstate.Initial())
	})
}

// TestScenarioTrialCommit commits a healthy trial with the machine's
// real-time clock far off, as on a device whose RTC battery died or was
// never set: 1970 under SeaBIOS, 2045 under OVMF. The commit does not look
// at the clock; the updater's own log lines carry the guest's time.
func TestScenarioTrialCommit(t *testing.T) {
	l := testLab(t)
	rtc := map[qemu.Firmware]string{qemu.BIOS: "1970-01-01", qemu.UEFI: "2045-06-01"}
	forEachFirmware(t, func(t *testing.T, fw qemu.Firmware) {
		disk := installed(t, l)
		stage(t, l, disk, "a", "2.0.0", minimal.OK)
		vm := boot(t, disk, fw, "-rtc", "base="+rtc[fw])
		expect(t, vm, `twinroot: booting slot b \(trial, 0 tries left`)
		expect(t, vm, `twinroot-init: watchdog armed \(30s\)`)
		expect(t, vm, `twinroot-init: slot=b version=2\.0\.0 `)
		expect(t, vm, `msg="watchdog taken: fed while the health gate runs" device=/dev/watchdog timeout=30s`)
		expect(t, vm, `time=`+rtc[fw]+`T\S+ level=INFO msg="watchdog disarmed"`)
		expect(t, vm, `twinroot: committed: slot b passed its health check`)
		for i := 0; i < 2; i++ {
			expect(t, vm, `twinroot-init: ready`)
			vm.Send("reboot")
			bootedInto(t, vm, "b", "committed", "2.0.0")
			expect(t, vm, `twinroot: nothing-to-do: running committed slot b`)
		}
		expect(t, vm, `twinroot-init: ready`)
		powerOff(t, vm)
		wantState(t, disk, bootstate.State{Committed: "b", A: bootstate.OK, B: bootstate.OK})
	})
}

func TestScenarioPanicFallsBack(t *testing.T) {
	l := testLab(t)
	forEachFirmware(t, func(t *testing.T, fw qemu.Firmware) {
		disk := installed(t, l)
		stage(t, l, disk, "a", "2.0.0", minimal.Panic)
		vm := boot(t, disk, fw)
		expect(t, vm, `twinroot: booting slot b \(trial, 0 tries left`)
		expect(t, vm, `twinroot-init: slot=b version=2.0.0 variant=panic`)
		expect(t, vm, `Kernel panic`)
		// No user space helps here: GRUB finds the tries used up.
		bootedInto(t, vm, "a", "committed", "1.0.0")
		expect(t, vm, `twinroot: fell-back: trial of slot b failed .*slot b marked bad`)
		expect(t, vm, `twinroot-init: ready`)
		powerOff(t, vm)
		wantState(t, disk, bootstate.State{Committed: "a", A: bootstate.OK, B: bootstate.Bad})
	})
}

// TestScenarioHangFallsBack boots a trial whose init hangs for good: the
// watchdog its init armed resets the machine, and GRUB, finding the trial's
// boots used up, boots the committed slot, whose updater marks the trial bad.
func TestScenarioHangFallsBack(t *testing.T) {
	l := testLab(t)
	forEachFirmware(t, func(t *testing.T, fw qemu.Firmware) {
		disk := installed(t, l)
		stage(t, l, disk, "a", "2.0.0", minimal.Hang)
		vm := boot(t, disk, fw)
		expect(t, vm, `twinroot: booting slot b \(trial, 0 tries left`)
		expect(t, vm, `twinroot-init: watchdog armed \(30s\)`)
		armed := time.Now()
		expect(t, vm, `twinroot-init: slot=b version=2\.0\.0 variant=hang`)
		expect(t, vm, `twinroot-init: hang variant, hanging`)
		// Nobody touches the machine: only the watchdog can end the hang.
		expect(t, vm, `twinroot: booting slot a \(committed`)
		// QEMU's clock is virtual time, which TCG runs a little slower than
		// the host's: the reset cannot come before the timeout.
		if waited := time.Since(armed); waited < 30*time.Second {
			t.Errorf("reset %v after the watchdog was armed, before its 30 s timeout", waited.Round(time.Second))
		} else {
			t.Logf("reset %v after the watchdog was armed (timeout 30 s)", waited.Round(time.Second))
		}
		expect(t, vm, `twinroot-init: slot=a version=1\.0\.0 `)
		expect(t, vm, `twinroot: fell-back: trial of slot b failed .*slot b marked bad`)
		expect(t, vm, `twinroot-init: ready`)
		powerOff(t, vm)
		wantState(t, disk, bootstate.State{Committed: "a", A: bootstate.OK, B: bootstate.Bad})
	})
}

func TestScenarioUnhealthyFallsBack(t *testing.T) {
	l := testLab(t)
	forEachFirmware(t, func(t *testing.T, fw qemu.Firmware) {
		disk := installed(t, l)
		stage(t, l, disk, "a", "2.0.0", minimal.Unhealthy)
		vm := boot(t, disk, fw)
		bootedInto(t, vm, "b", "trial, 0 tries left", "2.0.0")
		expect(t, vm, `twinroot-init: health failed`)
		expect(t, vm, `twinroot: marked-bad: slot b failed its health check`)
		bootedInto(t, vm, "a", "committed", "1.0.0")
		expect(t, vm, `twinroot: nothing-to-do: running committed slot a`)
		expect(t, vm, `twinroot-init: ready`)
		powerOff(t, vm)
		wantState(t, disk, bootstate.State{Committed: "a", A: bootstate.OK, B: bootstate.Bad})
	})
}

// sectorRecorder records the sectors a Save writes.
type sectorRecorder struct {
	f       *os.File
	sectors []sectorWrite
}

type sectorWrite struct {
	off  int64
	data []byte
}

func (r *sectorRecorder) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *sectorRecorder) Sync() error                             { return r.f.Sync() }
func (r *sectorRecorder) WriteAt(p []byte, off int64) (int, error) {
	for i := 0; i < len(p); i += 512 {
		r.sectors = append(r.sectors, sectorWrite{off + int64(i), append([]byte(nil), p[i:min(i+512, len(p))]...)})
	}
	return r.f.WriteAt(p, off)
}

type tornCase struct {
	name    string
	disk    string
	predict bootstate.Slot
}

// tornDisks writes from, records the sector writes of a Save of to, and
// returns one disk per distinct result of cutting the power after every
// sector of it.
func tornDisks(t *testing.T, base string, name string, from, to bootstate.State, seen map[string]bool) []tornCase {
	t.Helper()
	d, err := bootstate.OpenDisk(base)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Save(from); err != nil {
		t.Fatal(err)
	}
	offs := d.Env.Offsets()
	before := make([][]byte, 4)
	for i, off := range offs {
		before[i] = make([]byte, grub.EnvSize)
		d.File.ReadAt(before[i], off)
	}
	rec := &sectorRecorder{f: d.File}
	env, err := grub.OpenEnvStore(rec, d.Layout.ESP.Start)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Save(to.Env()); err != nil {
		t.Fatal(err)
	}
	var cases []tornCase
	for k := 0; k <= len(rec.sectors); k++ {
		for i, off := range offs {
			d.File.WriteAt(before[i], off)
		}
		for _, w := range rec.sectors[:k] {
			d.File.WriteAt(w.data, w.off)
		}
		var key []byte
		for _, off := range offs {
			b := make([]byte, grub.EnvSize)
			d.File.ReadAt(b, off)
			key = append(key, b...)
		}
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		st, err := d.Load()
		if err != nil {
			t.Fatal(err)
		}
		if st != from && st != to {
			t.Fatalf("%s: cut after %d sectors reads %+v, neither %+v nor %+v", name, k, st, from, to)
		}
		slot, _ := st.GrubBoot()
		torn := filepath.Join(t.TempDir(), fmt.Sprintf("%s-%02d.img", name, k))
		if out, err := exec.Command("cp", "--sparse=always", base, torn).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
		cases = append(cases, tornCase{name: fmt.Sprintf("%s/cut%02d", name, k), disk: torn, predict: slot})
	}
	return cases
}

// TestScenarioTornGrubenv cuts the power after every 512-byte sector of
// every boot-state write (prepare, arm, GRUB's countdown, commit, mark bad,
// rollback) and boots real GRUB on each distinct result: it always boots
// slot A or B, the one the Go model of grub.cfg predicts. Cuts inside a
// sector (garbled sectors) are covered without QEMU in package bootstate.
func TestScenarioTornGrubenv(t *testing.T) {
	l := testLab(t)
	base := installed(t, l)
	stage(t, l, base, "a", "2.0.0", minimal.OK) // both slots hold a bootable image
	ok := bootstate.OK
	type transition struct {
		name     string
		from, to bootstate.State
	}
	transitions := []transition{
		{"prepare", bootstate.State{Committed: "a", A: ok, B: ok}, bootstate.State{Committed: "a", A: ok, B: bootstate.Writing}},
		{"arm", bootstate.State{Committed: "a", A: ok, B: bootstate.Writing}, bootstate.State{Committed: "a", Trial: "b", Tries: 1, A: ok, B: ok}},
		{"countdown", bootstate.State{Committed: "a", Trial: "b", Tries: 1, A: ok, B: ok}, bootstate.State{Committed: "a", Trial: "b", Tries: 0, A: ok, B: ok}},
		{"commit", bootstate.State{Committed: "a", Trial: "b", A: ok, B: ok}, bootstate.State{Committed: "b", A: ok, B: ok}},
		{"markbad", bootstate.State{Committed: "a", Trial: "b", A: ok, B: ok}, bootstate.State{Committed: "a", A: ok, B: bootstate.Bad}},
		{"rollback", bootstate.State{Committed: "b", A: ok, B: ok}, bootstate.State{Committed: "a", A: ok, B: ok}},
	}
	seen := map[string]bool{}
	var cases []tornCase
	for _, tr := range transitions {
		cases = append(cases, tornDisks(t, base, tr.name, tr.from, tr.to, seen)...)
	}
	predicted := map[bootstate.Slot]int{}
	for _, c := range cases {
		predicted[c.predict]++
	}
	t.Logf("%d distinct torn disks; GRUB should boot slot a on %d, slot b on %d", len(cases), predicted["a"], predicted["b"])
	if predicted["a"] == 0 || predicted["b"] == 0 {
		t.Errorf("torn disks do not exercise both slots: %v", predicted)
	}
	forEachFirmware(t, func(t *testing.T, fw qemu.Firmware) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				vm := qemu.StartT(t, qemu.Config{Name: string(fw) + "-" + filepath.Base(c.disk), Firmware: fw,
					Drives: []qemu.Drive{{Path: c.disk, Snapshot: true}}})
				line := expect(t, vm, `twinroot: booting slot [ab] \(`)
				want := fmt.Sprintf("booting slot %s (", c.predict)
				if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(line) {
					t.Fatalf("GRUB: %q, want %q", line, want)
				}
				expect(t, vm, fmt.Sprintf(`Command line: .*twinroot\.slot=%s `, c.predict))
				vm.Kill()
			})
		}
	})
}
