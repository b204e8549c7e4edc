package qemu_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/image/examples/minimal"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

// guestStatus is the part of `updater status -o json` the scenario checks.
type guestStatus struct {
	Running   bootstate.Slot `json:"running"`
	Committed bootstate.Slot `json:"committed"`
	Trial     bootstate.Slot `json:"trial"`
	Slots     map[string]struct {
		State   bootstate.SlotState `json:"state"`
		Version string              `json:"version"`
	} `json:"slots"`
	BadVersions []string `json:"bad_versions"`
	LastCheck   *struct {
		Outcome string `json:"outcome"`
		Version string `json:"version"`
	} `json:"last_check"`
}

// slotWant is what one slot must look like in the status.
type slotWant struct {
	state   bootstate.SlotState
	version string
}

// TestScenarioUpdateFromMinIO is issue 4's end-to-end story on the minimal
// system, against a real MinIO on the host that the guest reaches through
// restricted user networking with one guestfwd: v1 installed; v2 published
// and taken by the guest at boot, tried and committed; v3 (fails its health
// check) published, tried, marked bad and fallen back from, then refused
// without a fetch; v4 published and committed. The guest's status JSON is
// checked after every step.
func TestScenarioUpdateFromMinIO(t *testing.T) {
	l := testLab(t)
	s3 := s3test.Start(t, "minio")

	// Every release starts building at once; v3 and v4 finish in the
	// background while the first guests boot.
	for _, r := range []rel{v1, v2, v3, v4} {
		go l.Release(t.Context(), r.version, r.serial, r.variant)
	}
	release := func(t *testing.T, r rel) string {
		t.Helper()
		dir, err := l.Release(t.Context(), r.version, r.serial, r.variant)
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}

	// Under both firmwares, side by side: the guest's network and the
	// trial boots after an update go through OVMF's drivers too (about
	// 2.5 minutes each under TCG, one core each).
	for _, fw := range firmwares {
		t.Run(string(fw), func(t *testing.T) {
			t.Parallel()
			updateScenario(t, l, s3, fw, release)
		})
	}
}

// rel is one release of the scenario.
type rel struct {
	version string
	serial  uint64
	variant minimal.Variant
}

var (
	v1 = rel{"1.0.0", 1, minimal.OK}
	v2 = rel{"2.0.0", 2, minimal.OK}
	v3 = rel{"3.0.0", 3, minimal.Unhealthy}
	v4 = rel{"4.0.0", 4, minimal.OK}
)

