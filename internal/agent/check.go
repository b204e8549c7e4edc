package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/atomicfile"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/rollout"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
)

// Outcomes of a check.
const (
	CheckAvailable = "update-available" // a newer release passes every rule
	CheckUpToDate  = "up-to-date"       // the channel's release is not newer than the running one
	CheckRefused   = "refused"          // the channel's release breaks a rule (reason says which)
	CheckFailed    = "failed"           // the channel's latest.json could not be read (the error says why)
	// CheckWaiting: a newer release passes every rule, but its staged
	// rollout has not reached this device yet (reason says when it does).
	CheckWaiting = "waiting"
)

// Checker looks at the release channel.
type Checker struct {
	Source   source.Source
	Channel  string
	Running  image.Slot
	SlotSize int64
	State    state.Store
	Now      func() time.Time
	// StallTimeout and Retry guard the GET of latest.json as they guard the
	// image's (package fetch); zero values are its defaults.
	StallTimeout time.Duration
	Retry        fetch.RetryFunc
	// Place is the device's place in staged rollouts (package rollout),
	// and PlaceErr why it is not its machine id's (it goes last). Force
	// (updater apply --now) takes a release whatever its rollout says.
	Place    rollout.Place
	PlaceErr error
	Force    bool
	Log      *slog.Logger
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	Outcome     string             `json:"outcome"`
	Reason      string             `json:"reason,omitempty"`
	NotModified bool               `json:"not_modified"`
	Running     string             `json:"running_version"`
	Manifest    *manifest.Manifest `json:"manifest,omitempty"`
	// Rollout is the staged rollout's decision on a newer release that
	// has one.
	Rollout *rollout.Decision `json:"rollout,omitempty"`
	// FirstReport is false when the same refusal of the same version was
	// already reported: a permanent error is reported once, not in a loop.
	FirstReport bool `json:"-"`
	// Err is the refusal, for CheckRefused: it wraps the rule's sentinel.
	Err    error  `json:"-"`
	Signed []byte `json:"-"`
}

// unsigned reports whether err says the bytes are not a manifest a trusted
// key signed: what a byte flipped on the wire looks like, as well as a
// channel signed by another key or holding other bytes.
func unsigned(err error) bool {
	return errors.Is(err, manifest.ErrMalformed) || errors.Is(err, manifest.ErrBadSignature) || errors.Is(err, manifest.ErrUntrustedKey)
}

