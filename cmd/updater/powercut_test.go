package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/state"
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

// TestPowerCutsDuringApply kills `updater apply` at random instants while
// it writes release 2.0.0 into slot B, for each way a release reaches the
// engine: the channel's store and a release directory on local media
// (--from). The updater keeps its state on the disk's data partition.
// After every kill the boot state is one apply writes and boots A or a
// verified B, the data partition passes e2fsck, and nothing outside the
// updater's state and slot B changed; the interrupted apply finishes in a
// run of its own, at once or after more kills, and the last one ends with
// a verified, armed slot B.
func TestPowerCutsDuringApply(t *testing.T) {
	for _, from := range []string{"channel", "local"} {
		t.Run(from, func(t *testing.T) { powerCutsApply(t, from == "local") })
	}
}

func powerCutsApply(t *testing.T, local bool) {
	r := newPowerRig(t)
	args := []string{"apply", "--disk", r.file, "--running-slot", "a"}
	op := "apply-channel"
	if local {
		if _, _, err := release.SignDir(context.Background(), r.v2, "stable", time.Now(), time.Hour, r.key); err != nil {
			t.Fatal(err)
		}
		args, op = append(args, "--from", r.v2), "apply-local"
	}
	s0 := r.load()
	prepared, err := s0.Prepare(partition.B, partition.A)
	if err != nil {
		t.Fatal(err)
	}
	armed, err := prepared.Arm(partition.B, partition.A, config.DefaultTrialBoots)
	if err != nil {
		t.Fatal(err)
	}
	allowed := []bootstate.State{s0, prepared, armed}
	r.record(partition.B)
	phase := map[bootstate.State]string{s0: "before-prepare", prepared: "writing-slot-b", armed: "after-arm"}
	// afresh undoes a whole apply, so the kills land in fresh applies as
	// well as in resumed ones.
	afresh := func() {
		r.save(s0)
		r.restoreState()
	}

	whole := r.run(0, args...)
	if whole.err != nil {
		t.Fatalf("apply: %v\n%s", whole.err, whole.out)
	}
	afresh()
	k, n := newKiller(powerSeed(t), whole.took, false), powerKills(t)
	for i := 0; k.kills < n; i++ {
		if i == giveUp(n) {
			t.Fatalf("%d kills in %d runs", k.kills, i)
		}
		at := k.next()
		res := r.run(at, args...)
		what := fmt.Sprintf("run %d, killed at %v", i, at)
		if !res.killed {
			if res.err != nil {
				t.Fatalf("run %d failed by itself: %v\n%s", i, res.err, res.out)
			}
			k.ranWhole(at, res.took)
			if got := r.load(); got != armed {
				t.Fatalf("run %d ended with boot state %+v, want %+v", i, got, armed)
			}
			afresh()
			continue
		}
		r.check(what, allowed)
		k.killed(at, phase[r.load()], false)
		// Every other kill, the interrupted apply finishes at once and the
		// next starts afresh; else the next run resumes it, maybe to be
		// killed again.
		if k.rand.Intn(2) == 0 {
			if res := r.run(0, args...); res.err != nil || r.load() != armed || !r.holdsV2(partition.B) {
				t.Fatalf("%s, then run again: %v, boot state %+v\n%s", what, res.err, r.load(), res.out)
			}
			afresh()
		}
	}
	if res := r.run(0, args...); res.err != nil {
		t.Fatalf("final apply: %v\n%s", res.err, res.out)
	}
	r.check("after the last run", allowed)
	if s := r.load(); s != armed || !r.holdsV2(partition.B) {
		t.Fatalf("after the last run: %+v, slot B holds 2.0.0: %v", s, r.holdsV2(partition.B))
	}
	k.report(t, op)
}