func updateScenario(t *testing.T, l *lab.Lab, s3 *s3test.Server, fw qemu.Firmware, release func(*testing.T, rel) string) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("scenario %s took %v", t.Name(), time.Since(start).Round(100*time.Millisecond)) })
	step := func(format string, a ...any) {
		t.Logf("%6.1fs  %s", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	// A prefix per firmware: each run starts from an empty channel.
	prefix := "fleet-" + string(fw)
	store, err := source.OpenStore(t.Context(), s3.URL(prefix), source.Options{
		Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(r rel) {
		t.Helper()
		if _, err := l.Publish(t.Context(), store, release(t, r)); err != nil {
			t.Fatal(err)
		}
		step("published %s (serial %d, %s) to %s", r.version, r.serial, r.variant, s3.URL(prefix))
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "device.yaml")
	writeDeviceConfig(t, cfg, s3, prefix)
	disk := filepath.Join(dir, "disk.img")
	if err := l.InstallRelease(t.Context(), disk, release(t, v1), cfg); err != nil {
		t.Fatal(err)
	}
	step("installed %s with a device.yaml pointing at http://%s", v1.version, lab.GuestStore)
	publish(v2)

	boots := newBootSeries(t, "update-"+string(fw), fw, disk, s3.Endpoint, stepTimeout)
	var vm *qemu.VM
	nextBoot := func() {
		t.Helper()
		vm = boots.next()
	}

	// v1 finds v2 at boot, writes it into slot b and reboots by itself.
	nextBoot()
	bootedWithData(t, vm, "a", "committed", v1.version)
	expect(t, vm, `twinroot: nothing-to-do: running committed slot a`)
	line := expect(t, vm, appliedLine("b", "2.0.0", 2))
	step("guest applied v2 at boot: %s", strings.TrimSpace(line))
	expect(t, vm, `twinroot: rebooting into the trial slot`)
	nextBoot()
	bootedWithData(t, vm, "b", "trial, 0 tries left", v2.version)
	expect(t, vm, `twinroot: committed: slot b passed its health check`)
	expect(t, vm, `twinroot-init: updater boot exit=0`)
	expect(t, vm, `twinroot-init: ready`)
	step("v2 passed its trial boot and is committed")
	wantStatus(t, vm, "b", "b", slotWant{bootstate.OK, v1.version}, slotWant{bootstate.OK, v2.version})

	// v3 fails its health check: marked bad, back to v2.
	publish(v3)
	vm.Send("reboot")
	nextBoot()
	bootedWithData(t, vm, "b", "committed", v2.version)
	expect(t, vm, `twinroot: nothing-to-do: running committed slot b`)
	line = expect(t, vm, appliedLine("a", "3.0.0", 3))
	step("guest applied v3 at boot: %s", strings.TrimSpace(line))
	expect(t, vm, `twinroot: rebooting into the trial slot`)
	nextBoot()
	bootedWithData(t, vm, "a", "trial, 0 tries left", v3.version)
	expect(t, vm, `twinroot-init: health failed`)
	expect(t, vm, `twinroot: marked-bad: slot a failed its health check`)
	expect(t, vm, `twinroot: rebooting`)
	step("v3 failed its health check; slot a marked bad")
	nextBoot()
	bootedWithData(t, vm, "b", "committed", v2.version)
	expect(t, vm, `twinroot: nothing-to-do: running committed slot b`)
	line = expect(t, vm, `refused: .*3\.0\.0 failed its trial boot here before`)
	expect(t, vm, `twinroot-init: updater boot exit=[1-9]`)
	expect(t, vm, `twinroot-init: ready`)
	if con := vm.Console(); strings.Contains(con, "written and verified") || strings.Contains(con, "rebooting") {
		t.Errorf("the boot after the fallback wrote a slot or rebooted:\n%s", con)
	}
	step("back on v2; v3 refused, not fetched: %s", strings.TrimSpace(line))
	wantStatus(t, vm, "b", "b", slotWant{bootstate.Bad, v3.version}, slotWant{bootstate.OK, v2.version})
	// The updater state on the data partition remembers v3 as bad.
	if s, raw := guestStatusJSON(t, vm); !slices.Contains(s.BadVersions, v3.version) || s.LastCheck == nil || s.LastCheck.Outcome != "refused" {
		t.Errorf("status after the refusal: bad versions %v, last check %+v, want %s bad and refused\n%s", s.BadVersions, s.LastCheck, v3.version, raw)
	}
	// Asked again, the guest still refuses v3 without touching a slot.
	vm.Send("run check")
	expect(t, vm, `refused: .*3\.0\.0 failed its trial boot here before`)
	expect(t, vm, `twinroot-init: run exit=[1-9]`)

	// v4 is newer than the bad v3: accepted, tried and committed.
	publish(v4)
	vm.Send("reboot")
	nextBoot()
	bootedWithData(t, vm, "b", "committed", v2.version)
	expect(t, vm, `twinroot: nothing-to-do: running committed slot b`)
	line = expect(t, vm, appliedLine("a", "4.0.0", 4))
	step("guest applied v4 at boot: %s", strings.TrimSpace(line))
	expect(t, vm, `twinroot: rebooting into the trial slot`)
	nextBoot()
	bootedWithData(t, vm, "a", "trial, 0 tries left", v4.version)
	expect(t, vm, `twinroot: committed: slot a passed its health check`)
	expect(t, vm, `twinroot-init: ready`)
	step("v4 passed its trial boot and is committed")
	wantStatus(t, vm, "a", "a", slotWant{bootstate.OK, v4.version}, slotWant{bootstate.OK, v2.version})
	powerOff(t, vm)
	wantState(t, disk, bootstate.State{Committed: "a", A: bootstate.OK, B: bootstate.OK})
	step("powered off after %d boots; scenario done", boots.boots)
}

// writeDeviceConfig writes the device.yaml the installer seeds: the store
// as the guest reaches it, the trial and reboot policy of the scenario, and
// the updater's state on the data partition.
func writeDeviceConfig(t *testing.T, path string, s3 *s3test.Server, prefix string) {
	t.Helper()
	yaml := lab.DeviceYAML(s3, prefix, "")
	// Credentials: not readable by group or others, or the updater refuses it.
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// bootedWithData is bootedInto with init's line about the data partition,
// which the updater needs for its config and state.
func bootedWithData(t *testing.T, vm *qemu.VM, slot, mode, version string) {
	t.Helper()
	expect(t, vm, fmt.Sprintf(`twinroot: booting slot %s \(%s`, slot, regexp.QuoteMeta(mode)))
	expect(t, vm, `twinroot-init: data partition [a-z0-9]+ on /data`)
	expect(t, vm, fmt.Sprintf(`twinroot-init: slot=%s version=%s `, slot, regexp.QuoteMeta(version)))
}

// guestStatusJSON runs `updater status -o json` on the guest's console and
// decodes what it printed.
func guestStatusJSON(t *testing.T, vm *qemu.VM) (guestStatus, string) {
	t.Helper()
	if err := vm.Send("run status -o json"); err != nil {
		t.Fatal(err)
	}
	expect(t, vm, `twinroot-init: run exit=0`)
	con := strings.ReplaceAll(vm.Console(), "\r", "")
	con = con[:strings.LastIndex(con, "twinroot-init: run exit=0")]
	// The document is the last one starting with "{" at the start of a line.
	open, end := strings.LastIndex(con, "\n{"), strings.LastIndex(con, "\n}")
	if open < 0 || end < open {
		t.Fatalf("no status JSON on the console before the exit line:\n%s", con[max(0, len(con)-2000):])
	}
	raw := con[open+1 : end+2]
	var s guestStatus
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, raw)
	}
	return s, raw
}

func wantStatus(t *testing.T, vm *qemu.VM, running, committed bootstate.Slot, a, b slotWant) {
	t.Helper()
	s, raw := guestStatusJSON(t, vm)
	bad := false
	check := func(what string, got, want any) {
		if got != want {
			t.Errorf("status %s = %v, want %v", what, got, want)
			bad = true
		}
	}
	check("running", s.Running, running)
	check("committed", s.Committed, committed)
	check("trial", s.Trial, bootstate.Slot(""))
	for name, w := range map[string]slotWant{"a": a, "b": b} {
		check("slot "+name+" state", s.Slots[name].State, w.state)
		check("slot "+name+" version", s.Slots[name].Version, w.version)
	}
	if bad {
		t.Logf("status JSON:\n%s", raw)
	}
}