// Check fetches latest.json (conditionally), verifies it against every
// acceptance rule and records the outcome. The GET is watched and retried
// as the image's ranges are (fetch.Get); a body that is not a manifest a
// trusted key signed is fetched once more before it is refused, and only
// one that is (whatever the rules then say of it) is kept with its ETag
// for the next conditional GET. A channel that cannot be read is an error,
// recorded as a failed check.
func (c *Checker) Check(ctx context.Context) (CheckResult, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	st, err := c.State.Load()
	if err != nil {
		return CheckResult{}, err
	}
	r := CheckResult{Running: c.Running.Version}
	key := path.Join(c.Channel, manifest.Latest)
	cache := c.State.Path(state.LatestFile)
	etag := st.LatestETag
	if _, err := os.Stat(cache); err != nil {
		etag = ""
	}
	policy := manifest.Policy{
		Trusted: c.Running.Trusted, Channel: c.Channel, Now: now(),
		RunningSerial: c.Running.Serial, HighestSeen: st.HighestSerial, MinSerial: st.MinSerial,
		BadVersions: st.BadVersions, SlotSize: c.SlotSize,
	}
	var (
		m    *manifest.Manifest
		verr error
		last []byte // the last body fetched, judged or not
	)
	body, newETag, err := fetch.Get(ctx, c.Source, key, etag, int64(manifest.DefaultMaxSize), fetch.Guard{StallTimeout: c.StallTimeout, Retry: c.Retry},
		func(b []byte) error {
			last = b
			if m, verr = manifest.Verify(b, policy); unsigned(verr) {
				return verr
			}
			return nil
		})
	switch {
	case errors.Is(err, source.ErrNotModified):
		r.NotModified = true
		if body, err = os.ReadFile(cache); err != nil {
			return r, err
		}
		if m, verr = manifest.Verify(body, policy); unsigned(verr) {
			// Only signed bytes are kept: these changed on the disk. The
			// next check fetches latest.json whole.
			os.Remove(cache)
			st.LatestETag = ""
		}
	case err != nil && refusal.Is(err):
		// Fetched twice, and twice not a manifest a trusted key signed.
		body, m, verr = last, nil, fmt.Errorf("%s from %s: %w", key, c.Source, err)
	case err != nil:
		r.Outcome, r.Reason = CheckFailed, err.Error()
		st.LastCheck = &state.Check{Time: now().UTC(), Outcome: r.Outcome, Reason: r.Reason}
		if serr := c.State.Save(st); serr != nil {
			return r, fmt.Errorf("%w (not recorded: %v)", err, serr)
		}
		return r, err
	default:
		if err := os.MkdirAll(c.State.Dir, 0o755); err != nil {
			return r, err
		}
		if err := atomicfile.Write(cache, body, 0o644); err != nil {
			return r, fmt.Errorf("%w; no slot touched", err)
		}
		st.LatestETag = newETag
	}
	r.Signed = body
	r.Manifest = m
	version := ""
	if m != nil {
		version = m.Version
	} else if env, err := manifest.ParseEnvelope(body); err == nil {
		if bare, err := manifest.Decode(env.Manifest); err == nil {
			version = bare.Version
		}
	}
	if version != "" {
		st.Offered(version)
	}
	switch {
	case verr == nil:
		r.Outcome = CheckAvailable
		r.Reason = fmt.Sprintf("%s (serial %d) is newer than the running %s (serial %d)", m.Version, m.Serial, c.Running.Version, c.Running.Serial)
		st.Accept(m.Serial, m.MinSerial)
		c.wave(&r, now())
	case errors.Is(verr, manifest.ErrNotNewer):
		r.Outcome, r.Reason = CheckUpToDate, verr.Error()
		st.Failures = nil // nothing to take
	default:
		r.Outcome, r.Reason, r.Err = CheckRefused, verr.Error(), verr
		if version != "" {
			r.FirstReport = st.Fail(version, now().UTC(), true, r.Reason)
		} else {
			prev := st.LastCheck
			r.FirstReport = prev == nil || prev.Outcome != CheckRefused || prev.Reason != r.Reason
		}
	}
	st.LastCheck = &state.Check{Time: now().UTC(), Outcome: r.Outcome, Reason: r.Reason}
	if m != nil {
		st.LastCheck.Version, st.LastCheck.Serial = m.Version, m.Serial
	}
	if err := c.State.Save(st); err != nil {
		return r, fmt.Errorf("%w; no slot touched", err)
	}
	return r, nil
}

// wave decides whether the newer release's staged rollout has reached
// this device (package rollout), and when it has not, makes the outcome
// CheckWaiting, with when the device's turn comes. A device that has
// begun writing the release (its journal names the release's index) goes
// on through a pause; a journal that cannot be read says nothing was
// begun, as it makes the apply start over.
func (c *Checker) wave(r *CheckResult, now time.Time) {
	m := r.Manifest
	if m.Rollout == nil {
		return
	}
	j, err := fetch.FileJournal{Path: c.State.Path(state.JournalFile)}.Load()
	started := err == nil && hex.EncodeToString(j.Index[:]) == m.Index.SHA256
	d := rollout.Decide(m.Rollout, c.Place, now, started)
	r.Rollout = &d
	if c.PlaceErr != nil && c.Log != nil {
		c.Log.Warn("staged rollout: "+c.PlaceErr.Error(), "version", m.Version, "bucket", c.Place.Bucket)
	}
	if d.In || c.Force {
		return
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
	r.Outcome, r.Reason = CheckWaiting, reason
}

// NextCheck is how long a daemon waits after this check before the next:
// regular (its interval and jitter), or less when a staged rollout has not
// reached the device yet and its turn comes sooner. The buckets spread the
// turns over the rollout, so waking at its turn adds no crowd at the
// store, and the device takes the release when its turn comes rather
// than up to an interval later.
func (r CheckResult) NextCheck(regular time.Duration, now time.Time) time.Duration {
	if d := r.Rollout; r.Outcome == CheckWaiting && d != nil && !d.Paused && !d.At.IsZero() {
		// A second at least: a turn that a clock step put in the past
		// never makes the daemon ask the store in a loop.
		return min(regular, max(d.At.Sub(now), time.Second))
	}
	return regular
}
