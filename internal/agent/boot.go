package agent

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/health"
	"github.com/twinroot/twinroot/internal/state"
)

// Outcomes of a boot.
const (
	OutcomeNothing    = "nothing-to-do" // committed slot, no trial
	OutcomeCommitted  = "committed"     // trial passed the gate and is committed
	OutcomeMarkedBad  = "marked-bad"    // trial failed the gate; rebooting to the committed slot
	OutcomeFellBack   = "fell-back"     // GRUB used up the trial's boots and booted the committed slot
	OutcomePending    = "trial-pending" // a trial is armed for the next boot
	OutcomeUnexpected = "unknown-slot"  // running a slot that is neither committed nor on trial
)

// ErrRebootNeeded is what a caller returns when a report asks for a reboot
// it cannot do (offline, or told not to). It wraps health.ErrUnhealthy:
// the slot this machine runs failed its trial.
var ErrRebootNeeded error = rebootNeeded{}

type rebootNeeded struct{}

func (rebootNeeded) Error() string { return "reboot needed to leave the bad slot" }
func (rebootNeeded) Unwrap() error { return health.ErrUnhealthy }

// Boot is the every-boot entry point.
type Boot struct {
	Disk    *bootstate.Disk
	Running bootstate.Slot
	Gate    health.Gate
	// State, when set, records the version of a slot marked bad, so the
	// same version is never retried automatically.
	State *state.Store
	Log   *slog.Logger
}

// Report is what a boot did.
type Report struct {
	Running bootstate.Slot  `json:"running"`
	Phase   bootstate.Phase `json:"phase"`
	Outcome string          `json:"outcome"`
	Message string          `json:"message"`
	Health  []health.Result `json:"health,omitempty"`
	Before  bootstate.State `json:"before"`
	After   bootstate.State `json:"after"`
	// Reboot is set when the machine must reboot at once (into the
	// committed slot, after a failed health gate).
	Reboot bool `json:"reboot"`
}

// Run finishes the boot protocol for this boot.
func (b *Boot) Run(ctx context.Context) (Report, error) {
	log := b.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := b.Disk.Load()
	if err != nil {
		return Report{}, err
	}
	r := Report{Running: b.Running, Phase: st.Assess(b.Running), Before: st, After: st}
	switch r.Phase {
	case bootstate.Committed:
		r.Outcome, r.Message = OutcomeNothing, fmt.Sprintf("running committed slot %s", b.Running)
	case bootstate.TrialPending:
		r.Outcome, r.Message = OutcomePending, fmt.Sprintf("slot %s is armed for a trial boot (%d left)", st.Trial, st.Tries)
	case bootstate.Unknown:
		r.Outcome, r.Message = OutcomeUnexpected, fmt.Sprintf("running slot %s, but slot %s is committed and no trial is armed", b.Running, st.Committed)
	case bootstate.TrialFailed:
		failed := st.Trial
		if err := b.recordBad(failed); err != nil {
			return r, err
		}
		if r.After, err = b.Disk.Update(func(s bootstate.State) (bootstate.State, error) { return s.MarkBad(failed) }); err != nil {
			return r, err
		}
		r.Outcome = OutcomeFellBack
		r.Message = fmt.Sprintf("trial of slot %s failed before its health check (fell back to slot %s); slot %s marked bad", failed, b.Running, failed)
	case bootstate.TrialRunning:
		log.Info("trial boot: running the health gate", "slot", b.Running, "deadline", b.Gate.Deadline)
		res, gateErr := b.Gate.Run(ctx)
		r.Health = res
		if gateErr == nil {
			if r.After, err = b.Disk.Update(func(s bootstate.State) (bootstate.State, error) { return s.Commit(b.Running) }); err != nil {
				return r, err
			}
			r.Outcome, r.Message = OutcomeCommitted, fmt.Sprintf("slot %s passed its health check and is committed", b.Running)
			break
		}
		if err := b.recordBad(b.Running); err != nil {
			return r, err
		}
		if r.After, err = b.Disk.Update(func(s bootstate.State) (bootstate.State, error) { return s.MarkBad(b.Running) }); err != nil {
			return r, err
		}
		r.Outcome, r.Reboot = OutcomeMarkedBad, true
		r.Message = fmt.Sprintf("slot %s failed its health check (%v); marked bad, the next boot is slot %s", b.Running, gateErr, st.Committed)
		log.Error(r.Message)
		return r, nil
	}
	log.Info(r.Message, "outcome", r.Outcome, "slot", b.Running)
	return r, nil
}

// recordBad remembers the version in slot as bad before the slot is marked
// bad, so a power cut in between never loses it.
func (b *Boot) recordBad(slot bootstate.Slot) error {
	if b.State == nil {
		return nil
	}
	p := b.Disk.Layout.Slot(slot)
	img, err := image.ReadSlot(b.Disk.File, p.Start, p.Size)
	if err != nil || img.Version == "" {
		return nil // nothing readable to remember
	}
	_, err = b.State.Update(func(s *state.State) { s.MarkBad(img.Version) })
	return err
}
