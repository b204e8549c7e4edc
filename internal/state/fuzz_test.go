package state

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

// FuzzParse: state.json is on the data partition, which outlives every
// version and anyone with the disk can write. What loads must save (or the
// device could record nothing more: no serial accepted, no version marked
// bad) and load back the same.
func FuzzParse(f *testing.F) {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	var s State
	testfuzz.Add(f, "new-device", mustMarshal(f, s))
	s.Accept(12, 10)
	s.MarkBad("1.3.0")
	s.LatestETag = `"5d41402abc4b2a76b9719d911017c592"`
	s.Fail("1.4.0", now, true, "manifest expired: stable 1.4.0 expired at 2026-11-01T00:00:00Z")
	s.LastCheck = &Check{Time: now, Outcome: "refused", Reason: "manifest expired", Version: "1.4.0", Serial: 13}
	// testdata's after-a-refusal is the same state as an older version
	// wrote it, with "reported" in place of "failures".
	testfuzz.Add(f, "after-a-failure", mustMarshal(f, s))
	for name, b := range map[string]string{
		"null":          "null",
		"empty-fields":  `{"bad_versions":[],"failures":{},"last_check":null}`,
		"time-offset":   `{"last_check":{"time":"0000-01-01T00:30:00+01:00","outcome":"up-to-date"}}`,
		"number-forms":  `{"highest_serial":1e3,"min_serial":-1}`,
		"duplicate-key": `{"highest_serial":3,"HIGHEST_SERIAL":2}`,
		"unknown-field": `{"future":{"a":[1,2]},"min_serial":18446744073709551615}`,
		"invalid-utf8":  "{\"bad_versions\":[\"\xff\"]}",
	} {
		testfuzz.Add(f, name, []byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parse(b)
		if err != nil {
			return
		}
		out, err := s.marshal()
		if err != nil {
			t.Fatalf("a state that loads does not save: %v", err)
		}
		again, err := parse(out)
		if err != nil {
			t.Fatalf("a saved state does not load: %v\n%s", err, out)
		}
		if diff := cmp.Diff(s, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-loaded +saved and loaded):\n%s", diff)
		}
	})
}

func mustMarshal(t testing.TB, s State) []byte {
	b, err := s.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
