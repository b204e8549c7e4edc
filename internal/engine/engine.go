package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/state"
)

// Boot is the boot state a write goes through.
type Boot interface {
	// Check refuses, before anything is written, what Arm would refuse.
	Check() error
	// Prepare makes the target unbootable; it is called before the
	// target's first byte is overwritten.
	Prepare() error
	// Arm makes the verified target bootable.
	Arm() error
}

// Write is one release written into one slot.
type Write struct {
	Release *release.Release
	Disk    fetch.Target // the disk holding the slot (an *os.File is written with O_DIRECT)
	Slot    partition.Slot
	Part    partition.Part // the slot's partition on Disk

	// Local is a slot image on this machine that may share chunks with the
	// release (the running slot, or the release's own slot.img), read up
	// to LocalSize. LocalIndex, when set, is the index Local was written
	// from: it stands for a scan of Local. Every chunk copied from Local
	// is hashed against the release's index all the same.
	Local      io.ReaderAt
	LocalSize  int64
	LocalIndex *chunk.Index

	// State keeps the journal and the slot indexes; nil keeps none, and
	// an interrupted write starts over.
	State *state.Store
	Boot  Boot

	Progress     func(done, total int64)
	Log          *slog.Logger
	StallTimeout time.Duration   // fetch.Options.StallTimeout
	Retry        fetch.RetryFunc // fetch.Options.Retry
	ReadBack     bool            // fetch.Options.ReadBack
}

// Run writes the release into the slot and arms it. Its errors are one
// line and say what was left: nothing written, or the slot unbootable.
func (w *Write) Run(ctx context.Context) (fetch.Stats, error) {
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := w.Release.Manifest
	if m.Image.Size > w.Part.Size {
		return fetch.Stats{}, fmt.Errorf("%w: image of %s is %d bytes, slot %s is %d; nothing written",
			refusal.ErrDoesNotFit, m.Version, m.Image.Size, w.Slot, w.Part.Size)
	}
	if err := w.Boot.Check(); err != nil {
		return fetch.Stats{}, fmt.Errorf("%w; nothing written", err)
	}
	var journal fetch.Journal
	if w.State != nil {
		if err := os.MkdirAll(w.State.Dir, 0o755); err != nil {
			return fetch.Stats{}, fmt.Errorf("updater state: %w; nothing written", err)
		}
		if err := w.State.DropSlotIndex(string(w.Slot)); err != nil {
			return fetch.Stats{}, fmt.Errorf("%w; nothing written", err)
		}
		journal = fetch.FileJournal{Path: w.State.Path(state.JournalFile)}
	}
	// fetch marks the slot unbootable once the journal names this release:
	// a data partition too full for the journal then leaves the boot
	// state as it was. From Prepare on, GRUB never boots the slot.
	prepared := false
	prepare := func() error {
		if err := w.Boot.Prepare(); err != nil {
			return err
		}
		prepared = true
		return nil
	}
	log.Info("applying", "version", m.Version, "slot", w.Slot, "bytes", m.Image.Size)
	stats, err := fetch.Apply(ctx, fetch.Options{
		Source: w.Release.Source, ObjectKey: w.Release.ObjectKey(), Index: w.Release.Index,
		Running: w.Local, RunningSize: w.LocalSize, RunningIndex: w.LocalIndex,
		Target: w.Disk, TargetOffset: w.Part.Start, Journal: journal, Prepare: prepare,
		Progress: w.Progress, StallTimeout: w.StallTimeout, Retry: w.Retry, ReadBack: w.ReadBack,
	})
	switch {
	case err != nil && !prepared:
		return stats, fmt.Errorf("write slot %s: %w; nothing written", w.Slot, err)
	case err != nil:
		resume := ""
		switch {
		case errors.Is(err, fetch.ErrSlotMismatch):
			resume = "; the next run writes it afresh"
		case journal != nil:
			resume = "; the next run resumes"
		}
		return stats, fmt.Errorf("write slot %s: %w (slot %s stays unbootable%s)", w.Slot, err, w.Slot, resume)
	}
	if err := w.Boot.Arm(); err != nil {
		return stats, err
	}
	if w.State != nil {
		if err := w.State.SaveSlotIndex(string(w.Slot), w.Release.Index); err != nil {
			log.Warn("slot index not kept; the next apply scans the running slot", "err", err)
		}
	}
	log.Info("slot written and verified", "slot", w.Slot, "version", m.Version,
		"fetched", stats.FetchedCompressed, "reused", stats.Reused)
	return stats, nil
}

// Trial is the Boot of a slot of a twinroot disk: Prepare marks it
// "writing" in the GRUB environment, Arm arms it for Tries trial boots.
type Trial struct {
	Disk    *bootstate.Disk
	Target  bootstate.Slot
	Running bootstate.Slot
	Tries   int
	// State is the boot state after Arm.
	State bootstate.State
}

func (t *Trial) Check() error {
	st, err := t.Disk.Load()
	if err != nil {
		return err
	}
	_, err = st.Arm(t.Target, t.Running, t.Tries)
	return err
}

func (t *Trial) Prepare() error {
	_, err := t.Disk.Update(func(s bootstate.State) (bootstate.State, error) { return s.Prepare(t.Target, t.Running) })
	return err
}

func (t *Trial) Arm() (err error) {
	t.State, err = t.Disk.Update(func(s bootstate.State) (bootstate.State, error) { return s.Arm(t.Target, t.Running, t.Tries) })
	return err
}

// Unbootable is the Boot of a disk that boots nothing while it is written:
// an install, which writes the boot loader after the slot.
type Unbootable struct{}

func (Unbootable) Check() error   { return nil }
func (Unbootable) Prepare() error { return nil }
func (Unbootable) Arm() error     { return nil }
