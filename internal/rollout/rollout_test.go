package rollout

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/manifest"
)

// TestBucketGolden pins the bucket function: a device keeps its place in
// every rollout across versions of the updater. These values must never
// change.
func TestBucketGolden(t *testing.T) {
	for id, want := range map[string]float64{
		"0123456789abcdef0123456789abcdef":     0.08167965111312647,
		"0123456789ABCDEF0123456789ABCDEF\n":   0.08167965111312647, // case and the newline do not count
		"b08dfa6083e7567a1921a715000001fb":     0.6880063907785091,
		"ffffffffffffffffffffffffffffffff":     0.9334310578279321,
		"4c4c4544-0042-3510-8051-b4c04f4e4c31": 0.749813838090862, // not hex: still an id
	} {
		got, err := Bucket(id)
		if err != nil || got != want {
			t.Errorf("Bucket(%q) = %v, %v; want %v", id, got, err, want)
		}
	}
	if _, err := Bucket(" \n"); err != ErrNoMachineID {
		t.Errorf("Bucket of an empty id: %v, want ErrNoMachineID", err)
	}
}

// TestBucketUniform checks that buckets spread evenly: a χ² test over
// 100,000 ids in 100 bins (99 degrees of freedom; 148.2 is its 0.1 %
// critical value), so a fleet's share is the rollout's share.
func TestBucketUniform(t *testing.T) {
	const ids, bins = 100_000, 100
	var count [bins]int
	for i := range ids {
		b, err := Bucket(fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15))
		if err != nil || b < 0 || b >= 1 {
			t.Fatalf("Bucket #%d = %v, %v", i, b, err)
		}
		count[int(b*bins)]++
	}
	want := float64(ids) / bins
	chi2 := 0.0
	for _, c := range count {
		chi2 += (float64(c) - want) * (float64(c) - want) / want
	}
	t.Logf("χ² = %.1f over %d bins", chi2, bins)
	if chi2 > 148.2 {
		t.Errorf("χ² = %.1f > 148.2: buckets are not uniform: %v", chi2, count)
	}
}

func TestPlaceOf(t *testing.T) {
	dir := t.TempDir()
	id := filepath.Join(dir, "machine-id")
	if err := os.WriteFile(id, []byte("0123456789abcdef0123456789abcdef\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if p, err := PlaceOf("", id); err != nil || p.Bucket != 0.08167965111312647 || p.Pin != "" {
		t.Errorf("PlaceOf(machine id) = %+v, %v", p, err)
	}
	if p, err := PlaceOf(Canary, id); err != nil || p.Bucket != 0 {
		t.Errorf("canary: %+v, %v", p, err)
	}
	if p, err := PlaceOf(Late, filepath.Join(dir, "none")); err != nil || p.Bucket != 1 {
		t.Errorf("late: %+v, %v", p, err)
	}
	// No machine id: last, with the reason.
	if p, err := PlaceOf("", filepath.Join(dir, "none")); err == nil || p.Bucket != 1 {
		t.Errorf("no machine id: %+v, %v; want bucket 1 and an error", p, err)
	}
	if _, err := PlaceOf("first", id); err == nil {
		t.Error("pin first: no error")
	}
}

func TestDecide(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	day := &manifest.Rollout{Start: start, Duration: manifest.Duration(24 * time.Hour)}
	fromTen := &manifest.Rollout{Start: start, Duration: manifest.Duration(24 * time.Hour), StartPercent: 10}
	paused := start.Add(6 * time.Hour)
	pausedDay := &manifest.Rollout{Start: start, Duration: manifest.Duration(24 * time.Hour), PausedAt: &paused}
	for _, c := range []struct {
		name    string
		r       *manifest.Rollout
		bucket  float64
		at      time.Duration // after start
		started bool
		in      bool
		share   float64
		turn    time.Duration // after start, when not in
	}{
		{"no rollout", nil, 0.99, -time.Hour, false, true, 1, 0},
		{"before the start", day, 0.5, -time.Hour, false, false, -1, 12 * time.Hour},
		{"canary before the start", day, 0, -time.Hour, false, false, -1, 0},
		{"canary at the start", day, 0, 0, false, true, 0, 0},
		{"a quarter in, bucket 0.2", day, 0.2, 6 * time.Hour, false, true, 0.25, 0},
		{"a quarter in, bucket 0.3", day, 0.3, 6 * time.Hour, false, false, 0.25, 7*time.Hour + 12*time.Minute},
		{"late, nearly done", day, 1, 23 * time.Hour, false, false, 23.0 / 24, 24 * time.Hour},
		{"late, done", day, 1, 24 * time.Hour, false, true, 1, 0},
		{"after the end", day, 0.999, 48 * time.Hour, false, true, 1, 0},
		{"10 % at the start", fromTen, 0.09, 0, false, true, 0.1, 0},
		{"10 % at the start, bucket 0.55", fromTen, 0.55, 0, false, false, 0.1, 12 * time.Hour},
		{"paused: nobody starts", pausedDay, 0.1, 12 * time.Hour, false, false, 0.25, 0},
		{"paused: a canary neither", pausedDay, 0, 12 * time.Hour, false, false, 0.25, 0},
		{"paused: started goes on", pausedDay, 0.9, 12 * time.Hour, true, true, 0.25, 0},
	} {
		d := Decide(c.r, Place{Bucket: c.bucket}, start.Add(c.at), c.started)
		if d.In != c.in || math.Abs(d.Share-c.share) > 1e-9 {
			t.Errorf("%s: %+v, want in %v, share %v", c.name, d, c.in, c.share)
		}
		if !c.in && c.r != nil && c.r.PausedAt == nil {
			if turn := d.At.Sub(start); turn < c.turn || turn > c.turn+time.Second {
				t.Errorf("%s: turn %v after the start, want %v", c.name, turn, c.turn)
			}
			// At its turn, the device is in.
			if got := Decide(c.r, Place{Bucket: c.bucket}, d.At, false); !got.In {
				t.Errorf("%s: not in at its turn %v: %+v", c.name, d.At, got)
			}
		}
	}
}

// TestPauseResume: a paused rollout holds its share, and goes on from it.
func TestPauseResume(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := manifest.Rollout{Start: start, Duration: manifest.Duration(24 * time.Hour)}
	p := Pause(r, start.Add(6*time.Hour))
	if again := Pause(p, start.Add(7*time.Hour)); *again.PausedAt != *p.PausedAt {
		t.Errorf("a second pause moved paused_at to %v", again.PausedAt)
	}
	if s := Share(&p, start.Add(20*time.Hour)); s != 0.25 {
		t.Errorf("paused share %v, want 0.25", s)
	}
	res := Resume(p, start.Add(10*time.Hour))
	if res.PausedAt != nil || !res.Start.Equal(start.Add(4*time.Hour)) {
		t.Errorf("resumed %+v, want the start 4h later", res)
	}
	if s := Share(&res, start.Add(10*time.Hour)); s != 0.25 {
		t.Errorf("share just after the resume %v, want 0.25", s)
	}
	if again := Resume(res, start.Add(11*time.Hour)); !again.Start.Equal(res.Start) {
		t.Errorf("a second resume moved the start to %v", again.Start)
	}
}
