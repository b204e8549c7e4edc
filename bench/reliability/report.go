package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is one run of the campaign.
type Report struct {
	Date     time.Time `json:"date"`
	Commit   string    `json:"commit"`  // git describe of the tree the run was made on
	Command  string    `json:"command"` // what reproduces the whole report
	Machine  Machine   `json:"machine"`
	Duration Seconds   `json:"duration_s"`
	// Short says the run is not the campaign's: -short, or fewer
	// executions than the campaign asks for. Why says what made it short.
	Short bool   `json:"short"`
	Why   string `json:"short_because,omitempty"`
	// RunShort and RunWhy are what Short and Why say of this run's own
	// figures, before -keep makes them say what the whole report lacks.
	RunShort bool      `json:"run_short,omitempty"`
	RunWhy   string    `json:"run_short_because,omitempty"`
	Sections []Section `json:"parts"`
}

// Run is the run that made a section a report kept from an earlier run
// (-keep): what the report's own header says of the run that wrote it.
type Run struct {
	Date    time.Time `json:"date"`
	Commit  string    `json:"commit"`
	Command string    `json:"command"`
	Machine Machine   `json:"machine"`
	Short   bool      `json:"short"`
	Why     string    `json:"short_because,omitempty"`
}

// Machine is what the run ran on.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Memory string `json:"memory"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

// Section is what one part of the campaign found.
type Section struct {
	Part     string   `json:"part"`
	Title    string   `json:"title"`
	About    string   `json:"about"` // what was done, what the columns mean
	Columns  []string `json:"columns"`
	Rows     []Row    `json:"rows"`
	Duration Seconds  `json:"duration_s"`
	// Run is set on a section kept from an earlier run.
	Run *Run `json:"run,omitempty"`
}

// Row is one trial: its figures, in the section's columns, and the command
// that reproduces them.
type Row struct {
	Cells   []string `json:"cells"`
	Command string   `json:"command"`
	Failed  bool     `json:"failed"`
	// Detail says what failed and where its input was kept.
	Detail string `json:"detail,omitempty"`
	// Duration is the row's own time, where a part times its rows (fuzz).
	Duration Seconds `json:"duration_s,omitempty"`
	// Run is set on a row kept from an earlier run in a section of this
	// run: the fuzz part, whose targets a slice can redo one by one.
	Run *Run `json:"run,omitempty"`
}

// Seconds is a duration written in JSON as seconds.
type Seconds float64

func (s Seconds) String() string {
	return time.Duration(float64(s) * float64(time.Second)).Round(time.Second).String()
}

// Failures counts the failed rows of every section.
func (r Report) Failures() int {
	n := 0
	for _, s := range r.Sections {
		for _, row := range s.Rows {
			if row.Failed {
				n++
			}
		}
	}
	return n
}

// writeMarkdown writes the report as docs/reliability.md holds it.
func writeMarkdown(w io.Writer, r Report) error {
	var b strings.Builder
	b.WriteString("# Reliability campaign\n\n")
	if r.Short {
		fmt.Fprintf(&b, "> **Short run** (%s): not the campaign's figures. `make reliability` makes those.\n\n", r.Why)
	}
	fmt.Fprintf(&b, "Made by `%s` on %s, commit %s, in %s.\n\n", r.Command, r.Date.UTC().Format(dateLayout+" MST"), r.Commit, r.Duration)
	fmt.Fprintf(&b, "Machine: %s.\n", r.Machine)
	if sections, rows := r.kept(); sections+rows > 0 {
		fmt.Fprintf(&b, "\n%d section(s) and %d row(s) were kept from earlier runs (-keep); each names the run that made it.\n", sections, rows)
	}
	failed := r.Failures()
	if failed == 0 {
		b.WriteString("\nEvery trial passed.\n")
	} else {
		fmt.Fprintf(&b, "\n**%d trial(s) failed**; each is listed under its table.\n", failed)
	}
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "\n## %s\n\n", s.Title)
		if k := s.Run; k != nil {
			fmt.Fprintf(&b, "Kept from the run of `%s` on %s, commit %s; machine: %s.\n\n", k.Command, k.Date.UTC().Format(dateLayout+" MST"), k.Commit, k.Machine)
		}
		fmt.Fprintf(&b, "%s\n\n", s.About)
		mixed := slices.ContainsFunc(s.Rows, func(row Row) bool { return row.Run != nil })
		columns := slices.Clone(s.Columns)
		if mixed {
			columns = append(columns, "run")
		}
		b.WriteString("|")
		for _, c := range append(columns, "result", "reproduce") {
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n|")
		for range len(columns) + 2 {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		var failures []Row
		var runs []*Run
		for _, row := range s.Rows {
			b.WriteString("|")
			for _, c := range row.Cells {
				b.WriteString(" " + cell(c) + " |")
			}
			if mixed {
				run := &Run{Date: r.Date, Commit: r.Commit}
				if row.Run != nil {
					run = row.Run
					if !slices.ContainsFunc(runs, run.same) {
						runs = append(runs, run)
					}
				}
				fmt.Fprintf(&b, " %s %s |", run.Date.UTC().Format(dateLayout), run.Commit)
			}
			result := "ok"
			if row.Failed {
				result = "**FAILED**"
				failures = append(failures, row)
			}
			fmt.Fprintf(&b, " %s | `%s` |\n", result, cell(row.Command))
		}
		if len(runs) > 0 {
			b.WriteString("\nRows kept from earlier runs (-keep), by the run that made them:\n\n")
			for _, k := range runs {
				fmt.Fprintf(&b, "- %s, commit %s: `%s`", k.Date.UTC().Format(dateLayout+" MST"), k.Commit, k.Command)
				if k.Machine != r.Machine {
					fmt.Fprintf(&b, "; machine: %s", k.Machine)
				}
				b.WriteString("\n")
			}
		}
		fmt.Fprintf(&b, "\n%d trial(s) in %s", len(s.Rows), s.Duration)
		if len(failures) > 0 {
			fmt.Fprintf(&b, ", %d failed:\n\n", len(failures))
			for _, f := range failures {
				fmt.Fprintf(&b, "- %s: %s\n", strings.Join(f.Cells[:min(2, len(f.Cells))], " "), f.Detail)
			}
		} else {
			b.WriteString(".\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (m Machine) String() string {
	return fmt.Sprintf("%s, %d cores, %s of memory; Linux %s; %s", m.CPU, m.Cores, m.Memory, m.Kernel, m.Go)
}

// kept counts the sections, and the rows of this run's sections, kept from
// earlier runs.
func (r Report) kept() (sections, rows int) {
	for _, s := range r.Sections {
		if s.Run != nil {
			sections++
			continue
		}
		for _, row := range s.Rows {
			if row.Run != nil {
				rows++
			}
		}
	}
	return sections, rows
}

// same says two runs are one: the same command at the same instant.
func (r *Run) same(o *Run) bool { return r.Date.Equal(o.Date) && r.Command == o.Command }

// dateLayout is how the report writes a run's date (UTC).
const dateLayout = "2006-01-02 15:04"

// cell keeps a value inside its table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
