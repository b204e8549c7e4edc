package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseList(t *testing.T) {
	out := "FuzzLoad\nFuzzParseCmdline\nok  \tgithub.com/twinroot/twinroot/internal/bootstate\t0.010s\n" +
		"?   \tgithub.com/twinroot/twinroot/cmd/updater\t[no test files]\n" +
		"FAIL\tgithub.com/twinroot/twinroot/internal/broken [build failed]\n" +
		"FuzzReadSlot\nok  \tgithub.com/twinroot/twinroot/image\t(cached)\n"
	targets, failed := parseList([]byte(out), "github.com/twinroot/twinroot")
	want := []target{
		{"github.com/twinroot/twinroot/internal/bootstate", "internal/bootstate", "FuzzLoad"},
		{"github.com/twinroot/twinroot/internal/bootstate", "internal/bootstate", "FuzzParseCmdline"},
		{"github.com/twinroot/twinroot/image", "image", "FuzzReadSlot"},
	}
	if diff := cmp.Diff(want, targets); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"internal/broken"}, failed); diff != "" {
		t.Errorf("failed (-want +got):\n%s", diff)
	}
}

func TestParseFuzz(t *testing.T) {
	passed := "fuzz: elapsed: 0s, gathering baseline coverage: 0/11 completed\n" +
		"fuzz: elapsed: 3s, execs: 8657 (2885/sec), new interesting: 5 (total: 16)\n" +
		"fuzz: elapsed: 7s, execs: 20000 (3010/sec), new interesting: 9 (total: 20)\nPASS\nok  \tgithub.com/twinroot/twinroot/internal/manifest\t7.1s\n"
	if got, want := parseFuzz([]byte(passed)), (fuzzResult{Execs: 20000, Corpus: 20, Elapsed: 7 * time.Second}); got != want {
		t.Errorf("parseFuzz(passed) = %+v, want %+v", got, want)
	}
	failed := "fuzz: elapsed: 2s, execs: 1500 (750/sec), new interesting: 2 (total: 10)\n" +
		"--- FAIL: FuzzReadSlot (2.07s)\n    --- FAIL: FuzzReadSlot (0.00s)\n" +
		"        testing.go:1927: panic: runtime error: index out of range [65285] with length 1\n" +
		"            goroutine 23 [running]:\n\n" +
		"    Failing input written to testdata/fuzz/FuzzReadSlot/53725bd05d09273f\n" +
		"    To re-run:\n    go test -run=FuzzReadSlot/53725bd05d09273f\nFAIL\n"
	got := parseFuzz([]byte(failed))
	want := fuzzResult{Execs: 1500, Corpus: 10, Elapsed: 2 * time.Second, Input: "testdata/fuzz/FuzzReadSlot/53725bd05d09273f",
		Message: "testing.go:1927: panic: runtime error: index out of range [65285] with length 1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseFuzz(failed) (-want +got):\n%s", diff)
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"test", "-run", "^$", "-fuzz", "^FuzzLoad$", "-fuzztime", "10x", "./internal/bootstate", "it's"})
	want := `test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 10x ./internal/bootstate 'it'\''s'`
	if got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

// TestFuzzPartFailure runs the part on a module of two targets, one of
// which fails on its first input: the other still runs, the failure is a
// row naming the input go test kept.
func TestFuzzPartFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and fuzzes a module: skipped with -short")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.24\n",
		"p/p_test.go": `package p

import "testing"

func FuzzFails(f *testing.F) {
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1 {
			t.Fatalf("input of %d bytes", len(b))
		}
	})
}

func FuzzPasses(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {})
}
`,
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := options{FuzzExecs: 500, Workers: 1, Minimize: "0s", Module: dir}
	var log strings.Builder
	s, err := fuzzPart(context.Background(), o, &log)
	if err != nil {
		t.Fatalf("fuzzPart: %v\n%s", err, log.String())
	}
	if len(s.Rows) != 2 {
		t.Fatalf("%d rows, want 2:\n%s", len(s.Rows), log.String())
	}
	failed, passed := s.Rows[0], s.Rows[1]
	t.Logf("the failure's detail: %s", failed.Detail)
	if !failed.Failed || failed.Cells[1] != "FuzzFails" || !strings.Contains(failed.Detail, "input of") ||
		!strings.Contains(failed.Detail, "p/testdata/fuzz/FuzzFails/") {
		t.Errorf("failing target's row: %+v", failed)
	}
	if passed.Failed || passed.Cells[1] != "FuzzPasses" || passed.Cells[3] != "500" {
		t.Errorf("passing target's row: %+v", passed)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "p", "testdata", "fuzz", "FuzzFails", "*"))
	if len(kept) != 1 {
		t.Errorf("inputs kept: %v, want the failing one", kept)
	}
}
