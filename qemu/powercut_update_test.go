package qemu_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/image/examples/debian/services"
	"github.com/twinroot/twinroot/image/examples/minimal"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

const (
	// defaultPowerCuts is how many times each guest loses power while it
	// applies, unless cutsEnv says otherwise.
	defaultPowerCuts = 4
	// payloadSize is the random (incompressible, never in v1) file v2
	// carries, so that the guest fetches for several seconds under TCG.
	payloadSize = 24 << 20
	// throttleRate bounds how fast MinIO's answers reach the guest, in
	// bytes per second.
	throttleRate = 2 << 20
	// seedEnv replays the cut moments of an earlier run.
	seedEnv = "TWINROOT_POWERCUT_SEED"
	// cutsEnv sets the power cuts per firmware (the reliability campaign
	// runs 20 or more).
	cutsEnv = "TWINROOT_POWERCUT_CUTS"
	// defaultDebianPowerCuts and debianCutsEnv are the same for the Debian
	// system, whose boots take longer.
	defaultDebianPowerCuts = 2
	debianCutsEnv          = "TWINROOT_POWERCUT_DEBIAN_CUTS"
	// debianFetchTime is about how long the throttle stretches the Debian
	// system's fetch of v2, whatever its size.
	debianFetchTime = 16 * time.Second
	// debianCopyRate is about how fast a Debian guest under TCG copies
	// the chunks of v2 that slot a has (nearly all): its 150 MB image in
	// about a minute, two guests side by side.
	debianCopyRate = 3 << 20
)

// hostStatus is the part of the host's `updater status -o json --disk`
// that the scenario checks after each cut.
type hostStatus struct {
	Committed bootstate.Slot `json:"committed"`
	Trial     bootstate.Slot `json:"trial"`
	NextBoot  bootstate.Slot `json:"next_boot"`
	Slots     map[string]struct {
		State   bootstate.SlotState `json:"state"`
		Version string              `json:"version"`
	} `json:"slots"`
	Apply *struct {
		Slot    bootstate.Slot `json:"slot"`
		Done    int64          `json:"bytes_done"`
		Total   int64          `json:"bytes_total"`
		Percent float64        `json:"percent"`
	} `json:"apply"`
}

// TestScenarioPowerCutDuringUpdate is issue 4's power cuts under QEMU,
// under SeaBIOS and OVMF side by side: v1 is installed with a device.yaml,
// v2 (v1 plus a random payload, so that the apply lasts) is published to
// MinIO, which the guest reaches through a throttle, and the guest takes v2
// at boot. While it applies, QEMU is killed at a seeded random moment after
// the updater's "applying" record, 4 times per firmware (TWINROOT_POWERCUT_CUTS
// sets the count; one may miss its apply). After each cut the disk file
// must hold committed slot a and slot b "writing" (GRUB boots a, never the
// half-written b) or, cut just after the arm, a verified b armed for its
// trial; the data partition, its journal replayed as the next mount would,
// must pass e2fsck -fn; the host's `updater status` on the disk must show
// the journal's progress, which never goes back; and the next boot must
// come up on slot a. Then the guest is left alone: it resumes from the
// journal, fetches only the new bytes after it, reboots into v2's trial
// and commits it.
func TestScenarioPowerCutDuringUpdate(t *testing.T) {
	l := testLab(t)
	s3 := s3test.Start(t, "minio")
	seed, cuts := powerCutParams(t, cutsEnv, defaultPowerCuts)

	// v1 (the lab's, shared with the other scenarios) and v2 build at once.
	v2done := make(chan error, 1)
	v2dir := filepath.Join(t.TempDir(), "release-2.0.0")
	go func() { v2done <- payloadRelease(t.Context(), l, v2dir, "2.0.0", 2, payloadSize, seed) }()
	v1dir, err := l.Release(t.Context(), v1.version, v1.serial, v1.variant)
	if err := errors.Join(err, <-v2done); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s and %s (%d MiB random payload)", v1.version, "2.0.0", payloadSize>>20)
	sys := cutSystem{
		name: "powercut", v1: v1dir, v2: v2dir, v1Version: v1.version, rate: throttleRate, timeout: stepTimeout,
		install: func(ctx context.Context, disk, cfg string) error { return l.InstallRelease(ctx, disk, v1dir, cfg) },
		booted: func(t *testing.T, vm *qemu.VM, slot, mode, version string) {
			bootedWithData(t, vm, slot, mode, version)
		},
		commit: func(t *testing.T, vm *qemu.VM) {
			expect(t, vm, `twinroot: committed: slot b passed its health check`)
			expect(t, vm, `twinroot-init: ready`)
			wantStatus(t, vm, "b", "b", slotWant{bootstate.OK, v1.version}, slotWant{bootstate.OK, "2.0.0"})
			powerOff(t, vm)
		},
	}
	forEachFirmware(t, func(t *testing.T, fw qemu.Firmware) {
		powerCutScenario(t, l, s3, fw, sys, cuts, rand.New(rand.NewPCG(seed, firmwareStream[fw])))
	})
}

