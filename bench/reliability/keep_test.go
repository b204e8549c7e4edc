package main

import (
	"strings"
	"testing"
	"time"
)

// TestKeep runs the campaign in slices: the second keeps the first's store
// part and the fuzz target it does not redo, each naming its run, in one
// fuzz section whose rows are in their targets' order, and not the package
// whose tests did not build then, which this run listed again; the whole
// says what it still lacks.
func TestKeep(t *testing.T) {
	fuzzRow := func(dir, name string) Row {
		return Row{Cells: []string{dir, name, "1", "10000000"}, Command: "go test -fuzz " + name, Duration: 60}
	}
	first := Report{Date: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC), Command: "go run ./bench/reliability -parts fuzz,store",
		Short: true, Why: partialWhy + "fuzz, store",
		Sections: []Section{
			{Part: "fuzz", Title: "Fuzzing", Duration: 130, Rows: []Row{fuzzRow("internal/grubenv", "FuzzParse"), fuzzRow("image", "FuzzReadSlot"),
				{Cells: []string{"bench/reliability", buildRow}, Failed: true}}},
			{Part: "store", Rows: []Row{{Cells: []string{"minio"}}}},
		}}
	second := Report{Date: time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC), Command: "go run ./bench/reliability -parts fuzz,power -fuzz-match grubenv",
		Commit: "abc",
		Sections: []Section{
			{Part: "fuzz", Title: "Fuzzing", Duration: 70, Rows: []Row{fuzzRow("internal/grubenv", "FuzzParse")}},
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
	}
	if s, want := strings.Join(parts, ", "), "fuzz from this run, store from Dec 7, power from this run"; s != want {
		t.Errorf("sections: %s, want %s", s, want)
	}
	fuzz := got.Sections[0]
	var rows []string
	for _, row := range fuzz.Rows {
		from := "this run"
		if row.Run != nil {
			from = row.Run.Date.Format("Jan 2")
		}
		rows = append(rows, fuzzKey(row)+" from "+from)
	}
	if s, want := strings.Join(rows, ", "), "image FuzzReadSlot from Dec 7, internal/grubenv FuzzParse from this run"; s != want {
		t.Errorf("fuzz rows: %s, want %s", s, want)
	}
	if fuzz.Duration != 130 {
		t.Errorf("fuzz section's duration %v, want this run's 70s and the kept row's 60s", fuzz.Duration)
	}
	if sections, rows := got.kept(); sections != 1 || rows != 1 {
		t.Errorf("kept() = %d sections, %d rows; want 1, 1", sections, rows)
	}

	var md strings.Builder
	if err := writeMarkdown(&md, got); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"1 section(s) and 1 row(s) were kept from earlier runs",
		"Kept from the run of `go run ./bench/reliability -parts fuzz,store` on 2026-12-07 10:00 UTC",
		"| image | FuzzReadSlot | 1 | 10000000 | 2026-12-07 10:00  | ok |",
		"| internal/grubenv | FuzzParse | 1 | 10000000 | 2026-12-08 10:00 abc | ok |",
		"- 2026-12-07 10:00 UTC, commit : `go run ./bench/reliability -parts fuzz,store`\n",
		"2 trial(s) in 2m10s.",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("the markdown lacks %q:\n%s", want, md.String())
		}
	}

	// A third slice that fuzzes nothing keeps the fuzz section whole.
	if third := keep(got, Report{Sections: []Section{{Part: "store"}}}); len(third.Sections) != 3 || third.Sections[0].Part != "fuzz" || len(third.Sections[0].Rows) != 2 || third.Sections[0].Run != nil {
		t.Errorf("a slice without fuzz kept %+v", third.Sections)
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
	got.Sections[1].Run.Why = "-short"
	got.Sections[0].Rows[0].Run.Why = "-short"
	if why, want := incomplete(got, targets[:2]), "1 fuzz target(s) from a short run (-short); store from a short run (-short); no qemu-power part"; why != want {
		t.Errorf("incomplete: %q, want %q", why, want)
	}
}
