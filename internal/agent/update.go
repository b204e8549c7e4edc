package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/minio/sha256-simd"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/atomicfile"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
)

// Files the updater keeps in its state directory besides state.json.
const (
	JournalFile = "journal.json" // progress of an apply (package fetch)
	slotIndex   = "slot-%s.idx"  // the index a slot was written from, to skip scanning it
)

// Updater writes a checked release into the inactive slot and arms it.
type Updater struct {
	Disk     *bootstate.Disk
	Running  bootstate.Slot
	Source   source.Source
	Channel  string
	Tries    int
	State    state.Store
	Progress func(done, total int64)
	Log      *slog.Logger
	// StallTimeout and Retry tune package fetch; zero values are its defaults.
	StallTimeout time.Duration
	Retry        fetch.RetryFunc
	// ReadBack reads the whole slot back from the disk before arming it
	// (fetch.Options.ReadBack).
	ReadBack bool
}

// ApplyResult reports an apply.
type ApplyResult struct {
	Slot    bootstate.Slot  `json:"slot"`
	Version string          `json:"version"`
	Serial  uint64          `json:"serial"`
	Stats   fetch.Stats     `json:"stats"`
	State   bootstate.State `json:"boot_state"`
}

// Apply follows the boot protocol's write order: the inactive slot is
// marked not bootable, filled (a delta against the running slot, resumed
// from the journal after a power cut), verified chunk by chunk, and only then armed
// for a trial boot.
func (u *Updater) Apply(ctx context.Context, m *manifest.Manifest) (ApplyResult, error) {
	log := u.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	target := u.Running.Other()
	r := ApplyResult{Slot: target, Version: m.Version, Serial: m.Serial}
	part := u.Disk.Layout.Slot(target)
	if m.Image.Size > part.Size {
		return r, fmt.Errorf("%w: image of %s is %d bytes, slot %s is %d; nothing written", refusal.ErrDoesNotFit, m.Version, m.Image.Size, target, part.Size)
	}
	if err := os.MkdirAll(u.State.Dir, 0o755); err != nil {
		return r, fmt.Errorf("updater state: %w", err)
	}
	st, err := u.Disk.Load()
	if err != nil {
		return r, err
	}
	if _, err := st.Arm(target, u.Running, u.Tries); err != nil {
		return r, err
	}
	idx, err := u.index(ctx, m)
	if err != nil {
		return r, err
	}
	if _, err := u.Disk.Update(func(s bootstate.State) (bootstate.State, error) { return s.Prepare(target, u.Running) }); err != nil {
		return r, err
	}
	// From here the target is "writing": GRUB never boots it.
	if err := os.Remove(filepath.Join(u.State.Dir, fmt.Sprintf(slotIndex, target))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return r, err
	}
	runPart := u.Disk.Layout.Slot(u.Running)
	runSize := runPart.Size
	if info, err := image.Probe(u.Disk.File, runPart.Start); err == nil {
		runSize = min(info.Size, runPart.Size)
	}
	log.Info("applying", "version", m.Version, "slot", target, "bytes", m.Image.Size)
	r.Stats, err = fetch.Apply(ctx, fetch.Options{
		Source: u.Source, ObjectKey: path.Join(u.Channel, m.Image.Key), Index: idx,
		Running: io.NewSectionReader(u.Disk.File, runPart.Start, runSize), RunningSize: runSize,
		RunningIndex: u.runningIndex(),
		Target:       u.Disk.File, TargetOffset: part.Start,
		Journal:  fetch.FileJournal{Path: filepath.Join(u.State.Dir, JournalFile)},
		Progress: u.Progress, StallTimeout: u.StallTimeout, Retry: u.Retry, ReadBack: u.ReadBack,
	})
	if err != nil {
		return r, fmt.Errorf("write slot %s: %w (slot %s stays unbootable; the next run resumes)", target, err, target)
	}
	r.State, err = u.Disk.Update(func(s bootstate.State) (bootstate.State, error) { return s.Arm(target, u.Running, u.Tries) })
	if err != nil {
		return r, err
	}
	if b, err := idx.MarshalBinary(); err == nil {
		atomicfile.Write(filepath.Join(u.State.Dir, fmt.Sprintf(slotIndex, target)), b, 0o644)
	}
	log.Info("armed for a trial boot", "version", m.Version, "slot", target, "tries", u.Tries,
		"fetched", r.Stats.FetchedCompressed, "reused", r.Stats.Reused)
	return r, nil
}

// index fetches the release's chunk index, retrying transient errors and
// a body that does not hash right, and checks it against the manifest.
func (u *Updater) index(ctx context.Context, m *manifest.Manifest) (*chunk.Index, error) {
	key := path.Join(u.Channel, m.Index.Key)
	retry := u.Retry
	if retry == nil {
		retry = fetch.DefaultRetry
	}
	var b []byte
	for attempt := 1; ; attempt++ {
		var err error
		b, err = u.getAll(ctx, key)
		if err == nil && hex.EncodeToString(sha256Sum(b)) != m.Index.SHA256 {
			err = fmt.Errorf("%s: %w: SHA-256 differs from the manifest's", key, refusal.ErrMismatch)
		}
		if err == nil || errors.Is(err, source.ErrNotFound) || ctx.Err() != nil {
			if err != nil {
				return nil, err
			}
			break
		}
		wait, again := retry(attempt, err)
		if !again {
			return nil, fmt.Errorf("%w; nothing written", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	idx, err := chunk.ParseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if idx.Size != m.Image.Size || hex.EncodeToString(idx.SHA256[:]) != m.Image.SHA256 {
		return nil, fmt.Errorf("%s: %w: the index describes another image than the manifest; nothing written", key, refusal.ErrMismatch)
	}
	return idx, nil
}

func (u *Updater) getAll(ctx context.Context, key string) ([]byte, error) {
	body, _, err := u.Source.Get(ctx, key, "")
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", key, err)
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", key, err)
	}
	return b, nil
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// runningIndex is the index the running slot was written from, when kept.
func (u *Updater) runningIndex() *chunk.Index {
	b, err := os.ReadFile(filepath.Join(u.State.Dir, fmt.Sprintf(slotIndex, u.Running)))
	if err != nil {
		return nil
	}
	idx, err := chunk.ParseIndex(b)
	if err != nil {
		return nil
	}
	return idx
}