// TestScenarioDebianPowerCut is TestScenarioPowerCutDuringUpdate on the
// Debian reference system, under SeaBIOS and OVMF side by side: systemd,
// podman and its services write to the data partition while the boot
// service applies v2 (a new web image; nearly every chunk is copied from
// slot a) from MinIO through a throttle that stretches its fetch to about
// debianFetchTime, and QEMU is killed at a seeded random moment of it, 2
// times per firmware
// (TWINROOT_POWERCUT_DEBIAN_CUTS sets the count). After each cut the same
// checks hold; then the guest resumes, reboots into v2's trial and commits
// it once both services are healthy.
func TestScenarioDebianPowerCut(t *testing.T) {
	l := testLab(t)
	s3 := s3test.Start(t, "minio")
	seed, cuts := powerCutParams(t, debianCutsEnv, defaultDebianPowerCuts)
	dirs := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, v := range []string{"1.0.0", "2.0.0"} {
		wg.Go(func() { dirs[i], errs[i] = l.DebianRelease(t.Context(), v, uint64(i+1), services.Options{}) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	fresh, _ := freshFetch(t, dirs[0], dirs[1])
	rate := max(fresh/int64(debianFetchTime/time.Second), 16<<10)
	t.Logf("built the Debian system's 1.0.0 and 2.0.0: a fresh apply fetches %d bytes, at %d bytes/s", fresh, rate)
	sys := cutSystem{
		name: "debian-powercut", v1: dirs[0], v2: dirs[1], v1Version: "1.0.0", gate: debianGate,
		rate: rate, copyRate: debianCopyRate, timeout: debianStep, memoryMB: 2048, extraArgs: watchdogArgs,
		install: func(ctx context.Context, disk, cfg string) error { return l.InstallDebian(ctx, disk, dirs[0], cfg) },
		booted: func(t *testing.T, vm *qemu.VM, slot, mode, _ string) {
			dexpect(t, vm, fmt.Sprintf(`twinroot: booting slot %s \(%s`, slot, regexp.QuoteMeta(mode)))
		},
		commit: func(t *testing.T, vm *qemu.VM) {
			// The login prompt comes before the gate's end.
			g := login(t, vm)
			g.updaterBoot(t, `twinroot: committed: slot b passed its health check`)
			g.wantStatus(t, "b", "b", slotWant{bootstate.OK, "1.0.0"}, slotWant{bootstate.OK, "2.0.0"})
			if err := vm.Send("systemctl poweroff"); err != nil {
				t.Fatal(err)
			}
			if err := vm.Wait(debianStep); err != nil {
				t.Fatalf("power off: %v", err)
			}
		},
	}
	forEachFirmware(t, func(t *testing.T, fw qemu.Firmware) {
		powerCutScenario(t, l, s3, fw, sys, cuts, rand.New(rand.NewPCG(seed, firmwareStream[fw])))
	})
}

// firmwareStream gives each firmware's guest its own stream of cut
// moments from one seed.
var firmwareStream = map[qemu.Firmware]uint64{qemu.BIOS: 0x7769_6e72_6f6f_74, qemu.UEFI: 0x7769_6e72_6f6f_75}

// powerCutParams reads the seed (seedEnv, or now) and the cuts per
// firmware (env, or def) of a power-cut scenario, and logs them.
func powerCutParams(t *testing.T, env string, def int) (seed uint64, cuts int) {
	t.Helper()
	seed = uint64(time.Now().UnixNano())
	if s := os.Getenv(seedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, s, err)
		}
	}
	cuts = def
	if s := os.Getenv(env); s != "" {
		var err error
		if cuts, err = strconv.Atoi(s); err != nil || cuts < 2 {
			t.Fatalf("%s=%q: want a count of at least 2", env, s)
		}
	}
	t.Logf("seed %d (%s=%d replays these cut moments), %d cuts per firmware", seed, seedEnv, seed, cuts)
	return seed, cuts
}

// cutSystem is what powerCutScenario needs of a reference system: its two
// releases, how to install the first, its guest, and the console lines of
// its boots.
type cutSystem struct {
	name      string // of the guests and the store prefix
	v1, v2    string // release build directories
	v1Version string
	gate      string        // device.yaml's health section
	rate      int64         // throttle of the store's answers, bytes per second
	copyRate  int64         // about how fast the guest copies chunks from slot a, bytes per second; 0: the fetch is longer
	timeout   time.Duration // bound of each expected console line
	memoryMB  int
	extraArgs []string
	install   func(ctx context.Context, disk, cfg string) error
	// booted expects the console lines of a boot of slot in mode (as
	// GRUB names it) running version, up to where its updater runs.
	booted func(t *testing.T, vm *qemu.VM, slot, mode, version string)
	// commit expects the trial of slot b to commit 2.0.0, and powers off.
	commit func(t *testing.T, vm *qemu.VM)
}

// powerCutScenario is one firmware's run of a power-cut scenario: powerCuts
// cuts whose moments rng draws.
func powerCutScenario(t *testing.T, l *lab.Lab, s3 *s3test.Server, fw qemu.Firmware, sys cutSystem, powerCuts int, rng *rand.Rand) {
	start := time.Now()
	step := func(format string, a ...any) {
		t.Logf("%6.1fs  %s", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	expect := func(t *testing.T, vm *qemu.VM, pattern string) string {
		t.Helper()
		line, err := vm.Expect(pattern, sys.timeout)
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	prefix := sys.name + "-" + string(fw)
	store, err := source.OpenStore(t.Context(), s3.URL(prefix), source.Options{
		Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "device.yaml")
	// Credentials: not readable by group or others, or the updater refuses it.
	if err := os.WriteFile(cfg, []byte(lab.DeviceYAML(s3, prefix, sys.gate)), 0o600); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	if err := sys.install(t.Context(), disk, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Publish(t.Context(), store, sys.v2); err != nil {
		t.Fatal(err)
	}
	fresh, newChunks := freshFetch(t, sys.v1, sys.v2)
	imageSize := readIndex(t, sys.v2).Size
	step("installed %s; published 2.0.0: a fresh apply fetches about %d bytes (%d new chunks)", sys.v1Version, fresh, len(newChunks))

	// The guest reaches MinIO through a throttle, so its fetch takes
	// seconds whatever the load of the host, and the cuts can aim at it.
	fwd, err := lab.Forward(throttle(t, s3.Endpoint, sys.rate))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Close() })
	boots := 0
	bootVM := func(name string) *qemu.VM {
		boots++
		return qemu.StartT(t, qemu.Config{Name: fmt.Sprintf("%s-%s-%d-%s", sys.name, fw, boots, name), Firmware: fw,
			Drives: []qemu.Drive{{Path: disk}}, NoReboot: true, MemoryMB: sys.memoryMB, ExtraArgs: sys.extraArgs,
			NetDev: "user,id=n,restrict=on," + fwd.GuestFwd(lab.GuestStore)})
	}
	const applyingLine = `msg=applying version=2\.0\.0 slot=b`
	writtenLine := appliedLine("b", "2.0.0", 2)

	// Each cut lands at a random moment of what is left of its run: the
	// scan of slot a and the copy of the chunks it has that come first
	// (about prefetchTime), then the fetch of the new chunks not yet
	// journaled (at sys.rate at most, so it lasts at least fetchLeft; on
	// a system whose update is mostly chunks slot a has, at least the
	// copy of what is not journaled yet at sys.copyRate), then the
	// read-back of slot b. All but the last cut land after
	// scanTime, in an equal share of the fetch left (of k cuts to go, the
	// first 1/k), so each of them finds an apply to cut however fast the
	// guest scans, and most find a journal that moved since the last; the
	// last one draws from the whole run (the read-back about verifyTime),
	// and may miss it: one cut to spare.
	const scanTime, prefetchTime, verifyTime = 2 * time.Second, 4 * time.Second, 2 * time.Second
	var journaled int64 // raw bytes the journal records after the last cut
	cuts, armedByCut := 0, false
	var vm *qemu.VM
	var line string
	var applying time.Time
	for cuts < powerCuts {
		vm = bootVM(fmt.Sprintf("cut%d", cuts+1))
		sys.booted(t, vm, "a", "committed", sys.v1Version)
		expect(t, vm, applyingLine)
		applying = time.Now()
		fetchLeft := time.Duration(float64(bytesAfter(newChunks, journaled)) / float64(sys.rate) * float64(time.Second))
		if sys.copyRate > 0 {
			fetchLeft = max(fetchLeft, time.Duration(float64(imageSize-journaled)/float64(sys.copyRate)*float64(time.Second)))
		}
		from, window := scanTime, fetchLeft/time.Duration(powerCuts-cuts)
		if cuts == powerCuts-1 {
			from, window = 0, prefetchTime+fetchLeft+verifyTime
		}
		at := from + time.Duration(rng.Float64()*float64(window))
		var err error
		_, line, err = vm.ExpectAny(at, writtenLine)
		if err == nil {
			step("the apply finished %.2fs after \"applying\", before the cut planned at %.2fs: %s",
				time.Since(applying).Seconds(), at.Seconds(), line)
			break
		}
		if !errors.Is(err, qemu.ErrTimeout) {
			t.Fatalf("cut %d: %v", cuts+1, err)
		}
		if err := vm.Kill(); err != nil {
			t.Fatal(err)
		}
		cutAt := time.Since(applying)
		cuts++
		vm = nil

		st, err := lab.State(disk)
		if err != nil {
			t.Fatal(err)
		}
		slot, _ := st.GrubBoot()
		switch st {
		case bootstate.State{Committed: "a", A: bootstate.OK, B: bootstate.Writing}:
			if slot != "a" {
				t.Fatalf("cut %d: GRUB would boot slot %s of %+v, want the committed a", cuts, slot, st)
			}
		case bootstate.State{Committed: "a", Trial: "b", Tries: 1, A: bootstate.OK, B: bootstate.OK}:
			// Cut between the arm and its console line: b is verified,
			// and GRUB tries it next.
			if slot != "b" {
				t.Fatalf("cut %d: GRUB would boot slot %s of the armed %+v, want b", cuts, slot, st)
			}
			step("cut %d: power off %.2fs after \"applying\" (planned %.2fs): b was already verified and armed", cuts, cutAt.Seconds(), at.Seconds())
			armedByCut = true
		default:
			t.Fatalf("cut %d: boot state %+v (GRUB boots %s), want committed a with b writing or armed", cuts, st, slot)
		}
		if armedByCut {
			break
		}
		hs, j := statusAfterCut(t, l, disk)
		if hs.Committed != "a" || hs.Trial != "" || hs.NextBoot != "a" || hs.Slots["b"].State != bootstate.Writing || hs.Slots["a"].Version != sys.v1Version {
			t.Errorf("cut %d: host status %+v, want committed a (%s), no trial, next boot a, slot b writing", cuts, hs, sys.v1Version)
		}
		// The status shows the journal's progress until every chunk is
		// written; then only the read-back is left.
		if a := hs.Apply; j.Offset < j.Size && (a == nil || a.Slot != "b" || a.Done != j.Offset || a.Total != j.Size) {
			t.Errorf("cut %d: host status apply progress %+v, want slot b at the journal's %d of %d bytes", cuts, a, j.Offset, j.Size)
		}
		if j.Offset < journaled {
			t.Errorf("cut %d: the journal went back from %d to %d bytes", cuts, journaled, j.Offset)
		}
		step("cut %d: power off %.2fs after \"applying\" (planned %.2fs, drawn from %.1f-%.1fs); GRUB boots a, b writing; journal %d of %d bytes (%.0f%%), %d new bytes left",
			cuts, cutAt.Seconds(), at.Seconds(), from.Seconds(), (from + window).Seconds(), j.Offset, j.Size, percent(j.Offset, j.Size), bytesAfter(newChunks, j.Offset))
		journaled = max(journaled, j.Offset)
	}
	if cuts < powerCuts-1 {
		t.Errorf("only %d power cuts landed in an apply, want at least %d", cuts, powerCuts-1)
	}

	// Left alone, the guest resumes, arms b and reboots into its trial.
	if !armedByCut {
		if vm == nil {
			vm = bootVM("resume")
			sys.booted(t, vm, "a", "committed", sys.v1Version)
			expect(t, vm, applyingLine)
			applying = time.Now()
			line = expect(t, vm, writtenLine)
		}
		fetched, reused := fetchedBytes(t, line)
		left := bytesAfter(newChunks, journaled)
		step("the last run resumed at byte %d and finished in %.1fs: fetched %d bytes, reused %d (%d new bytes were left; an apply from scratch fetches %d)",
			journaled, time.Since(applying).Seconds(), fetched, reused, left, fresh)
		if journaled > bytesBefore(newChunks) && fetched >= fresh {
			t.Errorf("the run after the cuts fetched %d bytes, an apply from scratch %d: it did not resume from byte %d", fetched, fresh, journaled)
		}
		// Coalesced requests read small gaps between the frames they need.
		if slack := int64(1 << 20); fetched > left+slack {
			t.Errorf("the run after the cuts fetched %d bytes, more than the %d new bytes left after byte %d", fetched, left, journaled)
		}
		expect(t, vm, `twinroot: rebooting into the trial slot`)
		if err := vm.Wait(sys.timeout); err != nil {
			t.Fatalf("guest reboot: %v", err)
		}
		wantState(t, disk, bootstate.State{Committed: "a", Trial: "b", Tries: 1, A: bootstate.OK, B: bootstate.OK})
	}

	vm = bootVM("trial")
	sys.booted(t, vm, "b", "trial, 0 tries left", "2.0.0")
	sys.commit(t, vm)
	wantState(t, disk, bootstate.State{Committed: "b", A: bootstate.OK, B: bootstate.OK})
	step("v2 committed after %d power cuts in its apply and %d boots", cuts, boots)
}

// appliedLine is the pattern of the whole line `updater apply` prints once
// it wrote and verified version (serial) into slot. The console matches
// lines as they arrive, so the pattern runs to the line's last field: one
// that ended at "fetched N bytes" once matched a line whose reuse count had
// not arrived yet.
func appliedLine(slot, version string, serial uint64) string {
	return fmt.Sprintf(`slot %s: %s \(serial %d\) written and verified; fetched \d+ bytes, reused \d+; armed for \d+ trial boot`,
		slot, regexp.QuoteMeta(version), serial)
}

// fetchedBytes reads the byte counts of an appliedLine.
func fetchedBytes(t *testing.T, line string) (fetched, reused int64) {
	t.Helper()
	m := regexp.MustCompile(`fetched (\d+) bytes, reused (\d+);`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no byte counts in %q", line)
	}
	fetched, _ = strconv.ParseInt(m[1], 10, 64)
	reused, _ = strconv.ParseInt(m[2], 10, 64)
	return fetched, reused
}

// payloadRelease builds a release of the minimal system at version and
// serial whose root also carries size random bytes (drawn from seed), with
// the lab's key trusted, into out.
func payloadRelease(ctx context.Context, l *lab.Lab, out, version string, serial uint64, size int64, seed uint64) error {
	_, pub, err := l.SigningKey()
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp(l.Dir, "root-payload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := minimal.BuildRoot(ctx, minimal.Options{KernelDir: l.KernelDir, Updater: l.Updater, Version: version}, root); err != nil {
		return err
	}
	payload := filepath.Join(root, "usr", "share", "payload")
	if err := os.MkdirAll(filepath.Dir(payload), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(payload, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	var key [32]byte
	copy(key[:], strconv.FormatUint(seed, 16))
	_, err = io.CopyN(f, rand.NewChaCha8(key), size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write payload: %w", err)
	}
	_, err = release.Build(ctx, release.BuildOptions{
		Image: image.BuildOptions{Rootfs: root, Trust: []string{pub}, Version: version, Serial: serial},
		Out:   out,
	})
	return err
}

// freshFetch returns the compressed bytes of the chunks of the release in
// newDir that neither the release in oldDir nor an earlier chunk of its own
// has, and those chunks: what an apply without a journal fetches.
func freshFetch(t *testing.T, oldDir, newDir string) (int64, []chunk.Chunk) {
	t.Helper()
	have := map[[32]byte]bool{}
	for _, c := range readIndex(t, oldDir).Chunks {
		have[c.SHA256] = true
	}
	var sum int64
	var fresh []chunk.Chunk
	for _, c := range readIndex(t, newDir).Chunks {
		if have[c.SHA256] {
			continue
		}
		have[c.SHA256] = true
		sum += c.CompressedLength
		fresh = append(fresh, c)
	}
	return sum, fresh
}

func readIndex(t *testing.T, dir string) *chunk.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "chunks.idx"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := chunk.ParseIndex(b)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return idx
}

// bytesAfter sums the compressed bytes of the chunks at or after raw
// offset off.
func bytesAfter(cs []chunk.Chunk, off int64) int64 {
	var n int64
	for _, c := range cs {
		if c.Offset >= off {
			n += c.CompressedLength
		}
	}
	return n
}

// bytesBefore is the raw offset where the first new chunk starts: a
// journal past it saved fetching.
func bytesBefore(cs []chunk.Chunk) int64 {
	if len(cs) == 0 {
		return 0
	}
	return cs[0].Offset
}

// statusAfterCut copies the data partition out of the disk file, lets
// e2fsck replay its journal (as the guest's next mount would) and check
// it, takes the updater's state directory out with debugfs, and returns
// what the host's `updater status -o json` says about the disk with it.
func statusAfterCut(t *testing.T, l *lab.Lab, disk string) (hostStatus, fetch.State) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	layout, err := partition.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data.img")
	out, err := os.Create(data)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(out, io.NewSectionReader(f, layout.Data.Start, layout.Data.Size))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("copy the data partition: %v", err)
	}
	// The guest's next mount replays the journal (exit 1: it did); then
	// the file system must check clean without a change.
	if b, err := exec.Command("e2fsck", "-y", "-E", "journal_only", data).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			t.Fatalf("e2fsck journal replay of the data partition after a power cut: %v\n%s", err, b)
		}
	}
	if b, err := exec.Command("e2fsck", "-fn", data).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn of the data partition after a power cut: %v\n%s", err, b)
	}
	if b, err := exec.Command("debugfs", "-R", "rdump /twinroot/state "+dir, data).CombinedOutput(); err != nil {
		t.Fatalf("debugfs rdump of the updater state: %v\n%s", err, b)
	}
	b, err := exec.Command(l.Updater, "status", "-o", "json", "--disk", disk, "--running-slot", "a",
		"--state-dir", filepath.Join(dir, "state")).Output()
	if err != nil {
		t.Fatalf("updater status --disk: %v\n%s", err, b)
	}
	var s hostStatus
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("updater status JSON: %v\n%s", err, b)
	}
	j, err := fetch.FileJournal{Path: filepath.Join(dir, "state", state.JournalFile)}.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s, j
}

// throttle starts a reverse proxy on 127.0.0.1 to the S3 server at target
// that sends every response body at most rate bytes per second, and
// returns its URL. The Host header passes unchanged: S3 signatures cover it.
func throttle(t *testing.T, target string, rate int64) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(r *http.Response) error {
		r.Body = &slowBody{ReadCloser: r.Body, rate: rate, start: time.Now()}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// slowBody reads at most rate bytes per second on average.
type slowBody struct {
	io.ReadCloser
	rate  int64
	start time.Time
	n     int64
}

func (b *slowBody) Read(p []byte) (int, error) {
	p = p[:min(len(p), 16<<10)]
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if wait := time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second)) - time.Since(b.start); wait > 0 {
		time.Sleep(wait)
	}
	return n, err
}

func percent(n, total int64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}
