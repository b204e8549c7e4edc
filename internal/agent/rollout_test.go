package agent

import (
	"context"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/rollout"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// publishStaged publishes version with a staged rollout r (updater publish
// --rollout) and returns the manifest.
func (c *testDevice) publishStaged(t *testing.T, version string, serial uint64, now time.Time, r manifest.Rollout) *manifest.Manifest {
	t.Helper()
	dir := testrelease.Small(t, c.pub, version, serial, 256<<10, "")
	st, err := source.OpenStore(context.Background(), "file://"+c.store, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := release.Publish(context.Background(), st, release.PublishOptions{Dir: dir, Channel: "stable",
		Signers: []*keys.PrivateKey{c.key}, Now: now, TTL: 30 * 24 * time.Hour, Rollout: &r})
	if err != nil {
		t.Fatal(err)
	}
	return res.Manifest
}

// TestRoundRollout: a staged release is taken once its rollout reaches
// the device's bucket, never while paused unless the device had begun
// writing it, and at once with --now (Force). A device that waits writes
// nothing and says when its turn comes, in the result and in the updater
// state.
func TestRoundRollout(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	day := manifest.Rollout{Duration: manifest.Duration(24 * time.Hour)}
	paused := start.Add(time.Hour)
	pausedDay := manifest.Rollout{Start: start, Duration: manifest.Duration(24 * time.Hour), PausedAt: &paused}
	c := newTestDevice(t)
	for _, tc := range []struct {
		name    string
		r       manifest.Rollout
		bucket  float64
		after   time.Duration // the device's clock, after the publish
		force   bool
		started bool // the journal names the release: an apply was cut
		garbage bool // the journal cannot be read
		wait    string
	}{
		{"bucket 0.5, a quarter in", day, 0.5, 6 * time.Hour, false, false, false,
			"2.0.0's rollout has reached 25.0 % of devices, not this one (bucket 0.5000); its turn comes at " + start.Add(12*time.Hour+time.Second).Format(time.RFC3339)},
		{"bucket 0.5, its turn passed", day, 0.5, 13 * time.Hour, false, false, false, ""},
		{"bucket 0.5, a quarter in, --now", day, 0.5, 6 * time.Hour, true, false, false, ""},
		{"before the start", manifest.Rollout{Start: start.Add(time.Hour), Duration: day.Duration}, 0, 0, false, false, false,
			"2.0.0's rollout starts at " + start.Add(time.Hour).Format(time.RFC3339)},
		{"paused, a canary", pausedDay, 0, 2 * time.Hour, false, false, false,
			"2.0.0's rollout is paused at 4.2 % of devices; this one has not started it"},
		{"paused, started before the pause", pausedDay, 0, 2 * time.Hour, false, true, false, ""},
		{"paused, an unreadable journal", pausedDay, 0, 2 * time.Hour, false, false, true,
			"2.0.0's rollout is paused at 4.2 % of devices; this one has not started it"},
		{"paused, --now", pausedDay, 0.9, 2 * time.Hour, true, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.fresh(t)
			m := c.publishStaged(t, "2.0.0", 2, start, tc.r)
			if tc.started {
				idx, _ := hex.DecodeString(m.Index.SHA256)
				var j fetch.State
				copy(j.Index[:], idx)
				if err := os.MkdirAll(c.state.Dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := (fetch.FileJournal{Path: c.state.Path(state.JournalFile)}).Save(j); err != nil {
					t.Fatal(err)
				}
			}
			if tc.garbage {
				if err := os.MkdirAll(c.state.Dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(c.state.Path(state.JournalFile), []byte("{torn"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := c.disk.Load()
			slotB := slotSum(t, c.disk, partition.B)
			r := c.round(t, partition.A, start.Add(tc.after), config.Reboot{Policy: config.PolicyNextBoot})
			r.Checker.Place, r.Checker.Force = rollout.Place{Bucket: tc.bucket}, tc.force
			res, err := r.Run(context.Background())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Check.Rollout == nil {
				t.Fatalf("no rollout decision in %+v", res)
			}
			after, _ := c.disk.Load()
			if tc.wait == "" {
				if res.Apply == nil || after.Trial != partition.B {
					t.Fatalf("Run = %+v; boot state %+v; want 2.0.0 armed in slot b", res, after)
				}
				return
			}
			if res.Apply != nil || after != before || slotSum(t, c.disk, partition.B) != slotB {
				t.Fatalf("a device outside the rollout wrote: %+v, boot state %+v, was %+v", res.Apply, after, before)
			}
			if res.Check.Outcome != CheckWaiting || res.Check.Reason != tc.wait {
				t.Errorf("check %s: %q\nwant %s: %q", res.Check.Outcome, res.Check.Reason, CheckWaiting, tc.wait)
			}
			if !strings.Contains(res.Message, "--now") {
				t.Errorf("message %q does not say how to take it now", res.Message)
			}
			st, err := c.state.Load()
			if err != nil || st.LastCheck == nil || st.LastCheck.Outcome != CheckWaiting || st.LastCheck.Reason != tc.wait {
				t.Errorf("updater state's last check %+v, %v; want waiting with the reason", st.LastCheck, err)
			}
		})
	}
}

// TestNextCheck: a device a rollout has not reached checks again at its
// turn when that comes before its interval; otherwise at its interval.
func TestNextCheck(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	waiting := func(d rollout.Decision) CheckResult { return CheckResult{Outcome: CheckWaiting, Rollout: &d} }
	for _, tc := range []struct {
		name string
		r    CheckResult
		want time.Duration
	}{
		{"up to date", CheckResult{Outcome: CheckUpToDate}, time.Hour},
		{"turn in 10 minutes", waiting(rollout.Decision{At: now.Add(10 * time.Minute)}), 10 * time.Minute},
		{"turn after the interval", waiting(rollout.Decision{At: now.Add(3 * time.Hour)}), time.Hour},
		{"turn passed", waiting(rollout.Decision{At: now.Add(-time.Second)}), time.Second},
		{"paused", waiting(rollout.Decision{Paused: true}), time.Hour},
		{"not started, no turn", waiting(rollout.Decision{}), time.Hour},
	} {
		if got := tc.r.NextCheck(time.Hour, now); got != tc.want {
			t.Errorf("%s: next check in %s, want %s", tc.name, got, tc.want)
		}
	}
}
