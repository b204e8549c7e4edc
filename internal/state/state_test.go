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
