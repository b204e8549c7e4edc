package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/report"
	"github.com/twinroot/twinroot/internal/state"
)

// Round is one round of the release channel, the job of `updater apply`,
// of the daemon and of the boot once it is on a committed slot: check,
// apply a release that passes every rule, then reboot into it as the
// policy says.
type Round struct {
	Checker *Checker
	Updater *Updater
	Reboot  config.Reboot
	// Offline is a disk that is not the running system's: it is never
	// rebooted. The caller reboots when RoundResult.RebootNow says so.
	Offline bool
	// Reporter, when set, gets the apply's outcome (package report): it
	// never fails the round.
	Reporter *report.Reporter
	Now      func() time.Time
	Log      *slog.Logger
}

// RoundResult reports a round.
type RoundResult struct {
	Check CheckResult  `json:"check"`
	Apply *ApplyResult `json:"apply,omitempty"`
	// Boot says when the armed slot is tried: "now", "window", "next-boot"
	// or "offline"; empty when nothing was armed.
	Boot string `json:"trial_boot,omitempty"`
	// Message is that, for a person.
	Message string `json:"message,omitempty"`
}

// Run runs the round. A release the check refuses is an error wrapping the
// refusal (reported once per version in the log); nothing newer is not.
func (r *Round) Run(ctx context.Context) (RoundResult, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	var res RoundResult
	cr, err := r.Checker.Check(ctx)
	res.Check = cr
	if err != nil {
		return res, err
	}
	switch cr.Outcome {
	case CheckUpToDate:
		return res, nil
	case CheckWaiting:
		res.Message = "updater apply --now takes it before its turn"
		return res, nil
	case CheckRefused:
		if cr.FirstReport && r.Log != nil {
			r.Log.Error("release refused", "channel", r.Checker.Channel, "reason", cr.Reason)
		}
		return res, cr.Err
	}
	m := cr.Manifest
	a, err := r.Updater.Apply(ctx, m)
	if err != nil {
		r.Reporter.Send(ctx, report.Failed, m.Version, m.Serial, r.Checker.Running.Version, strings.ReplaceAll(err.Error(), "\n", "; "))
	} else {
		r.Reporter.Send(ctx, report.Applied, m.Version, m.Serial, r.Checker.Running.Version, "")
	}
	if serr := r.record(m.Version, now(), err); serr != nil {
		if err == nil {
			return res, serr
		}
		err = fmt.Errorf("%w (not recorded in the updater state: %v)", err, serr)
	}
	if err != nil {
		return res, err
	}
	res.Apply = &a
	w := r.Reboot.Window
	switch t := now(); {
	case r.Reboot.Policy == config.PolicyNextBoot:
		res.Boot, res.Message = "next-boot", "the trial boot happens at the next boot"
	case r.Reboot.Policy == config.PolicyWindow && !w.Contains(t):
		res.Boot = "window"
		res.Message = fmt.Sprintf("the trial boot happens in the maintenance window %s (next at %s)", w, w.Next(t).Format(time.RFC3339))
	case r.Offline:
		res.Boot, res.Message = "offline", "offline disk: boot it to try the new slot"
	default:
		res.Boot, res.Message = "now", "rebooting into the trial slot"
	}
	return res, nil
}

// record keeps the outcome of an apply of version in the updater state,
// where updater status shows it: the failure and its reason, in one line,
// or that the version was armed.
func (r *Round) record(version string, at time.Time, err error) error {
	_, serr := r.Checker.State.Update(func(s *state.State) {
		if err == nil {
			s.Succeeded(version)
			return
		}
		reason := strings.ReplaceAll(err.Error(), "\n", "; ")
		s.Fail(version, at.UTC(), refusal.Is(err), reason)
	})
	return serr
}

// RebootNow reports whether the round's result asks for a reboot now.
func (r RoundResult) RebootNow() bool { return r.Boot == "now" }
