package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/engine"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
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

// Apply writes the release m describes into the inactive slot through the
// slot engine (package engine): the index is fetched and checked against
// m, the slot is marked not bootable, filled (a delta against the running
// slot, resumed from the journal after a power cut), verified chunk by
// chunk, and only then armed for a trial boot.
func (u *Updater) Apply(ctx context.Context, m *manifest.Manifest) (ApplyResult, error) {
	target := u.Running.Other()
	r := ApplyResult{Slot: target, Version: m.Version, Serial: m.Serial}
	part := u.Disk.Layout.Slot(target)
	rel, err := release.Open(ctx, u.Source, u.Channel, nil, m, fetch.Guard{StallTimeout: u.StallTimeout, Retry: u.Retry})
	if err != nil {
		return r, fmt.Errorf("%w; nothing written", err)
	}
	runPart := u.Disk.Layout.Slot(u.Running)
	runSize := runPart.Size
	if info, err := image.Probe(u.Disk.File, runPart.Start); err == nil {
		runSize = min(info.Size, runPart.Size)
	}
	// The running slot's index is a hint: one that describes another
	// image than the one in the slot (a state directory of another disk)
	// is not used.
	runIdx := u.State.SlotIndex(string(u.Running))
	if runIdx != nil && (runIdx.Size+4095)/4096*4096 != runSize {
		runIdx = nil
	}
	boot := &engine.Trial{Disk: u.Disk, Target: target, Running: u.Running, Tries: u.Tries}
	w := engine.Write{
		Release: rel, Disk: u.Disk.File, Slot: target, Part: part,
		Local: io.NewSectionReader(u.Disk.File, runPart.Start, runSize), LocalSize: runSize, LocalIndex: runIdx,
		State: &u.State, Boot: boot,
		Progress: u.Progress, Log: u.Log, StallTimeout: u.StallTimeout, Retry: u.Retry, ReadBack: u.ReadBack,
	}
	if r.Stats, err = w.Run(ctx); err != nil {
		return r, err
	}
	r.State = boot.State
	if u.Log != nil {
		u.Log.Info("armed for a trial boot", "version", m.Version, "slot", target, "tries", u.Tries)
	}
	return r, nil
}
