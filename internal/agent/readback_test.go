package agent

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/testenv"
)

// TestSlotReadsBackDifferent writes 2.0.0 into slot B of a real loop
// device, then changes one byte of the slot in the loop device's backing
// file, behind the device's back, as a disk that does not keep what it
// acknowledged does. The next apply of the same release (the daemon's next
// round, before the maintenance window's reboot) finds the journal
// complete and reads the slot back: it refuses it with an error naming the
// device, slot B stays unbootable, and the apply after it writes the slot
// afresh and arms it.
func TestSlotReadsBackDifferent(t *testing.T) {
	testenv.NeedRoot(t)
	ctx := context.Background()
	c := newTestDevice(t)
	file := c.disk.File.Name()
	dev := testenv.Loop(t, file)
	var err error
	if c.disk, err = bootstate.OpenDisk(dev); err != nil {
		t.Fatal(err)
	}
	defer c.disk.Close()
	v2 := c.publish(t, "2.0.0", 2, time.Now(), 30*24*time.Hour)
	round := func() *Round {
		return c.round(t, partition.A, time.Now(), config.Reboot{Policy: config.PolicyNextBoot})
	}
	if _, err := round().Run(ctx); err != nil {
		t.Fatal(err)
	}
	slotA := slotSum(t, c.disk, partition.A)

	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := c.disk.Layout.B.Start + 100_000
	b := []byte{0}
	f.ReadAt(b, at)
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	// On the file's disk, where a read of the loop device around its
	// page cache finds it.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	_, err = round().Run(ctx)
	if !errors.Is(err, fetch.ErrSlotMismatch) || !strings.Contains(err.Error(), "read back from "+dev+" at ") ||
		!strings.Contains(err.Error(), "slot b stays unbootable") {
		t.Fatalf("apply over a slot that reads back different = %v; want ErrSlotMismatch naming %s", err, dev)
	}
	if st, _ := c.disk.Load(); st != (bootstate.State{Committed: partition.A, A: bootstate.OK, B: bootstate.Writing}) {
		t.Errorf("boot state after the mismatch = %+v, want slot b writing, slot a committed", st)
	}
	if _, err := round().Run(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.disk.Load(); st.Trial != partition.B || !slotEquals(t, c.disk, partition.B, v2) {
		t.Errorf("after the next apply: boot state %+v, slot b holds 2.0.0: %v", st, slotEquals(t, c.disk, partition.B, v2))
	}
	if slotSum(t, c.disk, partition.A) != slotA {
		t.Error("slot a changed")
	}
}
