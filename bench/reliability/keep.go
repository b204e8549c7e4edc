package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// A campaign can be run in slices (-keep): each run redoes some parts, or
// some fuzz targets, and keeps what the report's JSON twin holds of the
// rest. Every kept section names the run that made it, so each figure
// still comes with its date, commit, machine and command.

// runOf is the run that made a section: its own figures' shortness (a
// report written without the Run fields had no -keep to change Short).
func (r Report) runOf() *Run {
	short, why := r.Short, r.Why
	if r.RunShort || r.RunWhy != "" {
		short, why = r.RunShort, r.RunWhy
	}
	return &Run{Date: r.Date, Commit: r.Commit, Command: r.Command, Machine: r.Machine, Short: short, Why: why}
}

// loadReport reads a report's JSON twin; a missing file is an empty report.
func loadReport(path string) (Report, error) {
	var r Report
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %v", path, err)
	}
	return r, nil
}

// fuzzKey names the target of a fuzz row: "package target".
func fuzzKey(row Row) string {
	if len(row.Cells) < 2 {
		return ""
	}
	return row.Cells[0] + " " + row.Cells[1]
}

// keep adds to cur (this run's report, its sections made by this run) what
// old holds that cur did not redo: whole parts cur did not run, and the
// rows of fuzz targets cur did not fuzz. Sections come in the campaign's
// order, this run's before the earlier ones of the same part.
func keep(old, cur Report) Report {
	ran := map[string]bool{}
	fuzzed := map[string]bool{}
	for _, s := range cur.Sections {
		ran[s.Part] = true
		if s.Part == "fuzz" {
			for _, row := range s.Rows {
				fuzzed[fuzzKey(row)] = true
			}
		}
	}
	out := cur
	out.Sections = nil
	for _, p := range parts {
		for _, s := range cur.Sections {
			if s.Part == p.name {
				out.Sections = append(out.Sections, s)
			}
		}
		for _, s := range old.Sections {
			if s.Part != p.name || (ran[p.name] && p.name != "fuzz") {
				continue
			}
			if s.Run == nil {
				s.Run = old.runOf()
			}
			s.Rows = slices.DeleteFunc(slices.Clone(s.Rows), func(row Row) bool { return fuzzed[fuzzKey(row)] })
			if len(s.Rows) > 0 {
				out.Sections = append(out.Sections, s)
			}
		}
	}
	return out
}

// incomplete says what a kept report lacks to be the whole campaign's: a
// part not in it, a fuzz target (of all, as go test -list finds them)
// without a row, a section from a run whose figures are short.
func incomplete(r Report, targets []target) string {
	var why []string
	have := map[string]bool{}
	fuzzed := map[string]bool{}
	for _, s := range r.Sections {
		have[s.Part] = true
		if s.Run != nil && s.Run.Short && !s.Run.partial() {
			why = append(why, fmt.Sprintf("%s from a short run (%s)", s.Part, s.Run.Why))
		}
		if s.Part == "fuzz" {
			for _, row := range s.Rows {
				fuzzed[fuzzKey(row)] = true
			}
		}
	}
	for _, p := range parts {
		if !have[p.name] {
			why = append(why, "no "+p.name+" part")
		}
	}
	missing := 0
	for _, t := range targets {
		if !fuzzed[t.Dir+" "+t.Name] {
			missing++
		}
	}
	if missing > 0 {
		why = append(why, fmt.Sprintf("%d of %d fuzz targets not run", missing, len(targets)))
	}
	return strings.Join(why, "; ")
}

// partialWhy starts the Why of a run that ran only part of the campaign.
const partialWhy = "part of the campaign: "

// partial says the run was short only because it ran part of the campaign:
// what it ran has the campaign's figures.
func (r *Run) partial() bool { return strings.HasPrefix(r.Why, partialWhy) }
