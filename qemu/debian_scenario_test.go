package qemu_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/image/examples/debian/services"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/containers"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

// debianStep bounds each expected console line of the Debian system: it
// boots in about 30 s under TCG, its services take longer, and a failing
// health gate waits its whole deadline.
const debianStep = 6 * time.Minute

// debianGate is the health section of the Debian scenario's device.yaml:
// both bundled services must be healthy before a trial is committed.
const debianGate = `health:
  containers: [backend, web]
  deadline: 2m
`

// TestScenarioDebianContainers is issue 9's story on the Debian reference
// system, under SeaBIOS and OVMF: v1 installed, its bundled services come
// up healthy; v2 changes web's image and is taken at boot, tried and
// committed once both services are healthy, fetching little more than the
// changed layer; v3 ships a web that never becomes healthy, fails the
// health gate and falls back to v2, recorded bad. On the way: a deleted
// env file and runtime directory do not stop a restart, a restarted
// updater changes nothing about running services, and the named volume's
// data outlives the update and the fallback.
func TestScenarioDebianContainers(t *testing.T) {
	l := testLab(t)
	s3 := s3test.Start(t, "minio")
	rels := []debianRel{{"1.0.0", 1, false}, {"2.0.0", 2, false}, {"3.0.0", 3, true}}
	for _, r := range rels {
		go l.DebianRelease(t.Context(), r.version, r.serial, services.Options{Broken: r.broken})
	}
	release := func(t *testing.T, r debianRel) string {
		t.Helper()
		dir, err := l.DebianRelease(t.Context(), r.version, r.serial, services.Options{Broken: r.broken})
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	// Both firmwares at once: each guest runs on one core under TCG, and
	// the story is long (four boots and a health gate that waits out its
	// deadline).
	for _, fw := range firmwares {
		t.Run(string(fw), func(t *testing.T) {
			t.Parallel()
			debianScenario(t, l, s3, fw, rels, release)
		})
	}
}

type debianRel struct {
	version string
	serial  uint64
	broken  bool
}

func debianScenario(t *testing.T, l *lab.Lab, s3 *s3test.Server, fw qemu.Firmware, rels []debianRel, release func(*testing.T, debianRel) string) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("scenario %s took %v", t.Name(), time.Since(start).Round(100*time.Millisecond)) })
	step := func(format string, a ...any) {
		t.Logf("%6.1fs  %s", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	v1, v2, v3 := rels[0], rels[1], rels[2]
	prefix := "debian-" + string(fw)
	store, err := source.OpenStore(t.Context(), s3.URL(prefix), source.Options{
		Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(r debianRel) {
		t.Helper()
		if _, err := l.Publish(t.Context(), store, release(t, r)); err != nil {
			t.Fatal(err)
		}
		step("published %s (serial %d) to %s", r.version, r.serial, s3.URL(prefix))
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "device.yaml")
	if err := os.WriteFile(cfg, []byte(lab.DeviceYAML(s3, prefix, debianGate)), 0o600); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	if err := l.InstallDebian(t.Context(), disk, release(t, v1), cfg); err != nil {
		t.Fatal(err)
	}
	step("installed %s", v1.version)

	boots := newBootSeries(t, "debian-"+string(fw), fw, disk, s3.Endpoint, debianStep)
	boots.cfg.MemoryMB = 2048
	var vm *qemu.VM
	nextBoot := func() {
		t.Helper()
		vm = boots.next()
	}
	ids := map[string]map[string]string{} // version → service → image ID
	for _, r := range rels {
		ids[r.version] = bundleIDs(t, release(t, r))
	}

	// Boot 1: v1, committed at install; both services come up healthy,
	// and the channel has nothing newer.
	publish(v1)
	nextBoot()
	dexpect(t, vm, `twinroot: booting slot a \(committed`)
	g := login(t, vm)
	g.updaterBoot(t, `twinroot: nothing-to-do: running committed slot a`, `up-to-date`)
	services := g.waitHealthy(t, ids[v1.version])
	step("v1: services healthy: %s", describeServices(services))
	machineID := g.layout(t)
	starts := g.volumeStarts(t)
	token := g.run(t, "cat /run/twinroot/containers/web.env | grep -c '^TOKEN=[0-9a-f]\\{64\\}$'; stat -c %a /data/twinroot/containers/secrets/web_token")
	if !strings.Contains(token, "1\n600") {
		t.Errorf("web's env file and secret: %q, want one 64-hex TOKEN line and a 0600 secret", token)
	}

	// A deleted env file and runtime directory do not stop a restart.
	before := g.run(t, "systemctl show -P MainPID web.service")
	g.run(t, "rm -rf "+containers.RuntimeEnvDir+" && systemctl restart web.service")
	g.waitHealthy(t, ids[v1.version])
	if after := g.run(t, "systemctl show -P MainPID web.service"); after == before {
		t.Errorf("web's main PID %s did not change across its restart", before)
	}
	if out := g.run(t, "test -s /run/twinroot/containers/web.env && echo rendered"); !strings.Contains(out, "rendered") {
		t.Errorf("web.env was not rendered again on restart: %q", out)
	}
	step("web restarted with its runtime directory deleted; env file rendered again")

	// A restarted updater changes nothing about running services.
	pids := g.run(t, "systemctl show -P MainPID backend.service web.service")
	g.run(t, "systemctl restart twinroot-boot.service")
	g.updaterBoot(t, `twinroot: nothing-to-do: running committed slot a`, `up-to-date`)
	if again := g.run(t, "systemctl show -P MainPID backend.service web.service"); again != pids {
		t.Errorf("services' main PIDs changed when the updater restarted: %q, then %q", pids, again)
	}
	step("restarted updater boot: services untouched (PIDs %s)", strings.Join(strings.Fields(pids), ", "))

	// v2 changes web's image: the timer's update service takes it (and
	// reboots into its trial), which commits it once both services are
	// healthy.
	publish(v2)
	if err := vm.Send("systemctl start twinroot-update.service"); err != nil {
		t.Fatal(err)
	}
	line := dexpect(t, vm, appliedLine("b", v2.version, v2.serial))
	step("the update service applied v2: %s", strings.TrimSpace(line))
	fetched, _ := fetchedBytes(t, line)
	reportDelta(t, release(t, v1), release(t, v2), fetched)
	nextBoot()
	dexpect(t, vm, `twinroot: booting slot b \(trial`)
	dexpect(t, vm, `twinroot-initramfs: watchdog armed`)
	g = login(t, vm)
	// systemd took the watchdog over from the initramfs and feeds it.
	g.updaterBoot(t, `msg="watchdog held by PID 1, which feeds it"`, `twinroot: committed: slot b passed its health check`)
	if st := strings.TrimSpace(lastLine(g.run(t, "cat /sys/class/watchdog/watchdog0/state"))); st != "active" {
		t.Errorf("watchdog0 is %q after the trial's commit, want active (fed by systemd)", st)
	}
	services = g.waitHealthy(t, ids[v2.version])
	step("v2 committed after its services were healthy: %s", describeServices(services))
	g.wantStatus(t, "b", "b", slotWant{bootstate.OK, v1.version}, slotWant{bootstate.OK, v2.version})
	if id := g.layout(t); id != machineID {
		t.Errorf("machine-id %s on slot b, %s on slot a: it must live on the data partition", id, machineID)
	}
	if n := g.volumeStarts(t); n <= starts {
		t.Errorf("backend's volume counts %d starts after the update, %d before: its data did not survive", n, starts)
	} else {
		starts = n
	}

	// v3's web never becomes healthy: taken at boot, it fails the health
	// gate, and the device falls back to v2.
	publish(v3)
	if err := vm.Send("systemctl reboot"); err != nil {
		t.Fatal(err)
	}
	nextBoot()
	dexpect(t, vm, `twinroot: booting slot b \(committed`)
	line = dexpect(t, vm, appliedLine("a", v3.version, v3.serial))
	step("updater boot applied v3: %s", strings.TrimSpace(line))
	nextBoot()
	dexpect(t, vm, `twinroot: booting slot a \(trial`)
	dexpect(t, vm, `twinroot: marked-bad: slot a failed its health check`)
	step("v3 failed the health gate (web never healthy); slot a marked bad")
	nextBoot()
	dexpect(t, vm, `twinroot: booting slot b \(committed`)
	g = login(t, vm)
	g.updaterBoot(t, `twinroot: nothing-to-do: running committed slot b`, `refused: .*3\.0\.0 failed its trial boot here before`)
	services = g.waitHealthy(t, ids[v2.version])
	step("back on v2, services healthy: %s", describeServices(services))
	s := g.wantStatus(t, "b", "b", slotWant{bootstate.Bad, v3.version}, slotWant{bootstate.OK, v2.version})
	if !slices.Contains(s.BadVersions, v3.version) {
		t.Errorf("bad versions %v, want %s", s.BadVersions, v3.version)
	}
	if n := g.volumeStarts(t); n <= starts {
		t.Errorf("backend's volume counts %d starts after the fallback, %d before", n, starts)
	}
	if err := vm.Send("systemctl poweroff"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(debianStep); err != nil {
		t.Fatalf("power off: %v", err)
	}
	wantState(t, disk, bootstate.State{Committed: "b", A: bootstate.Bad, B: bootstate.OK})
	step("powered off after %d boots; scenario done", boots.boots)
}

func dexpect(t *testing.T, vm *qemu.VM, pattern string) string {
	t.Helper()
	line, err := vm.Expect(pattern, debianStep)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// guest is a root shell on the Debian guest's console that fails the test
// on an error.
type guest struct{ sh *qemu.Shell }

func login(t *testing.T, vm *qemu.VM) guest {
	t.Helper()
	sh, err := qemu.Login(vm, "twinroot", debianStep)
	if err != nil {
		t.Fatal(err)
	}
	return guest{sh}
}

func (g guest) run(t *testing.T, cmd string) string {
	t.Helper()
	out, err := g.sh.Run(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// updaterBoot waits until updater boot has finished and checks that its
// journal has each of the lines.
func (g guest) updaterBoot(t *testing.T, lines ...string) {
	t.Helper()
	deadline := time.Now().Add(debianStep)
	for {
		out, _, err := g.sh.Exec("systemctl show -P ActiveState twinroot-boot.service")
		if err != nil {
			t.Fatal(err)
		}
		if st := strings.TrimSpace(lastLine(out)); st == "active" || st == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("updater boot still running after %v", debianStep)
		}
		time.Sleep(3 * time.Second)
	}
	journal, _, err := g.sh.Exec("journalctl -b -o cat --no-pager -u twinroot-boot.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if !regexp.MustCompile(l).MatchString(journal) {
			t.Errorf("updater boot's journal has no line like %q:\n%s", l, journal)
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// waitHealthy waits until `updater containers status -o json` shows every
// service active, healthy and running the image of want.
func (g guest) waitHealthy(t *testing.T, want map[string]string) []containers.Status {
	t.Helper()
	deadline := time.Now().Add(debianStep)
	for {
		st, err := g.containersStatus(t)
		ok := err == nil && len(st) == len(want)
		for _, s := range st {
			ok = ok && s.State == "active" && s.Health == "healthy" && s.ImageID == want[s.Service] && s.Required
		}
		if ok {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("services not healthy with the images %v: %+v (%v)", want, st, err)
		}
		time.Sleep(5 * time.Second)
	}
}

// containersStatus reads `updater containers status -o json`; a line the
// system printed on the console meanwhile makes it an error to retry.
func (g guest) containersStatus(t *testing.T) ([]containers.Status, error) {
	t.Helper()
	out := g.run(t, "updater containers status -o json")
	var st []containers.Status
	if err := json.Unmarshal([]byte(qemu.JSON(out, "[", "]")), &st); err != nil {
		return nil, fmt.Errorf("containers status JSON: %v\n%s", err, out)
	}
	return st, nil
}

// layout checks what the Debian system keeps where: the root read-only,
// the data partition (ext4) on /data, and the journal and container
// storage on it; it returns the machine-id, which must survive updates.
func (g guest) layout(t *testing.T) string {
	t.Helper()
	out := g.run(t, `echo "ID=$(cat /etc/machine-id) DATA=$(findmnt -n -o FSTYPE /data) ROOT=$(findmnt -n -o OPTIONS / | cut -d, -f1) DEV=$(stat -c %d /data)-$(stat -c %d /var/lib/containers)-$(stat -c %d /var/log/journal)"`)
	m := regexp.MustCompile(`ID=([0-9a-f]{32}) DATA=(\S*) ROOT=(\S*) DEV=(\d+)-(\d+)-(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("layout: %q", out)
	}
	if m[2] != "ext4" || m[3] != "ro" || m[4] != m[5] || m[4] != m[6] {
		t.Errorf("layout: /data %s, / %s, devices of /data, /var/lib/containers, /var/log/journal %s-%s-%s; want ext4, ro, one device",
			m[2], m[3], m[4], m[5], m[6])
	}
	return m[1]
}

// volumeStarts counts the starts backend recorded in its named volume.
func (g guest) volumeStarts(t *testing.T) int {
	t.Helper()
	out := g.run(t, "wc -l < /var/lib/containers/storage/volumes/backend-data/_data/starts")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("backend's start count: %q", out)
	}
	return n
}

func (g guest) wantStatus(t *testing.T, running, committed bootstate.Slot, a, b slotWant) guestStatus {
	t.Helper()
	out := g.run(t, "updater status -o json")
	var s guestStatus
	if err := json.Unmarshal([]byte(qemu.JSON(out, "{", "}")), &s); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	bad := false
	check := func(what string, got, want any) {
		if got != want {
			t.Errorf("status %s = %v, want %v", what, got, want)
			bad = true
		}
	}
	check("running", s.Running, running)
	check("committed", s.Committed, committed)
	for name, w := range map[string]slotWant{"a": a, "b": b} {
		check("slot "+name+" state", s.Slots[name].State, w.state)
		check("slot "+name+" version", s.Slots[name].Version, w.version)
	}
	if bad {
		t.Logf("status JSON:\n%s", out)
	}
	return s
}

func describeServices(st []containers.Status) string {
	var d []string
	for _, s := range st {
		d = append(d, fmt.Sprintf("%s %s/%s %s (%s)", s.Service, s.State, s.SubState, s.Health, s.ImageID[:19]))
	}
	return strings.Join(d, "; ")
}

// bundleIDs reads the services' image IDs from a release's slot image.
func bundleIDs(t *testing.T, dir string) map[string]string {
	t.Helper()
	b, err := lab.Bundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, s := range b.Services {
		ids[s.Name] = s.ImageID
	}
	return ids
}

// reportDelta prints what v1 -> v2 cost on the wire beside the layers that
// changed and the object, and holds it to the target: under 5 %
// of the object.
func reportDelta(t *testing.T, oldDir, newDir string, fetched int64) {
	t.Helper()
	d, err := lab.DeltaOf(oldDir, newDir, fetched)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("delta v1 -> v2: fetched %d bytes; changed layers %v: %d bytes gzipped; object %d bytes; fetched/object %.2f%%",
		d.Fetched, d.Layers, d.Gzipped, d.Object, d.Percent())
	if d.Percent() >= 5 {
		t.Errorf("v1 -> v2 fetched %.2f%% of the object, want under 5%%", d.Percent())
	}
}