// TestPowerCutsInBootState kills each command that rewrites the boot state
// of a trial boot of slot B at random instants: commit, rollback, and the
// health gate of updater boot with its two outcomes, the commit write and
// the mark-bad write. After every kill the disk shows a stage of the one
// save the command makes (counted per stage), both copies hold the state
// before or after, GRUB boots the committed slot, the data partition
// passes e2fsck and nothing outside the updater's state changed; then the
// command, run again when its state is not yet written, finishes; rollback
// runs again after every kill, and changes nothing more once it is written
// (never the refused trial slot B committed). Commit run again after its
// write refuses: already committed.
func TestPowerCutsInBootState(t *testing.T) {
	r := newPowerRig(t)
	if res := r.run(0, "apply", "--disk", r.file, "--running-slot", "a"); res.err != nil {
		t.Fatalf("apply: %v\n%s", res.err, res.out)
	}
	_, trial := r.load().GrubBoot() // GRUB has booted B: its trial runs
	r.save(trial)
	r.record()
	before := r.envBlocks()
	disk := []string{"--disk", r.file, "--running-slot", "b"}
	// The gate passes at once, or fails at its short deadline.
	gate := func(cmd, deadline string) []string {
		return append([]string{"boot", "--health-cmd", cmd, "--health-timeout", deadline}, disk...)
	}
	commit, _ := trial.Commit(partition.B)
	rolledBack, _ := trial.Rollback(partition.B)
	bad, _ := trial.MarkBad(partition.B)
	for _, c := range []struct {
		op         string
		args       []string
		next       bootstate.State
		code       int
		idempotent bool // run again once written, it exits code and changes nothing
	}{
		{"commit", append([]string{"commit"}, disk...), commit, cli.ExitOK, false},
		{"rollback", append([]string{"rollback"}, disk...), rolledBack, cli.ExitOK, true},
		{"boot-commit", gate("true", "1m"), commit, cli.ExitOK, false},
		{"boot-mark-bad", gate("false", "50ms"), bad, cli.ExitUnhealthy, false},
	} {
		t.Run(c.op, func(t *testing.T) {
			r := r.in(t)
			steps := stepsOf(t, before, c.next)
			allowed := []bootstate.State{trial, c.next}
			// finish runs the command whole and checks where it ends.
			finish := func(what string) runResult {
				res := r.run(0, c.args...)
				if res.killed || res.exitCode() != c.code {
					t.Fatalf("%s: %s exited %d, want %d: %v\n%s", what, c.op, res.exitCode(), c.code, res.err, res.out)
				}
				if s := r.load(); s != c.next {
					t.Fatalf("%s: %s left %+v, want %+v", what, c.op, s, c.next)
				}
				return res
			}
			r.writeEnvBlocks(before)
			k, n := newKiller(powerSeed(t), finish("a whole run").took, true), powerKills(t)
			for i := 0; k.kills < n; i++ {
				if i == giveUp(n) {
					t.Fatalf("%d kills in %d runs", k.kills, i)
				}
				r.writeEnvBlocks(before)
				at := k.next()
				res := r.run(at, c.args...)
				what := fmt.Sprintf("run %d, killed at %v", i, at)
				if !res.killed {
					if res.exitCode() != c.code || r.load() != c.next {
						t.Fatalf("run %d exited %d, want %d, boot state %+v: %v\n%s", i, res.exitCode(), c.code, r.load(), res.err, res.out)
					}
					k.ranWhole(at, res.took)
					continue
				}
				step := steps.step(r.envBlocks())
				if step < 0 {
					t.Fatalf("%s: the environment blocks are no stage of the save", what)
				}
				r.check(what, allowed)
				k.killed(at, stepNames[step], step == 0)
				if c.idempotent || r.load() != c.next {
					finish(what + ", then run again")
				}
			}
			if c.next == bad {
				st, err := exec.Command("debugfs", "-R", "cat /"+stateRel+"/"+state.FileName, r.dataPath()).Output()
				if err != nil || !strings.Contains(string(st), `"2.0.0"`) {
					t.Errorf("version 2.0.0 not recorded bad: %v\n%s", err, st)
				}
			}
			k.report(t, c.op)
		})
	}
}

// TestPowerCutsDuringInstall kills `installer install` with SIGKILL at
// random moments (powerKills of them) while it writes a signed release onto a loop device. An
// install keeps no journal: after every cut the disk either boots nothing
// (the boot code is written last) or is the whole install, and the next
// run (with --wipe-data, as a cut install may have formatted the data
// partition) starts over; the last one leaves slot A verified and
// committed.
func TestPowerCutsDuringInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("process kills: slow")
	}
	testenv.NeedRoot(t)
	ctx := context.Background()
	key, pub := testrelease.Key(t)
	v1 := testrelease.Small(t, pub, "1.0.0", 1, 24<<20, "none")
	if _, _, err := release.SignDir(ctx, v1, "stable", time.Now(), time.Hour, key); err != nil {
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
	start := time.Now()
	if err := runOnce(0); err != nil {
		t.Fatal(err)
	}
	k, n := newKiller(powerSeed(t), time.Since(start), false), powerKills(t)
	bootCode := make([]byte, 440)
	for i := 0; k.kills < n; i++ {
		if i == giveUp(n) {
			t.Fatalf("%d kills in %d runs", k.kills, i)
		}
		at := k.next()
		start := time.Now()
		if runOnce(at) == nil {
			k.ranWhole(at, time.Since(start))
			continue
		}
		dr, _ := os.Open(dev)
		dr.ReadAt(bootCode, 0)
		dr.Close()
		phase := "before-boot-code"
		if !bytes.Equal(bootCode, make([]byte, 440)) {
			installed(fmt.Sprintf("kill %d at %v", i, at))
			phase = "after-boot-code"
		}
		k.killed(at, phase, false)
	}
	if err := runOnce(0); err != nil {
		t.Fatal(err)
	}
	installed("after the last run")
	k.report(t, "install")
}
