package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/source"
)

// StageOptions of Restage.
type StageOptions struct {
	Channel string
	Signers []*keys.PrivateKey
	// Trusted are more keys latest.json may be signed by (the CI's, when
	// an operator pauses with their own); the signers' are always trusted.
	Trusted []keys.PublicKey
	TTL     time.Duration // the new expiry, from Now
	Now     time.Time
	// Version, when set, is the release latest.json must still name: a
	// release published meanwhile is not changed.
	Version string
}

// ErrNoRelease says a channel has no latest.json.
var ErrNoRelease = errors.New("no release published")

// Latest reads the channel's latest.json from src and its ETag, and
// verifies it as a device trusting trusted would (any serial); with no
// trusted key it is only decoded.
func Latest(ctx context.Context, src source.Source, channel string, trusted []keys.PublicKey, now time.Time) (*manifest.Manifest, []byte, string, error) {
	key := path.Join(channel, manifest.Latest)
	body, etag, err := src.Get(ctx, key, "")
	if errors.Is(err, source.ErrNotFound) {
		return nil, nil, "", fmt.Errorf("%w on channel %s (%s)", ErrNoRelease, channel, key)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("read %s: %w", key, err)
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, manifest.DefaultMaxSize+1))
	if err != nil {
		return nil, nil, "", fmt.Errorf("read %s: %w", key, err)
	}
	var m *manifest.Manifest
	if len(trusted) == 0 {
		m, err = unsignedManifest(b)
	} else {
		var ring keys.Ring
		if ring, err = keys.NewRing(trusted...); err == nil {
			m, err = manifest.Verify(b, manifest.Policy{Trusted: ring, Channel: channel, Now: now})
		}
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", key, err)
	}
	return m, b, etag, nil
}

// Restage changes the staged rollout of the channel's latest release and
// publishes latest.json again: it reads it, verifies that a key of the
// signers (or of o.Trusted) signed it, so that nobody signs bytes the
// store made up, lets change make the new rollout from the current one (a
// release published without one has, to change, a rollout that reached
// everyone at its creation), signs it again with an expiry of Now+TTL,
// and replaces latest.json only if nobody changed it since it was read
// (the versioned manifest beside the image keeps the rollout it was
// published with). It returns the manifest published.
func Restage(ctx context.Context, st source.Store, o StageOptions, change func(manifest.Rollout) (manifest.Rollout, error)) (*manifest.Manifest, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if len(o.Signers) == 0 {
		return nil, errors.New("no signing key")
	}
	trusted := append([]keys.PublicKey(nil), o.Trusted...)
	for _, k := range o.Signers {
		trusted = append(trusted, k.Public())
	}
	cur, body, etag, err := Latest(ctx, st, o.Channel, trusted, o.Now)
	if err != nil {
		return nil, fmt.Errorf("%w; nothing changed", err)
	}
	if o.Version != "" && cur.Version != o.Version {
		return nil, refusal.Errorf("latest.json of %s names %s now, not %s; nothing changed", o.Channel, cur.Version, o.Version)
	}
	r := manifest.Rollout{Start: cur.Created}
	if cur.Rollout != nil {
		r = *cur.Rollout
	}
	next, err := change(r)
	if err != nil {
		return nil, fmt.Errorf("%w; nothing changed", err)
	}
	signed, m, err := manifest.SignReleaseWith(body, manifest.SignOptions{Channel: o.Channel, Now: o.Now, TTL: o.TTL, Rollout: &next}, o.Signers...)
	if err != nil {
		return nil, fmt.Errorf("%w; nothing changed", err)
	}
	key := path.Join(o.Channel, manifest.Latest)
	if err := st.Replace(ctx, key, bytes.NewReader(signed), int64(len(signed)), etag); err != nil {
		return nil, fmt.Errorf("update %s: %w (someone changed it since it was read: run again); nothing changed", key, err)
	}
	return m, nil
}
