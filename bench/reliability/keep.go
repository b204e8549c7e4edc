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
// fuzz targets cur did not fuzz. Sections come in the campaign's order.
// The fuzz part stays one section, whichever runs fuzzed its targets: a
// kept row names its run, and rows are in the order of their targets.
func keep(old, cur Report) Report {
	ran := map[string]bool{}
	for _, s := range cur.Sections {
		ran[s.Part] = true
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
			if s.Part != p.name {
				continue
			}
			run := s.Run
			if run == nil {
				run = old.runOf()
			}
			switch {
			case p.name == "fuzz":
				out.Sections = keepFuzz(out.Sections, s, run)
			case !ran[p.name]:
				s.Run = run
				out.Sections = append(out.Sections, s)
			}
		}
	}
	return out
}

// keepFuzz adds to the fuzz section of sections (made if there is none)
// the rows of old, an earlier run's fuzz section, whose targets it lacks.
func keepFuzz(sections []Section, old Section, run *Run) []Section {
	i := slices.IndexFunc(sections, func(s Section) bool { return s.Part == "fuzz" })
	// This run listed the packages again: what did not build then is
	// this run's to say.
	relisted := i >= 0
	if i < 0 {
		s := old
		s.Rows, s.Duration, s.Run = nil, 0, nil
		sections, i = append(sections, s), len(sections)
	}
	s := &sections[i]
	have := map[string]bool{}
	for _, row := range s.Rows {
		have[fuzzKey(row)] = true
	}
	s.Rows = slices.Clone(s.Rows)
	for _, row := range old.Rows {
		if have[fuzzKey(row)] || (relisted && len(row.Cells) > 1 && row.Cells[1] == buildRow) {
			continue
		}
		if row.Run == nil {
			row.Run = run
		}
		s.Rows = append(s.Rows, row)
		s.Duration += row.Duration
	}
	slices.SortStableFunc(s.Rows, func(a, b Row) int { return strings.Compare(fuzzKey(a), fuzzKey(b)) })
	return sections
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
			shortRows, because := 0, ""
			for _, row := range s.Rows {
				fuzzed[fuzzKey(row)] = true
				if row.Run != nil && row.Run.Short && !row.Run.partial() {
					shortRows, because = shortRows+1, row.Run.Why
				}
			}
			if shortRows > 0 {
				why = append(why, fmt.Sprintf("%d fuzz target(s) from a short run (%s)", shortRows, because))
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
