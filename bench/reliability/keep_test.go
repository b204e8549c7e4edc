package main

import (
	"strings"
	"testing"
	"time"
)

// TestKeep runs the campaign in two slices: the second keeps the first's
// store part and the fuzz target it does not redo, each naming its run,
// and the whole says what it still lacks.
func TestKeep(t *testing.T) {
	fuzzRow := func(dir, name string) Row { return Row{Cells: []string{dir, name, "1", "10000000"}} }
	first := Report{Date: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC), Command: "go run ./bench/reliability -parts fuzz,store",
		Short: true, Why: partialWhy + "fuzz, store",
		Sections: []Section{
			{Part: "fuzz", Rows: []Row{fuzzRow("image", "FuzzReadSlot"), fuzzRow("internal/grubenv", "FuzzParse")}},
			{Part: "store", Rows: []Row{{Cells: []string{"minio"}}}},
		}}
	second := Report{Date: time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC), Command: "go run ./bench/reliability -parts fuzz,power -fuzz-match grubenv",
		Sections: []Section{
			{Part: "fuzz", Rows: []Row{fuzzRow("internal/grubenv", "FuzzParse")}},
			{Part: "power", Rows: []Row{{Cells: []string{"apply-channel"}}}},
		}}
	got := keep(first, second)
	var parts []string
	for _, s := range got.Sections {
		from := "this run"
		if s.Run != nil {
			from = s.Run.Date.Format("Jan 2")
		}
		parts = append(parts, s.Part+" from "+from)
		if s.Part == "fuzz" && s.Run != nil && (len(s.Rows) != 1 || fuzzKey(s.Rows[0]) != "image FuzzReadSlot") {
			t.Errorf("kept fuzz rows %v, want only the target the second run did not redo", s.Rows)
		}
	}
	want := "fuzz from this run, fuzz from Dec 7, store from Dec 7, power from this run"
	if s := strings.Join(parts, ", "); s != want {
		t.Errorf("sections: %s, want %s", s, want)
	}
	if got.kept() != 2 {
		t.Errorf("kept() = %d, want 2", got.kept())
	}

	var md strings.Builder
	if err := writeMarkdown(&md, got); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 section(s) were kept from earlier runs", "Kept from the run of `go run ./bench/reliability -parts fuzz,store` on 2026-12-07 10:00 UTC"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("the markdown lacks %q:\n%s", want, md.String())
		}
	}

	targets := []target{{Dir: "image", Name: "FuzzReadSlot"}, {Dir: "internal/grubenv", Name: "FuzzParse"}, {Dir: "internal/chunk", Name: "FuzzCutXZ"}}
	if why, want := incomplete(got, targets), "no qemu-power part; 1 of 3 fuzz targets not run"; why != want {
		t.Errorf("incomplete: %q, want %q", why, want)
	}
	// Kept again by a third slice, what the second run made is still of
	// a run that ran part of the campaign, not of a short one, though the
	// report it wrote says what the whole report lacked.
	got.Short, got.Why, got.RunShort, got.RunWhy = true, "no qemu-power part", true, partialWhy+"fuzz, power"
	third := keep(got, Report{Sections: []Section{{Part: "qemu-power", Rows: []Row{{Cells: []string{"minimal"}}}}}})
	if why := incomplete(third, targets); why != "1 of 3 fuzz targets not run" {
		t.Errorf("incomplete after a third slice: %q", why)
	}
	// A kept section from a -short run is not the campaign's figure.
	got.Sections[2].Run.Why = "-short"
	if why, want := incomplete(got, targets[:2]), "store from a short run (-short); no qemu-power part"; why != want {
		t.Errorf("incomplete: %q, want %q", why, want)
	}
}
