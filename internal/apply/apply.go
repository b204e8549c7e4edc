package apply

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/stream"
)

// Options of a local apply.
type Options struct {
	Image        string // raw slot image or build output directory
	ExpectSHA256 string // hex; "" trusts the image file as it is
	Tries        int    // trial boots, 1 to 3; default 1
	Progress     func(done, total int64)
}

// Result of an apply.
type Result struct {
	Slot    bootstate.Slot  `json:"slot"`
	Version string          `json:"version"`
	SHA256  string          `json:"sha256"`
	State   bootstate.State `json:"state"`
}

// FromFile writes a local slot image into the slot that is not running and
// arms it.
func FromFile(ctx context.Context, d *bootstate.Disk, running bootstate.Slot, o Options) (Result, error) {
	if o.Tries == 0 {
		o.Tries = 1
	}
	img, info, err := image.Open(o.Image)
	if err != nil {
		return Result{}, err
	}
	defer img.Close()
	target := running.Other()
	part := d.Layout.Slot(target)
	if info.Size > part.Size {
		return Result{}, fmt.Errorf("%w: image is %d bytes, slot %s is %d; nothing written", refusal.ErrDoesNotFit, info.Size, target, part.Size)
	}
	st, err := d.Load()
	if err != nil {
		return Result{}, err
	}
	// Refuse what Arm would refuse before anything is written.
	if _, err := st.Arm(target, running, o.Tries); err != nil {
		return Result{}, err
	}
	if _, err := d.Update(func(s bootstate.State) (bootstate.State, error) { return s.Prepare(target, running) }); err != nil {
		return Result{}, err
	}
	sum, err := stream.CopyHashed(ctx, d.File, part.Start, img, info.Size, o.Progress)
	if err != nil {
		return Result{}, fmt.Errorf("write slot %s: %w (slot %s stays unbootable)", target, err, target)
	}
	if o.ExpectSHA256 != "" {
		if !stream.Equal(o.ExpectSHA256, sum) {
			return Result{}, fmt.Errorf("%w: slot SHA-256 is %x, expected %s (slot %s stays unbootable)", refusal.ErrMismatch, sum, o.ExpectSHA256, target)
		}
	}
	if err := stream.Verify(d.File, part.Start, info.Size, sum); err != nil {
		return Result{}, fmt.Errorf("slot %s: %w (slot stays unbootable)", target, err)
	}
	st, err = d.Update(func(s bootstate.State) (bootstate.State, error) { return s.Arm(target, running, o.Tries) })
	if err != nil {
		return Result{}, err
	}
	return Result{Slot: target, Version: info.Version, SHA256: hex.EncodeToString(sum), State: st}, nil
}
