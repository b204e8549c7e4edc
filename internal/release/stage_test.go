package release

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/rollout"
	"github.com/twinroot/twinroot/internal/source"
)

// TestRestage pauses and resumes a staged release on every kind of store:
// latest.json is signed again with the new rollout, a restage that lost a
// race with another one changes nothing (conditional put), and an operator
// key that did not sign latest.json (nor is trusted to) changes nothing.
func TestRestage(t *testing.T) {
	f := newFixture(t)
	v1 := f.build(t, "1.0.0", 1)
	start := time.Now().UTC().Truncate(time.Second)
	for kind, open := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			st, _ := open(t)
			if _, err := Publish(ctx, st, PublishOptions{Dir: v1, Channel: "stable", Signers: []*keys.PrivateKey{f.key}, TTL: 30 * 24 * time.Hour, Now: start,
				Rollout: &manifest.Rollout{Duration: manifest.Duration(24 * time.Hour)}}); err != nil {
				t.Fatal(err)
			}
			opts := func(at time.Duration, k *keys.PrivateKey) StageOptions {
				return StageOptions{Channel: "stable", Signers: []*keys.PrivateKey{k}, TTL: 24 * time.Hour, Now: start.Add(at)}
			}
			pause := func(at time.Duration) func(manifest.Rollout) (manifest.Rollout, error) {
				return func(r manifest.Rollout) (manifest.Rollout, error) { return rollout.Pause(r, start.Add(at)), nil }
			}
			m, err := Restage(ctx, st, opts(6*time.Hour, f.key), pause(6*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if r := m.Rollout; r == nil || r.PausedAt == nil || !r.PausedAt.Equal(start.Add(6*time.Hour)) || !r.Start.Equal(start) {
				t.Fatalf("paused rollout %+v", m.Rollout)
			}
			// What a device reads: signed, verified, paused.
			got, _, _, err := Latest(ctx, st, "stable", []keys.PublicKey{f.key.Public()}, start.Add(6*time.Hour))
			if err != nil || got.Rollout == nil || got.Rollout.PausedAt == nil || !got.Expires.Equal(start.Add(30*time.Hour)) {
				t.Fatalf("latest.json after the pause: %+v, %v", got, err)
			}

			// Two operators at once: the one that read latest.json first
			// and writes it last loses, and changes nothing.
			_, err = Restage(ctx, st, opts(8*time.Hour, f.key), func(r manifest.Rollout) (manifest.Rollout, error) {
				if _, err := Restage(ctx, st, opts(7*time.Hour, f.key), func(r manifest.Rollout) (manifest.Rollout, error) {
					return rollout.Resume(r, start.Add(7*time.Hour)), nil
				}); err != nil {
					t.Errorf("the other operator's resume: %v", err)
				}
				return rollout.Pause(rollout.Resume(r, start.Add(8*time.Hour)), start.Add(8*time.Hour)), nil
			})
			if !errors.Is(err, source.ErrChanged) {
				t.Errorf("a restage that lost the race: %v, want ErrChanged", err)
			}
			got, _, _, err = Latest(ctx, st, "stable", []keys.PublicKey{f.key.Public()}, start.Add(8*time.Hour))
			want := manifest.Rollout{Start: start.Add(time.Hour), Duration: manifest.Duration(24 * time.Hour)}
			if err != nil || got.Rollout == nil || !cmp.Equal(*got.Rollout, want) {
				t.Fatalf("rollout after the race %+v, %v; want the winner's resume %+v", got, err, want)
			}

			// A key that neither signed latest.json nor is told to trust
			// the one that did changes nothing; told, it may.
			other, _ := keys.Generate(nil)
			if _, err := Restage(ctx, st, opts(9*time.Hour, other), pause(9*time.Hour)); !errors.Is(err, manifest.ErrUntrustedKey) {
				t.Errorf("restage with another key: %v, want ErrUntrustedKey", err)
			}
			o := opts(9*time.Hour, other)
			o.Trusted = []keys.PublicKey{f.key.Public()}
			if m, err := Restage(ctx, st, o, pause(9*time.Hour)); err != nil || m.Rollout.PausedAt == nil {
				t.Errorf("restage with another key, trusting the first: %+v, %v", m, err)
			}
			if _, err := Restage(ctx, st, StageOptions{Channel: "beta", Signers: []*keys.PrivateKey{f.key}, TTL: time.Hour}, pause(0)); !errors.Is(err, ErrNoRelease) {
				t.Errorf("restage of an empty channel: %v, want ErrNoRelease", err)
			}
		})
	}
}
