package fetch

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

func TestFileJournal(t *testing.T) {
	dir := t.TempDir()
	j := FileJournal{Path: filepath.Join(dir, "fetch.journal")}
	s, err := j.Load()
	if err != nil || s != (State{}) {
		t.Fatalf("Load of a missing journal = %+v, %v; want the zero State", s, err)
	}
	want := State{Index: sha256.Sum256([]byte("idx")), Target: 4096, Chunks: 12, Offset: 1 << 20, Size: 8 << 20}
	for range 2 {
		if err := j.Save(want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := j.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load after Save (-want +got):\n%s", diff)
	}
	b, err := os.ReadFile(j.Path)
	if err != nil {
		t.Fatal(err)
	}
	if wantJSON := `{"format":1,"index":"` + hexOf(want.Index[:]) + `","target":4096,"chunks":12,"offset":1048576,"size":8388608}` + "\n"; string(b) != wantJSON {
		t.Errorf("journal file %q, want %q", b, wantJSON)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d files, want only the journal (no temporary left)", len(ents))
	}
	if err := j.Save(State{Chunks: -1}); err == nil {
		t.Errorf("Save of a negative chunk count succeeded")
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestParseStateRefuses(t *testing.T) {
	idx := `"` + strings.Repeat("ab", 32) + `"`
	for _, tc := range []struct{ name, in string }{
		{"empty", ``},
		{"not json", `chunks 12`},
		{"torn", `{"format":1,"index":` + idx + `,"chu`},
		{"format", `{"format":2,"index":` + idx + `,"chunks":1,"offset":1,"size":2}`},
		{"short index", `{"format":1,"index":"abcd","chunks":1,"offset":1,"size":2}`},
		{"unknown field", `{"format":1,"index":` + idx + `,"chunks":1,"offset":1,"size":2,"x":1}`},
		{"negative", `{"format":1,"index":` + idx + `,"chunks":-1,"offset":1,"size":2}`},
		{"negative target", `{"format":1,"index":` + idx + `,"target":-1,"chunks":1,"offset":1,"size":2}`},
		{"offset past size", `{"format":1,"index":` + idx + `,"chunks":1,"offset":3,"size":2}`},
		{"two records", `{"format":1,"index":` + idx + `,"chunks":1,"offset":1,"size":2}{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := parseState([]byte(tc.in)); !errors.Is(err, ErrBadJournal) {
				t.Errorf("parseState(%q) = %+v, %v; want ErrBadJournal", tc.in, s, err)
			}
		})
	}
}

func FuzzParseState(f *testing.F) {
	b, err := marshalState(State{Index: sha256.Sum256(nil), Chunks: 3, Offset: 300, Size: 900})
	if err != nil {
		f.Fatal(err)
	}
	testfuzz.Add(f, "journal", b)
	testfuzz.Add(f, "format-only", []byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseState(b)
		if err != nil {
			if !errors.Is(err, ErrBadJournal) {
				t.Fatalf("parseState error %v does not wrap ErrBadJournal", err)
			}
			return
		}
		again, err := marshalState(s)
		if err != nil {
			t.Fatalf("marshalState of a parsed %+v: %v", s, err)
		}
		if s2, err := parseState(again); err != nil || s2 != s {
			t.Fatalf("round trip of %+v gave %+v, %v", s, s2, err)
		}
	})
}

func TestBackoff(t *testing.T) {
	for attempt, want := range []time.Duration{1: 500 * time.Millisecond, 2: time.Second, 3: 2 * time.Second, 4: 4 * time.Second} {
		if attempt == 0 {
			continue
		}
		d, ok := DefaultRetry(attempt, nil)
		if !ok || d < want*4/5 || d > want*6/5 {
			t.Errorf("DefaultRetry(%d) = %v, %v; want about %v, true", attempt, d, ok, want)
		}
	}
	if _, ok := DefaultRetry(5, nil); ok {
		t.Errorf("DefaultRetry(5) retries: want 5 tries in all")
	}
	if d, ok := Backoff(10, time.Second, 8*time.Second)(9, nil); !ok || d > 8*time.Second*6/5 || d < 8*time.Second*4/5 {
		t.Errorf("Backoff(10, 1s, 8s)(9) = %v, %v; want about 8s", d, ok)
	}
}
