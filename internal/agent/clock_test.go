package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/health"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// Clocks of devices whose real-time clock is wrong: a flat RTC battery
// (1970) and a board set years ahead (2045).
var (
	clock1970 = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	clock2045 = time.Date(2045, 6, 1, 0, 0, 0, 0, time.UTC)
)

// testDevice is a disk with 1.0.0 in slot A and a file:// channel. One
// disk serves every case of a test: a case starts with a new channel and
// a new updater state (fresh), and a round that arms slot B again only
// rewrites it.
type testDevice struct {
	key   *keys.PrivateKey
	pub   string
	disk  *bootstate.Disk
	store string
	state state.Store
}

func newTestDevice(t *testing.T) *testDevice {
	t.Helper()
	k, pub := testrelease.Key(t)
	v1 := testrelease.Small(t, pub, "1.0.0", 1, 256<<10, "")
	c := &testDevice{key: k, pub: pub, disk: installDisk(t, v1, 16<<20)}
	c.fresh(t)
	return c
}

// fresh gives the device an empty channel and an empty updater state.
func (c *testDevice) fresh(t *testing.T) {
	c.store, c.state = t.TempDir(), state.Store{Dir: filepath.Join(t.TempDir(), "state")}
}

// publish signs version at created, valid for ttl, as `updater publish`
// on a build host whose clock says created, and returns its build.
func (c *testDevice) publish(t *testing.T, version string, serial uint64, created time.Time, ttl time.Duration) string {
	t.Helper()
	dir := testrelease.Small(t, c.pub, version, serial, 256<<10, "")
	st, err := source.OpenStore(context.Background(), "file://"+c.store, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := release.Publish(context.Background(), st, release.PublishOptions{Dir: dir, Channel: "stable",
		Signers: []*keys.PrivateKey{c.key}, Now: created, TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// round is one round of the channel on a device whose clock says now.
func (c *testDevice) round(t *testing.T, running bootstate.Slot, now time.Time, reboot config.Reboot) *Round {
	t.Helper()
	src, err := source.Open(context.Background(), "file://"+c.store, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := readSlot(c.disk, running)
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	return &Round{
		Checker: &Checker{Source: src, Channel: "stable", Running: rel, SlotSize: c.disk.Layout.Slot(running.Other()).Size, State: c.state, Now: clock},
		Updater: &Updater{Disk: c.disk, Running: running, Source: src, Channel: "stable", Tries: 1, State: c.state},
		Reboot:  reboot, Offline: true, Now: clock,
	}
}

// TestClockExpiry is the README's "When the clock is wrong" for expiry: a
// clock years ahead refuses every release as expired (exit code 3,
// nothing written); a clock at 1970 accepts even a manifest that expired
// in real time, and the serial rules still refuse a rollback.
func TestClockExpiry(t *testing.T) {
	real := time.Now()
	c := newTestDevice(t)
	for _, tc := range []struct {
		name    string
		created time.Time // of 2.0.0, valid 30 days
		now     time.Time
		expired bool
	}{
		{"current release, clock right", real, real, false},
		{"current release, clock at 1970", real, clock1970, false},
		{"current release, clock at 2045", real, clock2045, true},
		{"release expired in real time, clock right", real.AddDate(0, -2, 0), real, true},
		{"release expired in real time, clock at 1970", real.AddDate(0, -2, 0), clock1970, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c.fresh(t)
			c.publish(t, "2.0.0", 2, tc.created, 30*24*time.Hour)
			before, _ := c.disk.Load()
			slotB := slotSum(t, c.disk, partition.B)
			r := c.round(t, partition.A, tc.now, config.Reboot{Policy: config.PolicyNextBoot})
			res, err := r.Run(ctx)
			after, _ := c.disk.Load()
			if !tc.expired {
				if err != nil || res.Apply == nil || after.Trial != partition.B {
					t.Fatalf("Run = %+v, %v; boot state %+v; want 2.0.0 armed in slot b", res, err, after)
				}
				return
			}
			if !errors.Is(err, manifest.ErrExpired) || !refusal.Is(err) || res.Check.Outcome != CheckRefused {
				t.Fatalf("Run = %s, %v; want a refusal as expired", res.Check.Outcome, err)
			}
			if want := "manifest expired: stable 2.0.0 expired at "; !strings.HasPrefix(err.Error(), want) ||
				!strings.Contains(err.Error(), "(now "+tc.now.UTC().Format(time.RFC3339)+")") {
				t.Errorf("error %q: want %q... naming the device's time", err, want)
			}
			if res.Apply != nil || after != before || slotSum(t, c.disk, partition.B) != slotB {
				t.Errorf("an expired release was applied: %+v, boot state %+v, was %+v", res.Apply, after, before)
			}
		})
	}

	// At 1970 the serial rules hold: a device that accepted serial 3 once
	// refuses serial 2, whatever its clock says.
	c.fresh(t)
	c.publish(t, "2.0.0", 2, real, 30*24*time.Hour)
	if _, err := c.state.Update(func(s *state.State) { s.Accept(3, 0) }); err != nil {
		t.Fatal(err)
	}
	res, err := c.round(t, partition.A, clock1970, config.Reboot{Policy: config.PolicyNextBoot}).Run(context.Background())
	if !errors.Is(err, manifest.ErrRollback) || res.Apply != nil {
		t.Errorf("Run at 1970 after serial 3 = %+v, %v; want ErrRollback and nothing applied", res.Apply, err)
	}
}

// TestClockWindow is the README's maintenance window on a wrong clock: the
// window is a time of day on the device's clock, whatever the year.
func TestClockWindow(t *testing.T) {
	w, err := config.ParseWindow("02:00-04:00")
	if err != nil {
		t.Fatal(err)
	}
	at := func(day time.Time, hour, min int) time.Time {
		return time.Date(day.Year(), day.Month(), day.Day(), hour, min, 0, 0, time.UTC)
	}
	c := newTestDevice(t)
	for _, tc := range []struct {
		name string
		now  time.Time
		boot string
		next time.Time // of the window, when it is not open
	}{
		{"1970 in the window", at(clock1970, 3, 0), "now", time.Time{}},
		{"1970 before the window", at(clock1970, 0, 30), "window", at(clock1970, 2, 0)},
		{"1970 after the window", at(clock1970, 12, 0), "window", at(clock1970.AddDate(0, 0, 1), 2, 0)},
		{"2045 in the window", at(clock2045, 2, 0), "now", time.Time{}},
		{"2045 after the window", at(clock2045, 23, 59), "window", at(clock2045.AddDate(0, 0, 1), 2, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.fresh(t)
			// Valid until 2056: the window, not expiry, is under test.
			c.publish(t, "2.0.0", 2, time.Now(), 30*365*24*time.Hour)
			r := c.round(t, partition.A, tc.now, config.Reboot{Policy: config.PolicyWindow, Window: w})
			r.Offline = false
			res, err := r.Run(context.Background())
			if err != nil || res.Apply == nil {
				t.Fatalf("Run = %+v, %v; want 2.0.0 applied", res, err)
			}
			if res.Boot != tc.boot || (tc.boot == "window" && !strings.Contains(res.Message, tc.next.Format(time.RFC3339))) {
				t.Errorf("Run at %s: trial boot %q (%s), want %q next at %s", tc.now, res.Boot, res.Message, tc.boot, tc.next)
			}
		})
	}
}

// TestClockNeverBlocksCommit runs what `updater boot` runs on a trial
// boot, the health gate and the commit, then the next round of the channel
// (the daemon's, or the next boot's) with the clock at 1970 and 2045. Boot
// takes no clock and reads none (the gate's deadline is measured on the
// monotonic clock): the trial is committed either way, and a round that
// then refuses the channel's next release as expired leaves the commit
// alone.
func TestClockNeverBlocksCommit(t *testing.T) {
	for _, now := range []time.Time{clock1970, clock2045} {
		t.Run(now.Format("2006"), func(t *testing.T) {
			ctx := context.Background()
			c := newTestDevice(t)
			c.publish(t, "2.0.0", 2, time.Now(), 30*24*time.Hour)
			if _, err := c.round(t, partition.A, time.Now(), config.Reboot{Policy: config.PolicyNextBoot}).Run(ctx); err != nil {
				t.Fatal(err)
			}
			// GRUB took the trial's one boot.
			if _, err := c.disk.Update(func(s bootstate.State) (bootstate.State, error) { s.Tries = 0; return s, nil }); err != nil {
				t.Fatal(err)
			}
			c.publish(t, "3.0.0", 3, time.Now(), 30*24*time.Hour)
			bt := Boot{Disk: c.disk, Running: partition.B, Gate: health.Gate{Commands: []string{"true"}, Deadline: 5 * time.Second}, State: &c.state}
			rep, err := bt.Run(ctx)
			if err != nil || rep.Outcome != OutcomeCommitted {
				t.Fatalf("Boot = %s, %v; want committed", rep.Outcome, err)
			}
			res, err := c.round(t, partition.B, now, config.Reboot{Policy: config.PolicyNextBoot}).Run(ctx)
			wantExpired := now.After(time.Now())
			if got := errors.Is(err, manifest.ErrExpired); got != wantExpired {
				t.Errorf("round after the commit = %+v, %v; want expired %v", res.Check, err, wantExpired)
			}
			st, _ := c.disk.Load()
			if st.Committed != partition.B || (wantExpired && st.Trial != "") {
				t.Errorf("boot state after the commit and the round = %+v, want slot b committed", st)
			}
		})
	}
}

// slotSum is the SHA-256 of slot's partition.
func slotSum(t *testing.T, d *bootstate.Disk, slot bootstate.Slot) [sha256.Size]byte {
	t.Helper()
	p := d.Layout.Slot(slot)
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(d.File, p.Start, p.Size)); err != nil {
		t.Fatal(err)
	}
	return [sha256.Size]byte(h.Sum(nil))
}
