package main

import (
	"testing"

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
	if got, want := parseFuzz([]byte(passed)), (fuzzResult{Execs: 20000, Corpus: 20}); got != want {
		t.Errorf("parseFuzz(passed) = %+v, want %+v", got, want)
	}
	failed := "fuzz: elapsed: 2s, execs: 1500 (750/sec), new interesting: 2 (total: 10)\n" +
		"--- FAIL: FuzzReadSlot (2.07s)\n    --- FAIL: FuzzReadSlot (0.00s)\n" +
		"        testing.go:1927: panic: runtime error: index out of range [65285] with length 1\n" +
		"            goroutine 23 [running]:\n\n" +
		"    Failing input written to testdata/fuzz/FuzzReadSlot/53725bd05d09273f\n" +
		"    To re-run:\n    go test -run=FuzzReadSlot/53725bd05d09273f\nFAIL\n"
	got := parseFuzz([]byte(failed))
	want := fuzzResult{Execs: 1500, Corpus: 10, Input: "testdata/fuzz/FuzzReadSlot/53725bd05d09273f",
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
