package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/testenv"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// TestMain lets the test binary stand in for the updater binary, so the
// power-cut test can SIGKILL a real updater process.
func TestMain(m *testing.M) {
	if os.Getenv("TWINROOT_RUN_UPDATER") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func hashRange(t *testing.T, f *os.File, off, n int64) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestPowerCutsDuringApply kills `updater apply` with SIGKILL at 200 random
// moments while it writes a release into slot B of a loop device, for each
// way a release reaches the engine: the channel's store and a release
// directory on local media (--from). After every cut the running slot A is
// untouched, the boot state is valid and boots A; the next run resumes
// from the journal, and the last one ends with a verified, armed slot B.
func TestPowerCutsDuringApply(t *testing.T) {
	if testing.Short() {
		t.Skip("400 process kills: slow")
	}
	testenv.NeedRoot(t)
	for _, from := range []string{"channel", "local"} {
		t.Run(from, func(t *testing.T) { powerCuts(t, from == "local") })
	}
}

func powerCuts(t *testing.T, local bool) {
	ctx := context.Background()
	k, pub := testrelease.Key(t)
	v1, v2 := testrelease.Small(t, pub, "1.0.0", 1, 24<<20, "none"), testrelease.Small(t, pub, "2.0.0", 2, 24<<20, "none")
	grubDir := t.TempDir()
	if err := grub.BuildImages(ctx, grubDir); err != nil {
		t.Fatal(err)
	}
	dev, _ := testenv.LoopDisk(t, partition.MinDiskSize(32<<20))
	if _, err := install.Install(ctx, install.Options{Disk: dev, Image: filepath.Join(v1, release.SlotFile), GrubDir: grubDir, SlotSize: 32 << 20, Finder: &partition.Finder{SysBlock: "/sys/block", DevDir: "/dev"}}); err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	st, _ := source.OpenStore(ctx, "file://"+storeDir, source.Options{})
	if _, err := release.Publish(ctx, st, release.PublishOptions{Dir: v2, Channel: "stable", Signers: []*keys.PrivateKey{k}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "device.yaml")
	os.WriteFile(cfg, []byte("source: file://"+storeDir+"\n"), 0o600)
	stateDir := filepath.Join(t.TempDir(), "state")
	args := []string{"apply", "--disk", dev, "--running-slot", "a", "--config", cfg, "--state-dir", stateDir}
	if local {
		if _, _, err := release.SignDir(ctx, v2, "stable", time.Now(), time.Hour, k); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--from", v2)
	}

	d, err := bootstate.OpenDisk(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	runningSum := hashRange(t, d.File, d.Layout.A.Start, d.Layout.A.Size)
	runOnce := func(kill time.Duration) (string, error) {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "TWINROOT_RUN_UPDATER=1")
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if kill > 0 {
			timer := time.AfterFunc(kill, func() { cmd.Process.Signal(syscall.SIGKILL) })
			defer timer.Stop()
		}
		err := cmd.Wait()
		return buf.String(), err
	}
	// Three runs measure how long a whole apply takes (the median: the
	// first reads a cold store), each undone.
	var fulls []time.Duration
	for range 3 {
		start := time.Now()
		if out, err := runOnce(0); err != nil {
			t.Fatalf("apply: %v\n%s", err, out)
		}
		fulls = append(fulls, time.Since(start))
		if _, err := d.Update(func(s bootstate.State) (bootstate.State, error) { return s.Prepare(partition.B, partition.A) }); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(stateDir)
	}
	slices.Sort(fulls)
	full := fulls[1]
	t.Logf("a whole apply takes %v (of %v); cutting at random moments in it", full.Round(time.Millisecond), fulls)

	r := rand.New(rand.NewSource(42))
	cuts, finished := 0, 0
	for i := 0; cuts < 200; i++ {
		// About half the runs finish first (a resumed run has less to
		// do); many more is a bug, not bad luck.
		if i == 1000 {
			t.Fatalf("only %d cuts in %d runs", cuts, i)
		}
		at := time.Duration(r.Int63n(int64(full))) + time.Millisecond
		out, err := runOnce(at)
		if err == nil {
			finished++
			// Undo, to keep cutting fresh applies as well as resumed ones.
			d.Update(func(s bootstate.State) (bootstate.State, error) { return s.Prepare(partition.B, partition.A) })
			os.RemoveAll(stateDir)
		} else if !strings.Contains(err.Error(), "killed") {
			t.Fatalf("run %d failed by itself: %v\n%s", i, err, out)
		} else {
			cuts++
		}
		if got := hashRange(t, d.File, d.Layout.A.Start, d.Layout.A.Size); got != runningSum {
			t.Fatalf("cut %d at %v changed the running slot A", i, at)
		}
		s, err := d.Load()
		if err != nil {
			t.Fatalf("cut %d: boot state unreadable: %v", i, err)
		}
		if slot, _ := s.GrubBoot(); s.Committed != partition.A || (slot == partition.B && s.B != bootstate.OK) {
			t.Fatalf("cut %d at %v: boot state %+v would boot %s", i, at, s, slot)
		}
		if s.B == bootstate.OK && s.Trial != partition.B {
			t.Fatalf("cut %d: slot B ok but not armed: %+v", i, s)
		}
	}
	o, err := runOnce(0)
	if err != nil {
		t.Fatalf("final apply: %v\n%s", err, o)
	}
	s, _ := d.Load()
	if s.Trial != partition.B || s.B != bootstate.OK {
		t.Fatalf("after the last run: %+v", s)
	}
	v2raw, _ := os.ReadFile(filepath.Join(v2, release.SlotFile))
	got := make([]byte, len(v2raw))
	d.File.ReadAt(got, d.Layout.B.Start)
	if !bytes.Equal(got, v2raw) {
		t.Fatal("slot B differs from the release after the cuts")
	}
	t.Logf("%d cuts, %d runs finished between them; slot B verified and armed (%d bytes)", cuts, finished, len(v2raw))
}

// TestPowerCutsDuringInstall kills `installer install` with SIGKILL at 200
// random moments while it writes a signed release onto a loop device. An
// install keeps no journal: after every cut the disk either boots nothing
// (the boot code is written last) or is the whole install, and the next
// run (with --wipe-data, as a cut install may have formatted the data
// partition) starts over; the last one leaves slot A verified and
// committed.
func TestPowerCutsDuringInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("200 process kills: slow")
	}
	testenv.NeedRoot(t)
	ctx := context.Background()
	k, pub := testrelease.Key(t)
	v1 := testrelease.Small(t, pub, "1.0.0", 1, 24<<20, "none")
	if _, _, err := release.SignDir(ctx, v1, "stable", time.Now(), time.Hour, k); err != nil {
		t.Fatal(err)
	}
	grubDir := t.TempDir()
	if err := grub.BuildImages(ctx, grubDir); err != nil {
		t.Fatal(err)
	}
	installer := filepath.Join(t.TempDir(), "installer")
	if out, err := exec.Command("go", "build", "-o", installer, "../installer").CombinedOutput(); err != nil {
		t.Fatalf("build the installer: %v\n%s", err, out)
	}
	dev, _ := testenv.LoopDisk(t, partition.MinDiskSize(32<<20))
	args := []string{"install", "--disk", dev, "--image", v1, "--grub-dir", grubDir, "--slot-size", "32M", "--yes", "--wipe-data"}
	want, _ := os.ReadFile(filepath.Join(v1, release.SlotFile))
	runOnce := func(kill time.Duration) error {
		cmd := exec.Command(installer, args...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if kill > 0 {
			timer := time.AfterFunc(kill, func() { cmd.Process.Signal(syscall.SIGKILL) })
			defer timer.Stop()
		}
		err := cmd.Wait()
		if err != nil && !strings.Contains(err.Error(), "killed") {
			t.Fatalf("install failed by itself: %v\n%s", err, buf.String())
		}
		return err
	}
	// installed checks a disk whose boot code is written: it must be the
	// whole install.
	installed := func(what string) {
		d, err := bootstate.OpenDisk(dev)
		if err != nil {
			t.Fatalf("%s: boot code written, boot state unreadable: %v", what, err)
		}
		defer d.Close()
		s, err := d.Load()
		if err != nil || s.Committed != partition.A || s.A != bootstate.OK {
			t.Fatalf("%s: boot code written, boot state %+v, %v", what, s, err)
		}
		got := make([]byte, len(want))
		d.File.ReadAt(got, d.Layout.A.Start)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: boot code written, slot A differs from the release", what)
		}
	}
	var fulls []time.Duration
	for range 3 {
		start := time.Now()
		if err := runOnce(0); err != nil {
			t.Fatal(err)
		}
		fulls = append(fulls, time.Since(start))
	}
	slices.Sort(fulls)
	full := fulls[1]
	t.Logf("a whole install takes %v (of %v); cutting at random moments in it", full.Round(time.Millisecond), fulls)
	r := rand.New(rand.NewSource(7))
	bootCode := make([]byte, 440)
	cuts, finished := 0, 0
	for i := 0; cuts < 200; i++ {
		if i == 1000 {
			t.Fatalf("only %d cuts in %d runs", cuts, i)
		}
		at := time.Duration(r.Int63n(int64(full))) + time.Millisecond
		if runOnce(at) == nil {
			finished++
		} else {
			cuts++
		}
		dr, _ := os.Open(dev)
		dr.ReadAt(bootCode, 0)
		dr.Close()
		if !bytes.Equal(bootCode, make([]byte, 440)) {
			installed(fmt.Sprintf("cut %d at %v", i, at))
		}
	}
	if err := runOnce(0); err != nil {
		t.Fatal(err)
	}
	installed("after the last run")
	t.Logf("%d cuts, %d runs finished between them; slot A verified and committed", cuts, finished)
}
