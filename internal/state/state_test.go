package state

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStore(t *testing.T) {
	st := Store{Dir: filepath.Join(t.TempDir(), "twinroot")}
	s, err := st.Load()
	if err != nil || s.HighestSerial != 0 || s.IsBad("1.0.0") {
		t.Fatalf("Load of a new device = %+v, %v", s, err)
	}
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	want, err := st.Update(func(s *State) {
		s.Accept(12, 10)
		s.Accept(11, 3)
		s.MarkBad("1.3.0")
		s.MarkBad("1.3.0")
		s.LastCheck = &Check{Time: now, Outcome: "up-to-date", Version: "1.2.0", Serial: 12}
	})
	if err != nil {
		t.Fatal(err)
	}
	if want.HighestSerial != 12 || want.MinSerial != 10 || len(want.BadVersions) != 1 {
		t.Errorf("after updates = %+v", want)
	}
	got, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load after Save (-want +got):\n%s", diff)
	}
	os.WriteFile(filepath.Join(st.Dir, FileName), []byte("{torn"), 0o644)
	if _, err := st.Load(); err == nil {
		t.Error("Load of a broken file succeeded")
	}
}

// TestFailures: one entry per version, counting its failed rounds; a
// reason is first reported once; arming the version, or the channel
// offering another, forgets it.
func TestFailures(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	var s State
	if !s.Fail("1.4.0", t0, false, "fetch: access denied") {
		t.Error("a first failure was not a first report")
	}
	if s.Fail("1.4.0", t0.Add(time.Hour), false, "fetch: access denied") {
		t.Error("the same reason was reported twice")
	}
	if !s.Fail("1.4.0", t0.Add(2*time.Hour), true, "bytes differ from what was signed") {
		t.Error("a new reason was not reported")
	}
	want := Failure{Time: t0.Add(2 * time.Hour), First: t0, Rounds: 3, Refused: true, Reason: "bytes differ from what was signed"}
	if diff := cmp.Diff(map[string]Failure{"1.4.0": want}, s.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	s.Fail("1.5.0", t0, false, "stalled")
	s.Offered("1.5.0")
	if _, ok := s.Failures["1.4.0"]; ok || len(s.Failures) != 1 {
		t.Errorf("after the channel offered 1.5.0: %v", s.Failures)
	}
	s.Succeeded("1.5.0")
	if len(s.Failures) != 0 {
		t.Errorf("after 1.5.0 was armed: %v", s.Failures)
	}
	// A state file from before failures, with its "reported" map, loads.
	st := Store{Dir: t.TempDir()}
	os.WriteFile(filepath.Join(st.Dir, FileName), []byte(`{"highest_serial": 3, "reported": {"1.4.0": "bad signature"}}`), 0o644)
	if got, err := st.Load(); err != nil || got.HighestSerial != 3 {
		t.Errorf("Load of an older state = %+v, %v", got, err)
	}
}
