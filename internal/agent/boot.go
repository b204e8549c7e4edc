package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/health"
	"github.com/twinroot/twinroot/internal/report"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/internal/watchdog"
)

// Outcomes of a boot.
const (
	OutcomeNothing    = "nothing-to-do"     // committed slot, no trial
	OutcomeCommitted  = "committed"         // trial passed the gate and is committed
	OutcomeMarkedBad  = "marked-bad"        // trial failed the gate; rebooting to the committed slot
	OutcomeFellBack   = "fell-back"         // GRUB used up the trial's boots and booted the committed slot
	OutcomePending    = "trial-pending"     // a trial is armed for the next boot
	OutcomeUnexpected = "unknown-slot"      // running a slot that is neither committed nor on trial
	OutcomeUnrecorded = "failed-unrecorded" // trial failed the gate, its version could not be recorded: rebooting, not marked bad
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
	// Watchdog is the watchdog device a trial boot takes over, fed while
	// the gate runs and disarmed once the slot is committed (package
	// watchdog); "" leaves any watchdog alone.
	Watchdog string
	// Reporter, when set, gets a trial's end (package report): committed,
	// or rolled back with why. It never fails the boot.
	Reporter *report.Reporter
	Log      *slog.Logger
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
	// Watchdog says what a trial boot did with the watchdog: "disarmed"
	// (committed), "armed" (left running for the reboot after a failed
	// gate), "held by PID 1", "none", or why it could not be taken.
	Watchdog string `json:"watchdog,omitempty"`
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
		b.report(ctx, report.RolledBack, failed, report.NoHealthCheck)
	case bootstate.TrialRunning:
		dog := b.takeWatchdog(&r, log)
		log.Info("trial boot: running the health gate", "slot", b.Running, "deadline", b.Gate.Deadline)
		res, gateErr := b.Gate.Run(ctx)
		r.Health = res
		if gateErr == nil {
			if r.After, err = b.Disk.Update(func(s bootstate.State) (bootstate.State, error) { return s.Commit(b.Running) }); err != nil {
				releaseWatchdog(dog, &r, log)
				return r, err
			}
			r.Outcome, r.Message = OutcomeCommitted, fmt.Sprintf("slot %s passed its health check and is committed", b.Running)
			b.report(ctx, report.Committed, b.Running, "")
			if dog != nil {
				// Committed already: a failed disarm costs at most one
				// reset, into this slot.
				if err := dog.Disarm(); err != nil {
					r.Watchdog = err.Error()
					log.Warn("watchdog not disarmed: the machine resets into the committed slot", "err", err)
				} else {
					r.Watchdog = "disarmed"
					log.Info("watchdog disarmed", "device", b.Watchdog)
				}
			}
			break
		}
		// The machine reboots now; the watchdog stays armed in case the
		// reboot itself hangs.
		defer releaseWatchdog(dog, &r, log)
		if err := b.recordBad(b.Running); err != nil {
			// A machine never stays on a slot that failed its gate, even
			// when its version cannot be remembered (a full data
			// partition). The slot is not marked bad either: GRUB boots it
			// again only while it has tries left, then falls back, and
			// that boot (TrialFailed) records the version once it can.
			r.Outcome, r.Reboot = OutcomeUnrecorded, true
			r.Message = fmt.Sprintf("slot %s failed its health check (%v), and %v; not marked bad: the boot after its last try, on slot %s, records it",
				b.Running, gateErr, err, st.Committed)
			log.Error(r.Message)
			return r, nil
		}
		if r.After, err = b.Disk.Update(func(s bootstate.State) (bootstate.State, error) { return s.MarkBad(b.Running) }); err != nil {
			return r, err
		}
		r.Outcome, r.Reboot = OutcomeMarkedBad, true
		r.Message = fmt.Sprintf("slot %s failed its health check (%v); marked bad, the next boot is slot %s", b.Running, gateErr, st.Committed)
		log.Error(r.Message)
		b.report(ctx, report.RolledBack, b.Running, fmt.Sprintf("health check: %v", gateErr))
		return r, nil
	}
	log.Info(r.Message, "outcome", r.Outcome, "slot", b.Running)
	return r, nil
}

// takeWatchdog takes over the watchdog the trial's init armed (or arms
// it) and feeds it until the gate's deadline and a grace period have
// passed: an updater that hangs past them is reset like any other hang. It
// returns nil when there is none to take.
func (b *Boot) takeWatchdog(r *Report, log *slog.Logger) *watchdog.Dog {
	if b.Watchdog == "" {
		return nil
	}
	deadline := b.Gate.Deadline
	if deadline == 0 {
		deadline = health.DefaultDeadline
	}
	dog, err := watchdog.Take(b.Watchdog, deadline+watchdogGrace)
	switch {
	case errors.Is(err, watchdog.ErrHeld):
		r.Watchdog = "held by PID 1"
		log.Info("watchdog held by PID 1, which feeds it", "device", b.Watchdog)
	case errors.Is(err, watchdog.ErrNone):
		r.Watchdog = "none"
		log.Warn("no watchdog: a trial that hangs stays hung", "device", b.Watchdog)
	case err != nil:
		r.Watchdog = err.Error()
		log.Warn("watchdog not taken", "err", err)
	default:
		timeout, _ := dog.Timeout()
		log.Info("watchdog taken: fed while the health gate runs", "device", b.Watchdog, "timeout", timeout)
	}
	return dog
}

// watchdogGrace is how long past the gate's deadline the watchdog is fed,
// for the commit or the mark-bad write and the reboot.
const watchdogGrace = 30 * time.Second

// releaseWatchdog lets go of dog still armed.
func releaseWatchdog(dog *watchdog.Dog, r *Report, log *slog.Logger) {
	if dog == nil {
		return
	}
	if err := dog.Release(); err != nil {
		r.Watchdog = err.Error()
		log.Warn("watchdog", "err", err)
		return
	}
	r.Watchdog = "armed"
}

// report sends the event of the release in slot (its trial) to the
// reporter, from the device running the committed slot's release.
func (b *Boot) report(ctx context.Context, event string, slot bootstate.Slot, reason string) {
	if b.Reporter == nil {
		return
	}
	st, err := b.Disk.Load()
	if err != nil {
		return
	}
	read := func(s bootstate.Slot) image.Slot {
		p := b.Disk.Layout.Slot(s)
		img, _ := image.ReadSlot(b.Disk.File, p.Start, p.Size)
		return img
	}
	img := read(slot)
	if img.Version == "" {
		return // nothing readable to report
	}
	b.Reporter.Send(ctx, event, img.Version, img.Serial, read(st.Committed).Version, strings.ReplaceAll(reason, "\n", "; "))
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
	if _, err := b.State.Update(func(s *state.State) { s.MarkBad(img.Version) }); err != nil {
		return fmt.Errorf("version %s not recorded as bad: %w", img.Version, err)
	}
	return nil
}
