package agent

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/rollout"
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
	// Place is the device's place in staged rollouts, and PlaceErr why it
	// is not its machine id's (it goes last); Force (updater apply --now)
	// takes a release whatever its rollout says.
	Place    rollout.Place
	PlaceErr error
	Force    bool
	Now      func() time.Time
	Log      *slog.Logger
}

// RoundResult reports a round.
type RoundResult struct {
	Check CheckResult  `json:"check"`
	Apply *ApplyResult `json:"apply,omitempty"`
	// Rollout is the staged rollout's decision on a release that has one.
	Rollout *rollout.Decision `json:"rollout,omitempty"`
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
	case CheckRefused:
		if cr.FirstReport && r.Log != nil {
			r.Log.Error("release refused", "channel", r.Checker.Channel, "reason", cr.Reason)
		}
		return res, cr.Err
	}
	if wait, err := r.wave(&res, now()); wait || err != nil {
		return res, err
	}
	a, err := r.Updater.Apply(ctx, cr.Manifest)
	if serr := r.record(cr.Manifest.Version, now(), err); serr != nil {
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

// wave decides whether the available release's staged rollout has
// reached this device (package rollout), and when it has not, makes the
// check's outcome CheckWaiting, with when the device's turn comes, in
// the result and the updater state. A device that has begun writing the
// release (its journal names the release's index) goes on through a
// pause.
func (r *Round) wave(res *RoundResult, now time.Time) (wait bool, err error) {
	m := res.Check.Manifest
	if m.Rollout == nil {
		return false, nil
	}
	j, err := fetch.FileJournal{Path: r.Checker.State.Path(state.JournalFile)}.Load()
	if err != nil {
		return false, err
	}
	started := hex.EncodeToString(j.Index[:]) == m.Index.SHA256
	d := rollout.Decide(m.Rollout, r.Place, now, started)
	res.Rollout = &d
	if r.PlaceErr != nil && r.Log != nil {
		r.Log.Warn("staged rollout: "+r.PlaceErr.Error(), "version", m.Version, "bucket", r.Place.Bucket)
	}
	if d.In || r.Force {
		return false, nil
	}
	reason := fmt.Sprintf("%s's rollout has reached %.1f %% of devices, not this one (bucket %.4f)", m.Version, max(d.Share, 0)*100, d.Bucket)
	switch {
	case d.Paused:
		reason = fmt.Sprintf("%s's rollout is paused at %.1f %% of devices; this one has not started it", m.Version, max(d.Share, 0)*100)
	case d.Share < 0:
		reason = fmt.Sprintf("%s's rollout starts at %s", m.Version, m.Rollout.Start.UTC().Format(time.RFC3339))
	}
	if !d.At.IsZero() && !d.At.Equal(m.Rollout.Start) {
		reason += fmt.Sprintf("; its turn comes at %s", d.At.UTC().Format(time.RFC3339))
	}
	res.Check.Outcome, res.Check.Reason = CheckWaiting, reason
	res.Message = "updater apply --now takes it before its turn"
	_, err = r.Checker.State.Update(func(s *state.State) {
		if s.LastCheck != nil {
			s.LastCheck.Outcome, s.LastCheck.Reason = CheckWaiting, reason
		}
	})
	return true, err
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
