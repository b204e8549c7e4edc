package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/health"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/internal/testenv"
)

// TestDataPartitionFull keeps the updater state on a small real file
// system (a 1 MiB tmpfs) and fills it, as a container's volume growing on
// the data partition does. The boot state lives on the ESP, so:
//   - an apply whose journal cannot be written fails before the slot is
//     touched, and a round whose check cannot save state.json fails before
//     it applies; each error is one line naming the file and ENOSPC, and
//     the disk is byte for byte as it was;
//   - an apply that fills the data partition while it writes leaves slot B
//     unbootable and slot A as it was; once there is room the round
//     writes and arms the release;
//   - a trial that fails its gate while its version cannot be recorded is
//     not marked bad but left at once (reboot); the boot GRUB falls back
//     to records it once there is room;
//   - a trial that passes its gate is committed: a commit writes no state.
func TestDataPartitionFull(t *testing.T) {
	ctx := context.Background()
	c := newTestDevice(t)
	dir := smallFS(t, 1<<20)
	c.state = state.Store{Dir: filepath.Join(dir, "state")}
	v2 := c.publish(t, "2.0.0", 2, time.Now(), 30*24*time.Hour)
	round := func() *Round {
		return c.round(t, partition.A, time.Now(), config.Reboot{Policy: config.PolicyNextBoot})
	}

	r := round()
	cr, err := r.Checker.Check(ctx)
	if err != nil || cr.Outcome != CheckAvailable {
		t.Fatalf("Check = %+v, %v", cr, err)
	}
	free := fill(t, dir)
	unchanged := c.snapshot(t)
	_, err = r.Updater.Apply(ctx, cr.Manifest)
	wantNoSpace(t, "Apply", err, c.state.Path(state.JournalFile), "nothing written")
	unchanged.check(t, "an apply without room for its journal")
	_, err = round().Run(ctx)
	wantNoSpace(t, "Run", err, c.state.Path(state.FileName), "no slot touched")
	unchanged.check(t, "a round without room for its state")

	// With room for the journal's first record, and then none: slot b is
	// left unbootable, slot a as it was.
	free()
	r = round()
	var filled bool
	r.Updater.Progress = func(done, total int64) {
		if done >= total/2 && !filled {
			filled = true
			if free, err = fillUp(dir); err != nil {
				t.Error(err)
			}
		}
	}
	_, err = r.Run(ctx)
	wantNoSpace(t, "Run filling up", err, c.state.Path(state.JournalFile), "slot b stays unbootable; the next run resumes")
	if st, _ := c.disk.Load(); st != (bootstate.State{Committed: partition.A, A: bootstate.OK, B: bootstate.Writing}) ||
		slotSum(t, c.disk, partition.A) != unchanged.slotA {
		t.Errorf("after the journal filled the data partition: boot state %+v, slot a changed: %v", st, slotSum(t, c.disk, partition.A) != unchanged.slotA)
	}

	free()
	if res, err := round().Run(ctx); err != nil || res.Apply == nil {
		t.Fatalf("Run with room again = %+v, %v", res, err)
	}
	if !slotEquals(t, c.disk, partition.B, v2) {
		t.Error("slot b differs from 2.0.0")
	}

	// GRUB boots the trial; its gate fails while the data partition is full.
	trialBoot(t, c.disk)
	free = fill(t, dir)
	armed, _ := c.disk.Load()
	fail := health.Gate{Commands: []string{"false"}, Deadline: 100 * time.Millisecond}
	rep, err := (&Boot{Disk: c.disk, Running: partition.B, Gate: fail, State: &c.state}).Run(ctx)
	if err != nil || rep.Outcome != OutcomeUnrecorded || !rep.Reboot || rep.After != armed ||
		!strings.Contains(rep.Message, "no space left on device") {
		t.Fatalf("Boot with a failing gate = %s reboot %v, %+v, %v (%s); want %s, a reboot and the boot state left alone",
			rep.Outcome, rep.Reboot, rep.After, err, rep.Message, OutcomeUnrecorded)
	}
	// Its try used, GRUB boots slot a, which records the version once it can.
	fallback := &Boot{Disk: c.disk, Running: partition.A, Gate: fail, State: &c.state}
	_, err = fallback.Run(ctx)
	wantNoSpace(t, "Boot after the fallback", err, c.state.Path(state.FileName), "2.0.0 not recorded as bad")
	free()
	if rep, err := fallback.Run(ctx); err != nil || rep.Outcome != OutcomeFellBack || rep.After.B != bootstate.Bad {
		t.Fatalf("Boot after the fallback with room = %s %+v, %v", rep.Outcome, rep.After, err)
	}
	if s, _ := c.state.Load(); !s.IsBad("2.0.0") {
		t.Errorf("2.0.0 not remembered as bad: %+v", s)
	}

	// 3.0.0 passes its gate with the data partition full: committed.
	c.publish(t, "3.0.0", 3, time.Now(), 30*24*time.Hour)
	if _, err := round().Run(ctx); err != nil {
		t.Fatal(err)
	}
	trialBoot(t, c.disk)
	fill(t, dir)
	pass := health.Gate{Commands: []string{"true"}, Deadline: 5 * time.Second}
	rep, err = (&Boot{Disk: c.disk, Running: partition.B, Gate: pass, State: &c.state}).Run(ctx)
	if want := (bootstate.State{Committed: partition.B, A: bootstate.OK, B: bootstate.OK}); err != nil || rep.Outcome != OutcomeCommitted || rep.After != want {
		t.Errorf("Boot with a passing gate = %s %+v, %v; want committed %+v", rep.Outcome, rep.After, err, want)
	}
}

