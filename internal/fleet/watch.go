package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/rollout"
	"github.com/twinroot/twinroot/internal/source"
)

// Rule is when a watch pauses a rollout (doc.go).
type Rule struct {
	MaxFailure  float64 // the failure share above which it pauses, 0 to 1
	MinOutcomes int     // devices that must have reached an outcome first
}

// Verdict is a watch's judgement of the channel's latest release.
type Verdict struct {
	Version  string  `json:"version"`
	Outcomes int     `json:"outcomes"`
	Failures int     `json:"failures"`
	Failure  float64 `json:"failure_share"`
	Tried    int     `json:"tried"`
	// Halt says the rule is broken; Paused that the rollout is paused
	// (by this watch when Halt, or before it).
	Halt   bool   `json:"halt"`
	Paused bool   `json:"paused"`
	Reason string `json:"reason"`
}

// Judge applies rule to the channel's latest release in s.
func Judge(s Summary, rule Rule) (Verdict, error) {
	if s.Latest == nil {
		return Verdict{}, fmt.Errorf("no latest release to judge: %s", s.LatestError)
	}
	r, _ := s.Release(s.Latest.Version)
	v := Verdict{Version: r.Version, Outcomes: r.Outcomes(), Failures: r.Failed + r.RolledBack, Failure: r.Failure,
		Tried: r.Tried, Paused: s.Latest.Paused}
	switch {
	case v.Outcomes < rule.MinOutcomes:
		v.Reason = fmt.Sprintf("%d of %d devices that tried %s reached an outcome, fewer than %d: too few to judge",
			v.Outcomes, v.Tried, v.Version, rule.MinOutcomes)
	case v.Failure > rule.MaxFailure:
		v.Halt = true
		v.Reason = fmt.Sprintf("%d of %d devices failed %s (%.1f %%), above %.1f %%",
			v.Failures, v.Outcomes, v.Version, v.Failure*100, rule.MaxFailure*100)
	default:
		v.Reason = fmt.Sprintf("%d of %d devices failed %s (%.1f %%), within %.1f %%",
			v.Failures, v.Outcomes, v.Version, v.Failure*100, rule.MaxFailure*100)
	}
	return v, nil
}

// Watch pauses the rollout of a channel's latest release that breaks its
// rule.
type Watch struct {
	Summary Options
	Rule    Rule
	// Store is where latest.json is replaced (Summary.Releases, as a
	// store); Stage signs it (its Channel and Version are set by Once).
	Store source.Store
	Stage release.StageOptions
	Now   func() time.Time
}

// Once judges the latest release once and pauses its rollout when the
// rule is broken and it is not paused yet.
func (w *Watch) Once(ctx context.Context) (Verdict, Summary, error) {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	o := w.Summary
	o.Now = now()
	o.LatestOnly = true
	s, err := Summarise(ctx, o)
	if err != nil {
		return Verdict{}, s, err
	}
	v, err := Judge(s, w.Rule)
	if err != nil || !v.Halt || v.Paused {
		return v, s, err
	}
	stage := w.Stage
	stage.Channel, stage.Version, stage.Now = o.Channel, v.Version, o.Now
	m, err := release.Restage(ctx, w.Store, stage, func(r manifest.Rollout) (manifest.Rollout, error) {
		if r.PausedAt != nil {
			return r, refusal.Errorf("the rollout of %s was paused meanwhile", v.Version)
		}
		return rollout.Pause(r, o.Now), nil
	})
	if err != nil {
		return v, s, fmt.Errorf("pause %s: %w", v.Version, err)
	}
	v.Paused = true
	s.Latest.Rollout, s.Latest.Paused = m.Rollout, true
	s.Latest.Share = rollout.Share(m.Rollout, o.Now)
	return v, s, nil
}
