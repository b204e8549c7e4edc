package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/atomicfile"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
)

// Outcomes of a check.
const (
	CheckAvailable = "update-available" // a newer release passes every rule
	CheckUpToDate  = "up-to-date"       // the channel's release is not newer than the running one
	CheckRefused   = "refused"          // the channel's release breaks a rule (reason says which)
)

// Checker looks at the release channel.
type Checker struct {
	Source   source.Source
	Channel  string
	Running  image.Slot
	SlotSize int64
	State    state.Store
	Now      func() time.Time
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	Outcome     string             `json:"outcome"`
	Reason      string             `json:"reason,omitempty"`
	NotModified bool               `json:"not_modified"`
	Running     string             `json:"running_version"`
	Manifest    *manifest.Manifest `json:"manifest,omitempty"`
	// FirstReport is false when the same refusal of the same version was
	// already reported: a permanent error is reported once, not in a loop.
	FirstReport bool `json:"-"`
	// Err is the refusal, for CheckRefused: it wraps the rule's sentinel.
	Err    error  `json:"-"`
	Signed []byte `json:"-"`
}

// Check fetches latest.json (conditionally), verifies it against every
// acceptance rule and records the outcome.
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
	var body []byte
	rc, newETag, err := c.Source.Get(ctx, key, etag)
	switch {
	case errors.Is(err, source.ErrNotModified):
		r.NotModified = true
		if body, err = os.ReadFile(cache); err != nil {
			return r, err
		}
	case err != nil:
		return r, fmt.Errorf("fetch %s from %s: %w", key, c.Source, err)
	default:
		body, err = io.ReadAll(io.LimitReader(rc, manifest.DefaultMaxSize+1))
		rc.Close()
		if err != nil {
			return r, fmt.Errorf("fetch %s: %w", key, err)
		}
		if err := os.MkdirAll(c.State.Dir, 0o755); err != nil {
			return r, err
		}
		if err := atomicfile.Write(cache, body, 0o644); err != nil {
			return r, err
		}
		st.LatestETag = newETag
	}
	r.Signed = body
	m, verr := manifest.Verify(body, manifest.Policy{
		Trusted: c.Running.Trusted, Channel: c.Channel, Now: now(),
		RunningSerial: c.Running.Serial, HighestSeen: st.HighestSerial, MinSerial: st.MinSerial,
		BadVersions: st.BadVersions, SlotSize: c.SlotSize,
	})
	r.Manifest = m
	switch {
	case verr == nil:
		r.Outcome = CheckAvailable
		r.Reason = fmt.Sprintf("%s (serial %d) is newer than the running %s (serial %d)", m.Version, m.Serial, c.Running.Version, c.Running.Serial)
		st.Accept(m.Serial, m.MinSerial)
	case errors.Is(verr, manifest.ErrNotNewer):
		r.Outcome, r.Reason = CheckUpToDate, verr.Error()
	default:
		r.Outcome, r.Reason, r.Err = CheckRefused, verr.Error(), verr
		version := "?"
		if m != nil {
			version = m.Version
		} else if env, err := manifest.ParseEnvelope(body); err == nil {
			if bare, err := manifest.Decode(env.Manifest); err == nil {
				version = bare.Version
			}
		}
		if st.Reported == nil {
			st.Reported = map[string]string{}
		}
		r.FirstReport = st.Reported[version] != r.Reason
		st.Reported[version] = r.Reason
	}
	st.LastCheck = &state.Check{Time: now().UTC(), Outcome: r.Outcome, Reason: r.Reason}
	if m != nil {
		st.LastCheck.Version, st.LastCheck.Serial = m.Version, m.Serial
	}
	if err := c.State.Save(st); err != nil {
		return r, err
	}
	return r, nil
}