// smallFS mounts a tmpfs of size bytes on a new directory: a data
// partition that fills up quickly. It needs root.
func smallFS(t *testing.T, size int) string {
	t.Helper()
	testenv.NeedRoot(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "twinroot-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	// Runs before t.TempDir's removal: cleanups run last first.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file into dir until its file system is full, and returns
// what removes it.
func fill(t *testing.T, dir string) (free func()) {
	t.Helper()
	free, err := fillUp(dir)
	if err != nil {
		t.Fatal(err)
	}
	return free
}

// fillUp is fill for any goroutine.
func fillUp(dir string) (free func(), err error) {
	p := filepath.Join(dir, "filler")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); errors.Is(err, syscall.ENOSPC) {
			return func() { os.Remove(p) }, nil
		} else if err != nil {
			return nil, err
		}
	}
}

// trialBoot is GRUB booting the armed trial: its tries are used.
func trialBoot(t *testing.T, d *bootstate.Disk) {
	t.Helper()
	if _, err := d.Update(func(s bootstate.State) (bootstate.State, error) { s.Tries = 0; return s, nil }); err != nil {
		t.Fatal(err)
	}
}

func wantNoSpace(t *testing.T, what string, err error, path, says string) {
	t.Helper()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%s on a full data partition = %v, want ENOSPC", what, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, path+": no space left on device") || !strings.Contains(msg, says) || strings.Contains(msg, "\n") {
		t.Errorf("%s: error %q; want one line naming %s, ENOSPC and %q", what, msg, path, says)
	}
}

// diskSnapshot is what a failed write must leave as it was.
type diskSnapshot struct {
	d            *bootstate.Disk
	boot         bootstate.State
	slotA, slotB [32]byte
}

func (c *testDevice) snapshot(t *testing.T) diskSnapshot {
	t.Helper()
	st, err := c.disk.Load()
	if err != nil {
		t.Fatal(err)
	}
	return diskSnapshot{c.disk, st, slotSum(t, c.disk, partition.A), slotSum(t, c.disk, partition.B)}
}

func (s diskSnapshot) check(t *testing.T, after string) {
	t.Helper()
	if st, _ := s.d.Load(); st != s.boot {
		t.Errorf("boot state after %s = %+v, was %+v", after, st, s.boot)
	}
	if slotSum(t, s.d, partition.A) != s.slotA || slotSum(t, s.d, partition.B) != s.slotB {
		t.Errorf("a slot changed after %s", after)
	}
}
