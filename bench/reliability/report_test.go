package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func sampleReport() Report {
	return Report{
		Date:     time.Date(2026, 12, 7, 10, 50, 0, 0, time.UTC),
		Commit:   "0123456789ab",
		Command:  "go run ./bench/reliability -fuzz-execs 20000",
		Machine:  Machine{CPU: "AMD EPYC", Cores: 2, Memory: "23.5 GiB", Kernel: "6.18.44", Go: "go1.26.8"},
		Duration: 754,
		Short:    true,
		Why:      "20000 executions per fuzz target, the campaign's are 10000000",
		Sections: []Section{{
			Part: "fuzz", Title: "Fuzzing", About: "Each fuzz target, run alone.",
			Columns:  []string{"package", "target", "seeds", "executions", "duration", "exec/s", "corpus"},
			Duration: 750,
			Rows: []Row{
				{Cells: []string{"internal/bootstate", "FuzzLoad", "13", "20000", "4s", "5000", "41"},
					Command: "go test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 20000x ./internal/bootstate"},
				{Cells: []string{"image", "FuzzReadSlot", "8", "1234", "2s", "617", "12"},
					Command: "go test -run '^$' -fuzz '^FuzzReadSlot$' -fuzztime 20000x ./image", Failed: true,
					Detail: "panic: index out of range | in diskfs; input kept in image/testdata/fuzz/FuzzReadSlot/53725bd05d09273f"},
			},
		}},
	}
}

// TestWriteMarkdown pins the report's form: the short-run warning on top,
// the machine, a table per part with each row's command, and the failures.
func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := writeMarkdown(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.md")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("report differs from %s (-want +got):\n%s", golden, diff)
	}

	full := sampleReport()
	full.Short, full.Why = false, ""
	full.Sections[0].Rows = full.Sections[0].Rows[:1]
	b.Reset()
	if err := writeMarkdown(&b, full); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b.Bytes(), []byte("Short run")) || !bytes.Contains(b.Bytes(), []byte("Every trial passed.")) {
		t.Errorf("a full run's report:\n%s", b.String())
	}
	if got := full.Failures(); got != 0 {
		t.Errorf("Failures() = %d, want 0", got)
	}
	if got := sampleReport().Failures(); got != 1 {
		t.Errorf("Failures() = %d, want 1", got)
	}
}
